"""Email addresses the app will store and mail: a plain addr-spec, nothing a mailer could read
as more than one mailbox.

RFC 5322 also allows display names (`Eve <eve@evil.example>`), groups and lists
(`a@x.example,b@y.example`), quoted local parts (`"a,b"@x.example`), comments and
source routes; each lets an address deliver somewhere other than the one stored as verified.
Only the dot-atom form is accepted: `local@domain.tld`, with the characters RFC 5322
calls atext in the local part and letters, digits and hyphens in each domain label.
"""

from __future__ import annotations

import re

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
