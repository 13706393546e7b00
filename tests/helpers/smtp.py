"""A real SMTP server on loopback (aiosmtpd) for live servers: their mail lands in an inbox."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes
from typing import Any
from urllib.parse import unquote

from aiosmtpd.controller import Controller

from tests.helpers.live import free_port

_TOKEN = re.compile(r"[?&]token=([A-Za-z0-9_.~%-]+)")


@dataclass
class SmtpInbox:
    """What the server sent: (recipient, subject, text) in order of arrival."""

    port: int = 0
    mails: list[tuple[str, str, str]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = message_from_bytes(envelope.content)
        payload = message.get_payload(decode=True)
        text = payload.decode() if isinstance(payload, bytes) else str(message.get_payload())
        for rcpt in envelope.rcpt_tos:
            self.mails.append((rcpt, str(message["Subject"]), text))
        return "250 OK"

    async def token_for(self, to: str, seen: int = 0, timeout: float = 10) -> str:
        """The link token of the first mail to `to` after the `seen` first ones to it."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            texts = [text for rcpt, _, text in self.mails if rcpt == to]
            if len(texts) > seen:
                match = _TOKEN.search(texts[seen])
                assert match, texts[seen]
                return unquote(match.group(1))
            await asyncio.sleep(0.02)
        raise TimeoutError(f"no mail to {to} within {timeout} s")


@contextmanager
def smtp_inbox() -> Iterator[SmtpInbox]:
    """Receive mail on a free loopback port while the block runs; MAIL_URL=inbox.url."""
    inbox = SmtpInbox(port=free_port())
    controller = Controller(inbox, hostname="127.0.0.1", port=inbox.port)
    controller.start()
    try:
        yield inbox
    finally:
        controller.stop()
