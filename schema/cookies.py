"""REFRESH_COOKIE mode: the refresh token travels in an HttpOnly cookie instead of the body."""

from __future__ import annotations

from urllib.parse import urlsplit

from aiohttp import web

from api.auth.sessions import IssuedPair
from api.errors import BadUserInputError, ForbiddenError
from schema.context import Info
from schema.types import TokenPair

COOKIE = "graphgate_refresh"
PATH = "/graphql"


def deliver(info: Info, pair: IssuedPair) -> TokenPair:
    """The answer to login/register/refresh: the refresh token in the body, or in the cookie."""
    ctx = info.context
    if not ctx.services.settings.refresh_cookie or not isinstance(ctx.response, web.Response):
        return TokenPair.from_issued(pair)
    ctx.response.set_cookie(
        COOKIE,
        pair.refresh_token,
        max_age=pair.refresh_expires_in,
        path=PATH,
        httponly=True,
        secure=True,
        samesite="Strict",
    )
    return TokenPair.from_issued(pair, include_refresh=False)


def clear(info: Info) -> None:
    """Logout: tell the browser to drop the cookie."""
    ctx = info.context
    if ctx.services.settings.refresh_cookie and isinstance(ctx.response, web.Response):
        ctx.response.del_cookie(COOKIE, path=PATH, secure=True, httponly=True, samesite="Strict")


def _allowed_origins(info: Info) -> set[str]:
    settings = info.context.services.settings
    public = urlsplit(settings.public_url)
    return {*settings.cors_origins, f"{public.scheme}://{public.netloc}"}


def refresh_token(info: Info, argument: str | None) -> str:
    """The refresh token to spend: the argument, else (cookie mode) the cookie.

    A cookie is sent by the browser on its own, so spending it needs a JSON request (no
    simple cross-site form can make one) from an allowed Origin: that is the CSRF defence.
    """
    if argument:
        return argument
    ctx = info.context
    token = ctx.request.cookies.get(COOKIE) if ctx.services.settings.refresh_cookie else None
    if not token:
        raise BadUserInputError("refreshToken", "'refreshToken' is required.")
    if ctx.request.content_type != "application/json":
        raise ForbiddenError("A cookie refresh must be a JSON request.")
    if ctx.request.headers.get("Origin") not in _allowed_origins(info):
        raise ForbiddenError("A cookie refresh must come from an allowed Origin.")
    return token
