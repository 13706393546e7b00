"""How a refresh token travels, chosen once from REFRESH_COOKIE: in the response body
(BodyTransport), or in an HttpOnly cookie (CookieTransport). Plain values only: the web
layer hands in the request's cookie, content type and Origin, and the response's cookies."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

from api.auth.sessions import IssuedPair
from api.errors import BadUserInputError, ForbiddenError
from api.settings import Settings

COOKIE = "graphgate_refresh"
PATH = "/graphql"


class CookieJar(Protocol):
    """The response's cookies (aiohttp's Response is one)."""

    def set_cookie(
        self,
        name: str,
        value: str,
        *,
        max_age: int,
        path: str,
        httponly: bool,
        secure: bool,
        samesite: str,
    ) -> None: ...

    def del_cookie(
        self, name: str, *, path: str, secure: bool, httponly: bool, samesite: str
    ) -> None: ...


class Transport(Protocol):
    """Where login, register and refresh put the refresh token, and where refresh finds it."""

    def deliver(self, pair: IssuedPair) -> bool:
        """Send the pair's refresh token; True when it belongs in the response body."""
        ...

    def clear(self) -> None:
        """Logout: forget the refresh token on the client's side, if we keep it there."""
        ...

    def refresh_token(self, argument: str | None) -> str:
        """The refresh token to spend."""
        ...


def _required() -> BadUserInputError:
    return BadUserInputError("refreshToken", "'refreshToken' is required.")


class BodyTransport:
    """The refresh token in the body, spent by passing it as the argument."""

    def deliver(self, pair: IssuedPair) -> bool:
        return True

    def clear(self) -> None:
        return None

    def refresh_token(self, argument: str | None) -> str:
        if not argument:
            raise _required()
        return argument


@dataclass(frozen=True, slots=True)
class CookieTransport:
    """REFRESH_COOKIE: the refresh token in an HttpOnly cookie instead of the body."""

    jar: CookieJar | None  # None over a WebSocket: no cookie can be set there
    sent: str | None  # the cookie the request carried
    content_type: str
    origin: str | None
    allowed_origins: frozenset[str]

    @staticmethod
    def origins(settings: Settings) -> frozenset[str]:
        """The origins a cookie refresh may come from: CORS_ORIGINS and PUBLIC_URL's."""
        public = urlsplit(settings.public_url)
        return frozenset({*settings.cors_origins, f"{public.scheme}://{public.netloc}"})

    def deliver(self, pair: IssuedPair) -> bool:
        if self.jar is None:
            return True
        self.jar.set_cookie(
            COOKIE,
            pair.refresh_token,
            max_age=pair.refresh_expires_in,
            path=PATH,
            httponly=True,
            secure=True,
            samesite="Strict",
        )
        return False

    def clear(self) -> None:
        if self.jar is not None:
            self.jar.del_cookie(COOKIE, path=PATH, secure=True, httponly=True, samesite="Strict")

    def refresh_token(self, argument: str | None) -> str:
        """The argument, else the cookie.

        A cookie is sent by the browser on its own, so spending it needs a JSON request (no
        simple cross-site form can make one) from an allowed Origin: that is the CSRF defence.
        """
        if argument:
            return argument
        if not self.sent:
            raise _required()
        if self.content_type != "application/json":
            raise ForbiddenError("A cookie refresh must be a JSON request.")
        if self.origin not in self.allowed_origins:
            raise ForbiddenError("A cookie refresh must come from an allowed Origin.")
        return self.sent
