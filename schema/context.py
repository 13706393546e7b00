"""The per-request Context, and the view whose get_context decodes the bearer token once."""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from functools import cached_property
from typing import Any, TypeGuard

import strawberry
from aiohttp import web
from cross_web import HTTPException
from graphql import GraphQLError
from strawberry.dataloader import DataLoader
from strawberry.schema.exceptions import InvalidOperationTypeError
from strawberry.types import ExecutionResult

from api.appkeys import LOOP_LAG_KEY, SERVICES_KEY
from api.auth.bearer import ANONYMOUS, Viewer
from api.auth.sessions import ClientInfo
from api.clients import client_info
from api.errors import AppError, ServiceUnavailableError, TokenRevokedError
from api.models import User
from api.networks import TrustedNetworks, parse_networks
from api.services import Services
from api.settings import Settings
from schema.http import GraphQLHTTPView
from schema.websocket import (
    AuthTransportWSHandler,
    SocketOwners,
    TextWebSocketAdapter,
    TokenWatch,
    close_all,
)


class BatchRefusedError(Exception):
    """A JSON array of operations arrived while batching is off."""


async def _load_users(ids: list[str]) -> list[User | None]:
    users = {str(user.id): user for user in await User.filter(id__in=ids)}
    return [users.get(user_id) for user_id in ids]


@dataclass
class Context:
    request: web.Request
    response: web.Response | web.WebSocketResponse
    services: Services
    viewer: Viewer
    client: ClientInfo
    # Read only with REQUIRE_VERIFIED_EMAIL on (load_email_verified); None: not read.
    email_verified: bool | None = None

    @cached_property
    def users(self) -> DataLoader[str, User | None]:
        """Users by id, batched per request; made on first use (most requests never load one)."""
        return DataLoader(load_fn=_load_users)

    async def current_user(self) -> User:
        """The viewer's own row (one primary-key lookup per request, shared by every field)."""
        assert self.viewer.user_id is not None
        user = await self.users.load(self.viewer.user_id)
        if user is None or not user.is_active:
            raise TokenRevokedError()
        return user

    async def load_email_verified(self) -> None:
        """REQUIRE_VERIFIED_EMAIL: read the viewer's row once, so guards can stay synchronous.

        The DataLoader keeps the row for the rest of the request (current_user() reuses it).
        """
        if self.viewer.user_id is not None:
            user = await self.users.load(self.viewer.user_id)
            self.email_verified = user is not None and user.email_verified


Info = strawberry.Info[Context, None]


def www_authenticate(error: AppError) -> str:
    """RFC 6750 header value for a refused token."""
    description = error.message.replace('"', "'")
    return f'Bearer error="invalid_token", error_description="{description}"'


class AuthGraphQLView(GraphQLHTTPView[Context, None]):
    """strawberry's aiohttp view with our typed Context and the HTTP-level limits."""

    # WebSockets: the token comes in connection_init and is watched while the socket is open.
    graphql_transport_ws_handler_class = AuthTransportWSHandler
    websocket_adapter_class = TextWebSocketAdapter  # type: ignore[assignment]

    def __init__(self, *args: Any, settings: Settings, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.settings = settings
        self.trusted_proxies = TrustedNetworks(
            parse_networks("TRUSTED_PROXIES", settings.trusted_proxies)
        )
        self.sockets: weakref.WeakSet[web.WebSocketResponse] = weakref.WeakSet()
        self.socket_owners = SocketOwners(settings.max_websockets_per_user)
        self.token_watch = TokenWatch()

    async def close_sockets(self, app: web.Application) -> None:
        """on_shutdown: say goodbye (1001) to open WebSockets instead of holding the exit."""
        await self.token_watch.stop()
        await close_all(list(self.sockets))

    async def __call__(self, request: web.Request) -> web.StreamResponse:
        try:
            return await super().__call__(request)
        except BatchRefusedError:
            # Batching is off: one operation per request, so aliases and limits mean something.
            body = {
                "errors": [
                    {
                        "message": "Batched requests are not accepted.",
                        "extensions": {"code": "QUERY_TOO_COMPLEX"},
                    }
                ]
            }
            return web.json_response(body, status=400)

    def _validate_batch_request(self, request_data: list[Any], protocol: str = "http") -> None:
        raise BatchRefusedError()

    async def execute_single(
        self, request: web.Request, request_adapter: Any, *args: Any, **kwargs: Any
    ) -> ExecutionResult:
        if request_adapter.method == "GET" and not self.settings.get_queries:
            raise HTTPException(405, "GraphQL queries over GET are disabled; use POST.")
        try:
            # The schema arms EXECUTION_TIMEOUT (only for operations that wait on something).
            return await super().execute_single(request, request_adapter, *args, **kwargs)
        except HTTPException as exc:
            # GraphQL over HTTP: a mutation over GET is 405 Method Not Allowed (strawberry: 400).
            if request_adapter.method == "GET" and isinstance(
                exc.__cause__, InvalidOperationTypeError
            ):
                raise HTTPException(405, exc.reason) from exc
            raise
        except TimeoutError:
            busy = (
                request.app[LOOP_LAG_KEY].saturated or request.app[SERVICES_KEY].hasher.backlogged
            )
            if busy:  # the server (its loop or its password hashing) is short, not the query big
                message = "The server is too busy to finish this operation; retry later."
                error = GraphQLError(message, extensions={"code": "SERVICE_UNAVAILABLE"})
            else:
                error = GraphQLError(
                    f"The operation took longer than {self.settings.execution_timeout} s.",
                    extensions={"code": "QUERY_TOO_COMPLEX"},
                )
            return ExecutionResult(data=None, errors=[error])

    async def get_context(
        self, request: web.Request, response: web.Response | web.WebSocketResponse
    ) -> Context:
        services = request.app[SERVICES_KEY]
        if isinstance(response, web.WebSocketResponse):
            self.sockets.add(response)
            viewer = ANONYMOUS  # until connection_init carries a token (schema/websocket.py)
        else:
            viewer = await services.bearer.authenticate(request.headers.get("Authorization"))
        if (
            viewer.error is not None
            # A token that cannot be checked now (a dependency is down) is not an invalid one.
            and not isinstance(viewer.error, ServiceUnavailableError)
            and isinstance(response, web.Response)
        ):
            response.headers["WWW-Authenticate"] = www_authenticate(viewer.error)
        context = Context(
            request=request,
            response=response,
            services=services,
            viewer=viewer,
            client=client_info(request, self.trusted_proxies),
        )
        if services.settings.require_verified_email:  # off (the default): no query at all
            await context.load_email_verified()
        return context

    def encode_json(self, data: Any) -> bytes:
        import orjson

        return orjson.dumps(data)

    def is_websocket_request(self, request: web.Request) -> TypeGuard[web.Request]:
        # strawberry builds a WebSocketResponse and a refused handshake (an HTTPException)
        # twice per request to find out; a handshake is always a GET with Upgrade.
        if request.method != "GET" or "Upgrade" not in request.headers:
            return False
        return super().is_websocket_request(request)

    def decode_json(self, data: str | bytes) -> object:
        import orjson

        # orjson stops at 1024 levels with a JSONDecodeError (a 400): the standard library
        # recurses until RecursionError, a 500, on a deeply nested body.
        return orjson.loads(data)
