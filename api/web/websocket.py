"""Subscriptions over graphql-transport-ws, authenticated in `connection_init`.

Close codes (docs/API.md, HTTP endpoints):
- 4403 + contract code (UNAUTHENTICATED, INVALID_TOKEN, TOKEN_EXPIRED, TOKEN_REVOKED) when
  the `connection_init` payload has no good `Authorization: Bearer <access token>`;
- 4401 + TOKEN_EXPIRED / TOKEN_REVOKED when the token of an open socket expires or its
  session ends: one timer per worker (TokenWatch) rechecks every open socket's token every
  WATCH_INTERVAL seconds;
- 4429 + RATE_LIMITED when the user already has MAX_WEBSOCKETS_PER_USER sockets open;
- 4400 (the protocol's invalid message) for a `subscribe` with no document: its payload not
  an object, or no string `query` and no `documentId` or APQ hash.

strawberry's own hook, `view.on_ws_connect`, can only refuse with `ConnectionRejectionError`,
which always closes with reason "Forbidden"; the contract wants the code as the reason, so
the handler's `handle_connection_init` is the override point.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, cast

import orjson
from aiohttp import ClientConnectionResetError, WSCloseCode, web
from strawberry.aiohttp.views import AiohttpWebSocketAdapter
from strawberry.http.exceptions import WebSocketDisconnected
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import (
    ConnectionInitMessage,
    ErrorMessage,
    SubscribeMessage,
)

from api.errors import AppError, InvalidTokenError, RateLimitedError, UnauthenticatedError
from api.identity import AccessClaims
from api.infra.tasks import cancel_all
from schema.persisted import PersistedDocuments

if TYPE_CHECKING:
    from schema.context import Context

log = logging.getLogger(__name__)

WATCH_INTERVAL = 1.0  # seconds: the contract closes a dead token's socket within two
REFUSED = 4403
ENDED = 4401
TOO_MANY = 4429
INVALID = 4400  # the protocol's invalid message


async def close_all(sockets: list[web.WebSocketResponse]) -> None:
    """Close sockets with 1001 (going away): clients reconnect, to another replica if any."""
    await asyncio.gather(
        *(ws.close(code=WSCloseCode.GOING_AWAY, message=b"Server shutting down") for ws in sockets),
        return_exceptions=True,
    )


class TextWebSocketAdapter(AiohttpWebSocketAdapter):
    """Sends JSON as text frames: the view's encode_json gives bytes, which strawberry would
    send as binary frames, and graphql-transport-ws clients expect text."""

    async def send_json(self, message: Mapping[str, object]) -> None:
        try:
            await self.ws.send_str(orjson.dumps(message).decode())
        except (RuntimeError, ClientConnectionResetError) as exc:
            raise WebSocketDisconnected from exc


def _authorization(payload: dict[str, Any]) -> str | AppError | None:
    """The `Authorization` value of a connection_init payload (any letter case)."""
    for key, value in payload.items():
        if key.lower() == "authorization":
            if not isinstance(value, str):
                return InvalidTokenError("'Authorization' must be a string.")
            return value
    return None


class SocketOwners:
    """Authenticated sockets open per user on this worker: at most `limit` each, so one
    self-registered account cannot hold every MAX_WEBSOCKETS slot."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._open: Counter[str] = Counter()

    def claim(self, user_id: str) -> bool:
        """Count one more socket for `user_id`; False (nothing counted) past the limit."""
        if self._open[user_id] >= self._limit:
            return False
        self._open[user_id] += 1
        return True

    def release(self, user_id: str) -> None:
        self._open[user_id] -= 1
        if self._open[user_id] <= 0:
            del self._open[user_id]


class TokenWatch:
    """One timer for every open socket's token: each WATCH_INTERVAL seconds, the tokens are
    rechecked and the sockets of dead ones closed (4401). A task per socket cost each idle
    socket two wake-ups a second."""

    def __init__(self, interval: float = WATCH_INTERVAL) -> None:
        self._interval = interval
        self._watched: dict[AuthTransportWSHandler, AccessClaims] = {}
        self._task: asyncio.Task[None] | None = None

    def add(self, handler: AuthTransportWSHandler, claims: AccessClaims) -> None:
        self._watched[handler] = claims
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run())

    def discard(self, handler: AuthTransportWSHandler) -> None:
        self._watched.pop(handler, None)

    async def stop(self) -> None:
        """Cancel the timer (shutdown)."""
        self._watched.clear()
        if self._task is not None:
            await cancel_all([self._task])

    async def _run(self) -> None:
        while self._watched:  # the timer ends with the last socket; add() restarts it
            await asyncio.sleep(self._interval)
            watched = list(self._watched.items())
            outcomes = await asyncio.gather(*(_recheck(h, claims) for h, claims in watched))
            closing: list[Awaitable[None]] = []
            failed = [outcome for outcome in outcomes if isinstance(outcome, _Failed)]
            for (handler, _), outcome in zip(watched, outcomes, strict=True):
                if isinstance(outcome, AppError) and handler in self._watched:
                    self.discard(handler)
                    closing.append(handler.websocket.close(code=ENDED, reason=outcome.code))
            if failed:
                log.warning(
                    "websocket token recheck failed for %d socket(s); will retry",
                    len(failed),
                    exc_info=failed[0].error,
                )
            await asyncio.gather(*closing, return_exceptions=True)


@dataclass(frozen=True, slots=True)
class _Failed:
    error: Exception


async def _recheck(
    handler: AuthTransportWSHandler, claims: AccessClaims
) -> AppError | _Failed | None:
    """Why the socket's token is refused now (None: still good), or why that is unknown."""
    try:
        return await handler.context.services.bearer.recheck(claims)
    except Exception as error:  # e.g. the database is briefly away: check again next time
        return _Failed(error)


class SocketRegistry(Protocol):
    """What the view keeps for its sockets (schema/context.py)."""

    socket_owners: SocketOwners
    token_watch: TokenWatch
    persisted: PersistedDocuments


class AuthTransportWSHandler(BaseGraphQLTransportWSHandler[Any, None]):
    """strawberry's graphql-transport-ws handler with our token check and watcher."""

    context: Context
    owner: str | None = None  # the user whose socket count this socket holds

    @property
    def registry(self) -> SocketRegistry:
        return self.view  # type: ignore[return-value]

    async def handle_connection_init(self, message: ConnectionInitMessage) -> None:
        payload = message.get("payload", {})
        # Malformed, repeated or late inits: strawberry's own handling (4400/4429) applies.
        if isinstance(payload, dict) and not (
            self.connection_init_received or self.connection_timed_out
        ):
            refused = await self._authenticate(payload)
            if refused is not None:
                if self.connection_init_timeout_task:
                    self.connection_init_timeout_task.cancel()
                self.connection_init_received = True
                close_code = TOO_MANY if isinstance(refused, RateLimitedError) else REFUSED
                await self.websocket.close(code=close_code, reason=refused.code)
                return
        await super().handle_connection_init(message)

    async def _authenticate(self, payload: dict[str, Any]) -> AppError | None:
        """Put the viewer in the context and start watching, or say why not."""
        authorization = _authorization(payload)
        if isinstance(authorization, AppError):
            return authorization
        viewer = await self.context.services.bearer.authenticate(authorization)
        if viewer.error is not None:
            return viewer.error
        if viewer.claims is None or viewer.user_id is None:
            return UnauthenticatedError()
        if not self.registry.socket_owners.claim(viewer.user_id):
            return RateLimitedError(1, "Too many WebSockets open for this user.")
        self.owner = viewer.user_id
        self.context.viewer = viewer
        if self.context.needs_guard_facts:  # read once per socket
            await self.context.load_email_verified()
        self.registry.token_watch.add(self, viewer.claims)
        return None

    async def handle_subscribe(self, message: SubscribeMessage) -> None:
        """The document a subscribe names (its text, `documentId` or Apollo's hash) as over
        HTTP: in `only` mode, a trusted one or an `error` message; nothing is registered."""
        payload: Any = message.get("payload")
        if self.connection_acknowledged:
            if not isinstance(payload, dict):
                await self.websocket.close(code=INVALID, reason="Invalid subscribe payload")
                return
            extensions = payload.get("extensions")
            try:
                resolved = await self.registry.persisted.resolve(
                    payload.get("query"),
                    payload.get("documentId"),
                    extensions if isinstance(extensions, dict) else None,
                )
            except AppError as refused:
                error: Any = {"message": refused.message, "extensions": refused.extensions}
                refusal: ErrorMessage = {"id": message["id"], "type": "error", "payload": [error]}
                await self.send_message(refusal)
                return
            if resolved.query is None:  # no text (or not a string) and no named document:
                # strawberry would run it anyway and log a traceback (a masked error, or a
                # silent `complete`) for each such message; the protocol says 4400.
                await self.websocket.close(code=INVALID, reason="Invalid subscribe payload")
                return
            message = cast(
                "SubscribeMessage", {**message, "payload": {**payload, "query": resolved.query}}
            )
        await super().handle_subscribe(message)

    async def shutdown(self) -> None:
        self.registry.token_watch.discard(self)
        if self.owner is not None:
            self.registry.socket_owners.release(self.owner)
            self.owner = None
        await super().shutdown()
