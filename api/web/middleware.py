"""HTTP middleware: security headers on every response, CORS for listed origins only, and no
compressed request bodies."""

from __future__ import annotations

from collections.abc import Iterable

from aiohttp import web, web_response
from aiohttp.typedefs import Handler, Middleware

_STRICT_CSP = "default-src 'none'; frame-ancestors 'none'"
SERVER_HEADER = "graphgate"


def hide_server_version() -> None:
    """`Server: graphgate` on every response, instead of aiohttp's name and version.

    aiohttp fills the header from this module-level default when a response has none,
    including the 400s it writes itself for malformed requests (no middleware or signal
    runs for those); a version tells a scanner which known bugs to try.
    """
    web_response.SERVER_SOFTWARE = SERVER_HEADER  # type: ignore[attr-defined]


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    """nosniff, no framing, no referrer; `no-store` on GraphQL answers (they carry tokens)."""
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        response = exc
    if response.prepared:  # WebSockets and streams: headers are gone already
        return response
    _add_security_headers(request, response)
    if isinstance(response, web.HTTPException):
        raise response
    return response


def _add_security_headers(request: web.Request, response: web.StreamResponse) -> None:
    headers = response.headers
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Referrer-Policy", "no-referrer")
    if request.path == "/graphql" or request.path.startswith("/graphql/"):
        headers["Cache-Control"] = "no-store"
    # Pages that need more (GraphiQL, api/web/graphiql.py) set their own policy first.
    headers.setdefault("Content-Security-Policy", _STRICT_CSP)


@web.middleware
async def identity_bodies_only(request: web.Request, handler: Handler) -> web.StreamResponse:
    """415 for a request body with a Content-Encoding (gzip, deflate, br, ...), and the
    connection closed without reading the rest.

    aiohttp inflates such a body as it arrives, and after answering it drains what is left
    to keep the connection: 1 MB of gzip (1 GB inflated) stalled the worker for seconds."""
    encoding = request.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding in ("", "identity"):
        return await handler(request)
    response = web.json_response(
        {"errors": [{"message": "Compressed request bodies are not accepted."}]}, status=415
    )
    response.force_close()
    _add_security_headers(request, response)  # prepared here: security_headers cannot
    await response.prepare(request)
    await response.write_eof()
    request.protocol.force_close()  # no draining: the rest of the body is never read
    return response


def cors(origins: Iterable[str]) -> Middleware:
    """CORS for the origins in CORS_ORIGINS (with credentials); others get no CORS headers."""
    allowed = frozenset(origins)

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        origin = request.headers.get("Origin")
        listed = origin is not None and origin in allowed
        if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
            if not listed:
                return web.Response(status=403, text="Origin not allowed")
            response: web.StreamResponse = web.Response(status=204)
            response.headers["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
            response.headers["Access-Control-Allow-Headers"] = (
                "Authorization, Content-Type, Accept, X-Request-ID"
            )
            response.headers["Access-Control-Max-Age"] = "600"
        else:
            response = await handler(request)
        if listed and not response.prepared:
            assert origin is not None
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Access-Control-Allow-Credentials"] = "true"
            response.headers["Access-Control-Expose-Headers"] = "WWW-Authenticate, X-Request-ID"
            response.headers.add("Vary", "Origin")
        return response

    return middleware
