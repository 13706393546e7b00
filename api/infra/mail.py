"""Outgoing mail: a Mailer with a bounded queue in front of one backend chosen by MAIL_URL.

- `console://` (development default) logs each mail instead of sending it;
- `smtp://user:pass@host:port` and `smtps://…` (TLS from the start) send through aiosmtplib.
  With credentials, smtp:// requires STARTTLS: a server that does not offer it (or a man in
  the middle who strips the offer) gets no password and no mail. `?require_starttls=false`
  allows a trusted local relay without TLS; `?require_starttls=true` also requires it
  without credentials (without them and without the parameter, STARTTLS is used if offered);
- `memory://` keeps every mail in `MemoryBackend.outbox` (tests read links from there).

`Mailer.send` never waits for delivery: the mutation answers at once and workers deliver in
the background, retrying with backoff. A mail that still fails is logged as an error (never
with its body: it carries a token); shutdown drains the queue (cleanup_ctx in api/web/app.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr
from typing import Protocol

import aiosmtplib

from api.addresses import parse_smtp_url
from api.infra.tasks import cancel_all

log = logging.getLogger("graphgate.mail")


@dataclass(frozen=True, slots=True)
class Mail:
    to: str
    subject: str
    text: str  # may carry a token: never log it (ConsoleBackend in development is the exception)
    kind: str  # what it is, for logs: "verify_email", "reset_password", ...


# A mail, or a job that prepares one in the background (None: nothing to send).
Outgoing = Mail | Callable[[], Awaitable[Mail | None]]


class MailBackend(Protocol):
    async def deliver(self, mail: Mail) -> None:
        """Hand one mail over, or raise."""
        ...


class ConsoleBackend:
    """Development: the mail, link included, goes to the log instead of a mailbox.

    !!! This is the ONE place where an account token may appear in a log. It is meant for a
    developer's terminal. With APP_ENV=production the body is withheld (a warning says why).
    """

    def __init__(self, *, reveal: bool) -> None:
        self._reveal = reveal

    async def deliver(self, mail: Mail) -> None:
        if not self._reveal:
            log.warning(
                "MAIL_URL=console:// in production: %s mail to %s NOT sent and its link "
                "withheld from the log; configure smtp:// or smtps://",
                mail.kind,
                mail.to,
            )
            return
        log.warning(
            "\n===== DEVELOPMENT MAIL (MAIL_URL=console://), not sent =====\n"
            "To: %s\nSubject: %s\n\n%s\n"
            "===== END OF DEVELOPMENT MAIL =====",
            mail.to,
            mail.subject,
            mail.text,
        )


class MemoryBackend:
    """Tests: every delivered mail is kept, in order."""

    def __init__(self) -> None:
        self.outbox: list[Mail] = []

    async def deliver(self, mail: Mail) -> None:
        self.outbox.append(mail)


class SmtpBackend:
    """SMTP through aiosmtplib: smtps:// is TLS from the start; smtp:// upgrades with STARTTLS
    (required with credentials, else when offered)."""

    def __init__(self, url: str, sender: str, timeout: float = 30) -> None:
        self._url = parse_smtp_url(url)
        self._sender = sender
        self._envelope_sender = parseaddr(sender)[1]
        self._timeout = timeout

    async def deliver(self, mail: Mail) -> None:
        message = EmailMessage()
        message["From"] = self._sender
        message["To"] = mail.to
        message["Subject"] = mail.subject
        # Relays and spam filters expect both; some refuse mail without them.
        message["Date"] = formatdate(usegmt=True)
        domain = self._envelope_sender.rpartition("@")[2] or None
        message["Message-ID"] = make_msgid(domain=domain)
        message.set_content(mail.text)
        url = self._url
        # start_tls=True fails before AUTH when the server offers no STARTTLS; None upgrades
        # only if offered.
        start_tls = False if url.tls else (True if url.require_starttls else None)
        await aiosmtplib.send(
            message,
            # The envelope, explicitly: never whatever the headers could be read as.
            sender=self._envelope_sender,
            recipients=[mail.to],
            hostname=url.host,
            port=url.port,
            username=url.username,
            password=url.password,
            use_tls=url.tls,
            start_tls=start_tls,
            timeout=self._timeout,
        )


def backend_for(url: str, *, sender: str, production: bool) -> MailBackend:
    """The backend MAIL_URL names (the settings have checked its scheme)."""
    scheme = url.split("://", 1)[0]
    if scheme == "memory":
        return MemoryBackend()
    if scheme in ("smtp", "smtps"):
        return SmtpBackend(url, sender)
    return ConsoleBackend(reveal=not production)


class Mailer:
    """A bounded queue and a few workers that deliver with retries and backoff."""

    def __init__(
        self,
        backend: MailBackend,
        *,
        queue_size: int = 1000,
        workers: int = 2,
        attempts: int = 4,
        backoff: float = 2.0,
    ) -> None:
        self.backend = backend
        self._queue: asyncio.Queue[Outgoing] = asyncio.Queue(maxsize=queue_size)
        self._workers = workers
        self._attempts = attempts
        self._backoff = backoff
        self.failed = 0  # mails given up on (each logged as an error)

    def send(self, outgoing: Outgoing) -> None:
        """Queue a mail (or a job preparing one); returns at once, whatever happens next."""
        try:
            self._queue.put_nowait(outgoing)
        except asyncio.QueueFull:
            self.failed += 1
            kind = outgoing.kind if isinstance(outgoing, Mail) else "prepared"
            log.error("mail queue full (%d): a %s mail was dropped", self._queue.maxsize, kind)

    async def flush(self) -> None:
        """Wait until every queued mail was delivered or given up on."""
        await self._queue.join()

    async def _work(self) -> None:
        while True:
            outgoing = await self._queue.get()
            try:
                await self._handle(outgoing)
            except Exception:  # a worker must survive anything a job does
                log.exception("mail worker: unexpected error")
            finally:
                self._queue.task_done()

    async def _handle(self, outgoing: Outgoing) -> None:
        mail = outgoing if isinstance(outgoing, Mail) else await outgoing()
        if mail is None:
            return
        for attempt in range(1, self._attempts + 1):
            try:
                await self.backend.deliver(mail)
                return
            except Exception as exc:  # any backend failure is retried, then reported
                # The exception, not the mail: the body carries a token.
                reason = f"{type(exc).__name__}: {exc}"
                if attempt == self._attempts:
                    self.failed += 1
                    log.error(
                        "%s mail to %s NOT delivered after %d attempts: %s",
                        mail.kind,
                        mail.to,
                        attempt,
                        reason,
                    )
                    return
                delay = self._backoff * 2 ** (attempt - 1)
                log.warning(
                    "%s mail to %s failed (attempt %d of %d, retry in %.1f s): %s",
                    mail.kind,
                    mail.to,
                    attempt,
                    self._attempts,
                    delay,
                    reason,
                )
                await asyncio.sleep(delay)

    @contextlib.asynccontextmanager
    async def running(self, drain_timeout: float) -> AsyncIterator[None]:
        """Deliver while the app runs; at shutdown, wait (bounded) for the queue to empty."""
        tasks = [asyncio.create_task(self._work()) for _ in range(self._workers)]
        try:
            yield
        finally:
            try:
                await asyncio.wait_for(self._queue.join(), drain_timeout)
            except TimeoutError:
                log.error(
                    "shutdown: %d mail(s) still queued after %s s were NOT delivered",
                    self._queue.qsize(),
                    drain_timeout,
                )
            await cancel_all(tasks)
