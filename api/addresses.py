"""Addresses, as pure values settings and services share: the mail server's URL (MAIL_URL),
and the email addresses the app will store and mail: a plain addr-spec, nothing a mailer could read
as more than one mailbox.

RFC 5322 also allows display names (`Eve <eve@evil.example>`), groups and lists
(`a@x.example,b@y.example`), quoted local parts (`"a,b"@x.example`), comments and
source routes; each lets an address deliver somewhere other than the one stored as verified.
Only the dot-atom form is accepted: `local@domain.tld`, with the characters RFC 5322
calls atext in the local part and letters, digits and hyphens in each domain label.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote, urlsplit

MAX_ADDRESS = 254  # RFC 5321's limit on a forward path, less the angle brackets
MAX_LOCAL_PART = 64

_ATOM = r"[a-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"(?!-)[a-z0-9-]{1,63}(?<!-)"
_ADDR_SPEC = re.compile(rf"{_ATOM}(?:\.{_ATOM})*@{_LABEL}(?:\.{_LABEL})+", re.ASCII)


def is_plain_address(email: str) -> bool:
    """Whether `email` (already trimmed and lower-cased) is one plain addr-spec."""
    local, _, _ = email.partition("@")
    return (
        len(email) <= MAX_ADDRESS
        and len(local) <= MAX_LOCAL_PART
        and _ADDR_SPEC.fullmatch(email) is not None
    )


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


@dataclass(frozen=True, slots=True)
class SmtpUrl:
    """What an smtp:// or smtps:// MAIL_URL says."""

    tls: bool
    host: str
    port: int
    username: str | None
    password: str | None
    require_starttls: bool


def parse_smtp_url(url: str) -> SmtpUrl:
    """Read an smtp(s):// MAIL_URL; ValueError naming MAIL_URL for an unknown parameter."""
    parts = urlsplit(url)
    tls = parts.scheme == "smtps"
    username = unquote(parts.username) if parts.username else None
    # Credentials must never cross the network in clear: STARTTLS is required with them.
    require_starttls = username is not None and not tls
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name != "require_starttls" or tls or value.lower() not in _TRUE | _FALSE:
            raise ValueError(
                "MAIL_URL accepts one parameter, smtp://…?require_starttls=true|false, "
                f"got {name}={value!r}"
            )
        require_starttls = value.lower() in _TRUE
    return SmtpUrl(
        tls=tls,
        host=parts.hostname or "127.0.0.1",
        port=parts.port or (465 if tls else 25),
        username=username,
        password=unquote(parts.password) if parts.password else None,
        require_starttls=require_starttls,
    )
