"""Subscriptions over graphql-transport-ws, authenticated in `connection_init`.

Close codes (docs/API.md, HTTP endpoints):
- 4403 + contract code (UNAUTHENTICATED, INVALID_TOKEN, TOKEN_EXPIRED, TOKEN_REVOKED) when
  the `connection_init` payload has no good `Authorization: Bearer <access token>`;
- 4401 + TOKEN_EXPIRED / TOKEN_REVOKED when the token of an open socket expires or its
  session ends: a watcher rechecks it every WATCH_INTERVAL seconds.

strawberry's own hook, `view.on_ws_connect`, can only refuse with `ConnectionRejectionError`,
which always closes with reason "Forbidden"; the contract wants the code as the reason, so
the handler's `handle_connection_init` is the override point.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import ClientConnectionResetError, WSCloseCode, web
from strawberry.aiohttp.views import AiohttpWebSocketAdapter
from strawberry.http.exceptions import WebSocketDisconnected
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import ConnectionInitMessage

from api.errors import AppError, InvalidTokenError, UnauthenticatedError
from api.identity import AccessClaims
from api.infra.tasks import cancel_all

if TYPE_CHECKING:
    from schema.context import Context

log = logging.getLogger(__name__)

WATCH_INTERVAL = 0.5  # seconds: the contract closes a dead token's socket within two
REFUSED = 4403
ENDED = 4401


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


class AuthTransportWSHandler(BaseGraphQLTransportWSHandler[Any, None]):
    """strawberry's graphql-transport-ws handler with our token check and watcher."""

    context: Context
    watcher: asyncio.Task[None] | None = None

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
                await self.websocket.close(code=REFUSED, reason=refused.code)
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
        if viewer.claims is None:
            return UnauthenticatedError()
        self.context.viewer = viewer
        if self.context.services.settings.require_verified_email:  # read once per socket
            await self.context.load_email_verified()
        self.watcher = asyncio.create_task(self._watch(viewer.claims))
        return None

    async def _watch(self, claims: AccessClaims) -> None:
        bearer = self.context.services.bearer
        while True:
            await asyncio.sleep(WATCH_INTERVAL)
            try:
                ended = await bearer.recheck(claims)
            except Exception:  # e.g. the database is briefly away: check again next time
                log.warning("websocket token recheck failed; will retry", exc_info=True)
                continue
            if ended is not None:
                await self.websocket.close(code=ENDED, reason=ended.code)
                return

    async def shutdown(self) -> None:
        if self.watcher is not None:
            await cancel_all([self.watcher])
        await super().shutdown()
