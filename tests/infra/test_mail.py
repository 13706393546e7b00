"""The Mailer: backends chosen by MAIL_URL, background delivery, retries, a real SMTP trip."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import logging
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from api.addresses import SmtpUrl, parse_smtp_url
from api.infra.mail import (
    ConsoleBackend,
    Mail,
    Mailer,
    MemoryBackend,
    SmtpBackend,
    backend_for,
)
from api.settings import SettingsError, load_settings
from api.web.appkeys import SERVICES_KEY
from tests.helpers.env import BASE_ENV
from tests.helpers.graphql import LOGIN
from tests.helpers.live import free_port
from tests.helpers.mailbox import REQUEST_RESET, RESET, StartApi, gql_ok, token_in

MAIL = Mail(to="ada@example.com", subject="Hi", text="open https://x/?token=SECRET", kind="test")


class Flaky:
    """A backend that fails `failures` times, then delivers."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.delivered: list[Mail] = []

    async def deliver(self, mail: Mail) -> None:
        if self.failures:
            self.failures -= 1
            raise ConnectionRefusedError("smtp server down")
        self.delivered.append(mail)


async def test_a_failed_send_is_retried(caplog: pytest.LogCaptureFixture) -> None:
    backend = Flaky(failures=2)
    mailer = Mailer(backend, attempts=3, backoff=0.01)
    async with mailer.running(drain_timeout=5):
        mailer.send(MAIL)
        await mailer.flush()
    assert backend.delivered == [MAIL]
    assert mailer.failed == 0
    assert len([r for r in caplog.records if "retry in" in r.getMessage()]) == 2


async def test_a_mail_that_keeps_failing_is_logged_without_its_token(
    caplog: pytest.LogCaptureFixture,
) -> None:
    mailer = Mailer(Flaky(failures=99), attempts=3, backoff=0.01)
    async with mailer.running(drain_timeout=5):
        mailer.send(MAIL)
    assert mailer.failed == 1
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert "NOT delivered after 3 attempts" in errors[0]
    assert "ada@example.com" in errors[0]
    assert all("SECRET" not in r.getMessage() for r in caplog.records)


async def test_sending_never_waits_and_shutdown_drains_the_queue() -> None:
    class Slow(MemoryBackend):
        async def deliver(self, mail: Mail) -> None:
            await asyncio.sleep(0.05)
            await super().deliver(mail)

    backend = Slow()
    mailer = Mailer(backend, workers=1)
    async with mailer.running(drain_timeout=5):
        loop = asyncio.get_running_loop()
        started = loop.time()
        for _ in range(4):
            mailer.send(MAIL)
        assert loop.time() - started < 0.01
        assert backend.outbox == []
    assert len(backend.outbox) == 4  # delivered before `running` returned


async def test_a_full_queue_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    mailer = Mailer(MemoryBackend(), queue_size=1)
    mailer.send(MAIL)
    mailer.send(MAIL)
    assert mailer.failed == 1
    assert any("mail queue full" in r.getMessage() for r in caplog.records)


async def test_console_mail_is_marked_and_production_withholds_the_link(
    caplog: pytest.LogCaptureFixture,
) -> None:
    await ConsoleBackend(reveal=True).deliver(MAIL)
    shown = caplog.records[-1].getMessage()
    assert "DEVELOPMENT MAIL" in shown
    assert "token=SECRET" in shown
    await ConsoleBackend(reveal=False).deliver(MAIL)
    withheld = caplog.records[-1].getMessage()
    assert "SECRET" not in withheld
    assert "NOT sent" in withheld


def test_mail_url_chooses_the_backend() -> None:
    assert isinstance(backend_for("memory://", sender="s", production=False), MemoryBackend)
    development = backend_for("console://", sender="s", production=False)
    production = backend_for("console://", sender="s", production=True)
    assert isinstance(development, ConsoleBackend)
    assert isinstance(production, ConsoleBackend)
    assert (development._reveal, production._reveal) == (True, False)
    smtp = backend_for("smtps://me%40x.org:p%3Ass@mail.example:2465", sender="s", production=True)
    assert isinstance(smtp, SmtpBackend)
    assert smtp._url == SmtpUrl(True, "mail.example", 2465, "me@x.org", "p:ss", False)
    plain = backend_for("smtp://mail.example", sender="s", production=True)
    assert isinstance(plain, SmtpBackend)
    assert plain._url == SmtpUrl(False, "mail.example", 25, None, None, False)


@pytest.mark.parametrize(
    ("url", "required"),
    [
        ("smtp://mail.example", False),  # no credentials: STARTTLS when offered
        ("smtp://u:p@mail.example:587", True),  # credentials: never in clear
        ("smtp://u:p@127.0.0.1:25?require_starttls=false", False),  # the documented opt-out
        ("smtp://mail.example?require_starttls=true", True),
        ("smtps://u:p@mail.example", False),  # TLS from the start
    ],
)
def test_starttls_is_required_with_credentials(url: str, required: bool) -> None:
    assert parse_smtp_url(url).require_starttls is required


@pytest.mark.parametrize(
    ("env", "name"),
    [
        ({"MAIL_URL": "sendmail://"}, "MAIL_URL"),
        ({"MAIL_URL": "smtp://u:p@relay?require_starttls=maybe"}, "MAIL_URL"),
        ({"MAIL_URL": "smtp://u:p@relay?starttls=off"}, "MAIL_URL"),
        ({"MAIL_URL": "smtps://u:p@relay?require_starttls=false"}, "MAIL_URL"),
        ({"VERIFY_EMAIL_URL": "https://app/verify"}, "VERIFY_EMAIL_URL"),
        ({"RESET_PASSWORD_URL": "https://app/reset"}, "RESET_PASSWORD_URL"),
        ({"RESET_TOKEN_TTL": "0"}, "RESET_TOKEN_TTL"),
    ],
)
def test_bad_mail_settings_are_refused(env: dict[str, str], name: str) -> None:
    with pytest.raises(SettingsError, match=name):
        load_settings({**BASE_ENV, **env}, env_file=None)


def test_link_templates_default_to_public_url() -> None:
    settings = load_settings({**BASE_ENV, "PUBLIC_URL": "https://app.example/"}, env_file=None)
    assert settings.verify_email_url == "https://app.example/verify-email?token={token}"
    assert settings.reset_password_url == "https://app.example/reset-password?token={token}"
    assert (settings.reset_token_ttl, settings.email_verification_ttl) == (1800, 172_800)


class Inbox:
    """aiosmtpd handler: keeps what it receives."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], Message]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(
            (envelope.mail_from, list(envelope.rcpt_tos), message_from_bytes(envelope.content))
        )
        return "250 OK"


class Authenticator:
    """aiosmtpd authenticator: accepts mailer/s3cret and counts every attempt."""

    def __init__(self) -> None:
        self.attempts = 0

    def __call__(self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
        self.attempts += 1
        good = (b"mailer", b"s3cret")
        return AuthResult(
            success=isinstance(data, LoginPassword) and (data.login, data.password) == good
        )


@dataclass
class SmtpServer:
    inbox: Inbox
    port: int
    auth: Authenticator


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key (files)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("smtp-tls")
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


def _serve(tls: ssl.SSLContext | None) -> Iterator[SmtpServer]:
    server = SmtpServer(Inbox(), free_port(), Authenticator())
    controller = Controller(
        server.inbox,
        hostname="127.0.0.1",
        port=server.port,
        authenticator=server.auth,
        tls_context=tls,
        # With TLS offered, AUTH only after STARTTLS (aiosmtpd's default); without, a relay
        # that would take a password in clear: what the client must refuse to do.
        auth_require_tls=tls is not None,
    )
    controller.start()
    try:
        yield server
    finally:
        controller.stop()


@pytest.fixture
def smtp_server(
    certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> Iterator[SmtpServer]:
    """A real SMTP server on a free loopback port offering STARTTLS, AUTH only after it;
    the client trusts its certificate (SSL_CERT_FILE)."""
    cert_file, key_file = certificate
    monkeypatch.setenv("SSL_CERT_FILE", str(cert_file))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    yield from _serve(context)


@pytest.fixture
def cleartext_smtp_server() -> Iterator[SmtpServer]:
    """A real SMTP server that offers no STARTTLS and takes AUTH in clear."""
    yield from _serve(None)


async def test_password_reset_over_real_smtp(start_api: StartApi, smtp_server: SmtpServer) -> None:
    api = await start_api(
        MAIL_URL=f"smtp://mailer:s3cret@127.0.0.1:{smtp_server.port}",
        MAIL_FROM="App <no-reply@app.example>",
    )
    await api.register("ada@example.com")
    await gql_ok(api, REQUEST_RESET, {"e": "ada@example.com"})
    await api.app[SERVICES_KEY].mailer.flush()
    assert smtp_server.auth.attempts == 1  # after STARTTLS: the server refuses AUTH before it
    assert len(smtp_server.inbox.messages) == 1
    sender, recipients, message = smtp_server.inbox.messages[0]
    assert (sender, recipients) == ("no-reply@app.example", ["ada@example.com"])
    assert message["Subject"] == "Reset your password"
    assert message["Date"]
    assert message["Message-ID"].endswith("@app.example>")
    body = message.get_payload(decode=True)
    assert isinstance(body, bytes)
    token = token_in(Mail(to="", subject="", text=body.decode(), kind=""))
    assert await gql_ok(api, RESET, {"t": token, "p": "mailed new password"})
    assert "errors" not in await api.gql(
        LOGIN, {"email": "ada@example.com", "password": "mailed new password"}
    )


async def test_credentials_never_go_to_a_server_without_starttls(
    cleartext_smtp_server: SmtpServer, caplog: pytest.LogCaptureFixture
) -> None:
    # What a man in the middle who strips the STARTTLS offer looks like to the client.
    url = f"smtp://mailer:s3cret@127.0.0.1:{cleartext_smtp_server.port}"
    mailer = Mailer(SmtpBackend(url, "s@x.org"), attempts=2, backoff=0.01)
    async with mailer.running(drain_timeout=5):
        mailer.send(MAIL)
    assert mailer.failed == 1
    assert cleartext_smtp_server.auth.attempts == 0
    assert cleartext_smtp_server.inbox.messages == []
    assert any("STARTTLS" in r.getMessage() for r in caplog.records)


async def test_a_trusted_local_relay_may_opt_out_of_starttls(
    cleartext_smtp_server: SmtpServer,
) -> None:
    url = f"smtp://mailer:s3cret@127.0.0.1:{cleartext_smtp_server.port}?require_starttls=false"
    mailer = Mailer(SmtpBackend(url, "App <s@x.org>"), attempts=1)
    async with mailer.running(drain_timeout=5):
        mailer.send(MAIL)
    assert mailer.failed == 0
    assert cleartext_smtp_server.auth.attempts == 1
    (sender, recipients, _), *_ = cleartext_smtp_server.inbox.messages
    assert (sender, recipients) == ("s@x.org", ["ada@example.com"])


async def test_recipients_are_the_stored_address_never_what_a_header_reads_as(
    cleartext_smtp_server: SmtpServer,
) -> None:
    # Registration refuses such an address (tests/accounts/test_addresses.py); the envelope is the
    # second line: one recipient, exactly the stored string, never the list a header parses to.
    listed = Mail(to="postmaster,attacker@evil.example", subject="Hi", text="t", kind="test")
    backend = SmtpBackend(f"smtp://127.0.0.1:{cleartext_smtp_server.port}", "s@x.org")
    mailer = Mailer(backend, attempts=1)
    async with mailer.running(drain_timeout=5):
        mailer.send(listed)
    delivered = [
        rcpt for _, recipients, _ in cleartext_smtp_server.inbox.messages for rcpt in recipients
    ]
    assert "attacker@evil.example" not in delivered


async def test_an_unreachable_smtp_server_is_retried_then_reported(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    mailer = Mailer(SmtpBackend(f"smtp://127.0.0.1:{port}", "s@x.org"), attempts=2, backoff=0.01)
    async with mailer.running(drain_timeout=5):
        mailer.send(MAIL)
    assert mailer.failed == 1
    messages = [r.getMessage() for r in caplog.records]
    assert any("failed (attempt 1 of 2" in m for m in messages)
    assert any("NOT delivered after 2 attempts" in m and "SMTPConnectError" in m for m in messages)
    assert all("SECRET" not in m for m in messages)


async def test_the_development_console_mailer_logs_a_usable_link(
    start_api: StartApi, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    api = await start_api()  # MAIL_URL unset: console://
    await api.register("ada@example.com")
    await gql_ok(api, REQUEST_RESET, {"e": "ada@example.com"})
    await api.app[SERVICES_KEY].mailer.flush()
    (mail_log,) = [r.getMessage() for r in caplog.records if "DEVELOPMENT MAIL" in r.getMessage()]
    token = token_in(Mail(to="", subject="", text=mail_log, kind=""))
    assert await gql_ok(api, RESET, {"t": token, "p": "from the console"})
    # That development mail is the only log line with the token in it.
    assert [r for r in caplog.records if token in r.getMessage()] == [
        r for r in caplog.records if "DEVELOPMENT MAIL" in r.getMessage()
    ]
