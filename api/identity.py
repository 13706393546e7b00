"""Who is asking, as plain values every layer may use: token claims, the Viewer (anonymous
included) and where a request came from. The services that produce them live in api/auth/;
IssuedPair stays with the session service (api/auth/sessions.py): it carries the User row."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from api.errors import AppError


@dataclass(frozen=True, slots=True)
class AccessClaims:
    """A verified access token's claims (auth/tokens.py checks them)."""

    sub: str
    sid: str
    jti: str
    iat: int
    exp: int
    roles: tuple[str, ...]
    auth_time: int
    # RFC 8176 authentication methods: ("pwd",), or ("pwd", "otp", "mfa") after a second factor.
    amr: tuple[str, ...] = ("pwd",)

    @property
    def multi_factor(self) -> bool:
        return "mfa" in self.amr


@dataclass(frozen=True, slots=True)
class RefreshClaims:
    """A verified refresh token's claims."""

    sub: str
    sid: str
    jti: str
    iat: int
    exp: int


@dataclass(frozen=True, slots=True)
class Viewer:
    """The requester. Anonymous is a Viewer too: no claims, and maybe the reason why."""

    claims: AccessClaims | None = None
    error: AppError | None = None  # a token was sent but refused: guarded fields raise this

    @property
    def is_authenticated(self) -> bool:
        return self.claims is not None

    @property
    def user_id(self) -> str | None:
        return self.claims.sub if self.claims else None

    def has_role(self, role: str) -> bool:
        return self.claims is not None and role in self.claims.roles


ANONYMOUS = Viewer()


@dataclass(frozen=True, slots=True)
class ClientInfo:
    """Where a request came from, as recorded on sessions and audit events."""

    ip: str | None = None
    user_agent: str | None = None

    @property
    def stored_user_agent(self) -> str | None:
        """The User-Agent as the tables keep it (and compare it): at most 500 characters."""
        return self.user_agent[:500] if self.user_agent else None


def parse_id(raw: str) -> uuid.UUID | None:
    """A UUID (a user's or a session's id), or None for anything else: callers answer
    NOT_FOUND or treat the id as unknown, revealing nothing."""
    try:
        return uuid.UUID(raw)
    except ValueError:
        return None
