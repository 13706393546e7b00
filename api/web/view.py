"""The GraphQL view: strawberry's aiohttp view whose get_context decodes the bearer token once
and builds the schema's Context from plain values."""

from __future__ import annotations

import weakref
from typing import Any, TypeGuard

from aiohttp import web
from cross_web import HTTPException
from graphql import GraphQLError
from strawberry.http import GraphQLRequestData
from strawberry.schema.exceptions import InvalidOperationTypeError
from strawberry.types import ExecutionResult

from api.errors import AppError, QueryTooComplexError, ServiceUnavailableError
from api.identity import ANONYMOUS
from api.networks import TrustedNetworks
from api.settings import Settings
from api.web.appkeys import LOOP_LAG_KEY, SERVICES_KEY
from api.web.clients import client_info
from api.web.http import GraphQLHTTPView
from api.web.persisted import note_document, ran, refused_error
from api.web.websocket import (
    AuthTransportWSHandler,
    SocketOwners,
    TextWebSocketAdapter,
    TokenWatch,
    close_all,
)
from schema.context import Context
from schema.persisted import PersistedDocuments
from schema.telemetry import record_operation
from schema.transport import COOKIE, BodyTransport, CookieTransport, Transport


class BatchRefusedError(Exception):
    """A JSON array of operations arrived while batching is off."""


def www_authenticate(error: AppError) -> str:
    """RFC 6750 header value for a refused token."""
    description = error.message.replace('"', "'")
    return f'Bearer error="invalid_token", error_description="{description}"'


class AuthGraphQLView(GraphQLHTTPView[Context, None]):
    """strawberry's aiohttp view with our typed Context and the HTTP-level limits."""

    # WebSockets: the token comes in connection_init and is watched while the socket is open.
    graphql_transport_ws_handler_class = AuthTransportWSHandler
    websocket_adapter_class = TextWebSocketAdapter  # type: ignore[assignment]

    def __init__(
        self,
        *args: Any,
        settings: Settings,
        trusted_proxies: TrustedNetworks,
        persisted: PersistedDocuments,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.settings = settings
        self.persisted = persisted
        self.trusted_proxies = trusted_proxies
        self.sockets: weakref.WeakSet[web.WebSocketResponse] = weakref.WeakSet()
        self.socket_owners = SocketOwners(settings.max_websockets_per_user)
        self.token_watch = TokenWatch()
        self.cookie_origins = CookieTransport.origins(settings) if settings.refresh_cookie else None

    async def close_sockets(self, app: web.Application) -> None:
        """on_shutdown: say goodbye (1001) to open WebSockets instead of holding the exit."""
        await self.token_watch.stop()
        await close_all(list(self.sockets))

    async def __call__(self, request: web.Request) -> web.StreamResponse:
        try:
            return await super().__call__(request)
        except BatchRefusedError:
            # Batching is off: one operation per request, so aliases and limits mean something.
            refused = QueryTooComplexError("Batched requests are not accepted.")
            return web.json_response(refused.response_body(), status=400)

    def _validate_batch_request(self, request_data: list[Any], protocol: str = "http") -> None:
        raise BatchRefusedError()

    async def execute_single(
        self, request: web.Request, request_adapter: Any, *args: Any, **kwargs: Any
    ) -> ExecutionResult:
        if request_adapter.method == "GET" and not self.settings.get_queries:
            raise HTTPException(405, "GraphQL queries over GET are disabled; use POST.")
        request_data: GraphQLRequestData = kwargs["request_data"]
        context: Context = kwargs["context"]
        try:
            resolved = await self.persisted.resolve(
                request_data.query,
                getattr(request_data, "document_id", None),
                request_data.extensions,
            )
        except AppError as refused:
            error = refused_error(refused)
            record_operation(context, request_data.operation_name, "unknown", [error])
            note_document(context.services.metrics, None, request_data.operation_name, refused.code)
            return ExecutionResult(data=None, errors=[error])
        operation = request_data.operation_name or resolved.name
        note_document(context.services.metrics, resolved, operation, "ran")
        if resolved.query is not request_data.query:  # a named document: run its text
            kwargs["request_data"] = GraphQLRequestData(
                query=resolved.query,
                variables=request_data.variables,
                operation_name=request_data.operation_name,
                extensions=request_data.extensions,
                protocol=request_data.protocol,
            )
        try:
            # The schema arms EXECUTION_TIMEOUT (only for operations that wait on something).
            result = await super().execute_single(request, request_adapter, *args, **kwargs)
            if resolved.register and ran(result):
                await self.persisted.register(resolved)  # hash, validation and limits passed
            return result
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
            reason: AppError
            if busy:  # the server (its loop or its password hashing) is short, not the query big
                reason = ServiceUnavailableError(
                    "The server is too busy to finish this operation; retry later."
                )
            else:
                reason = QueryTooComplexError(
                    f"The operation took longer than {self.settings.execution_timeout} s."
                )
            error = GraphQLError(reason.message, extensions=reason.extensions)
            return ExecutionResult(data=None, errors=[error])

    async def get_context(
        self, request: web.Request, response: web.Response | web.WebSocketResponse
    ) -> Context:
        services = request.app[SERVICES_KEY]
        if isinstance(response, web.WebSocketResponse):
            self.sockets.add(response)
            viewer = ANONYMOUS  # until connection_init carries a token (api/web/websocket.py)
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
            services=services,
            viewer=viewer,
            client=client_info(request, self.trusted_proxies),
            transport=self._transport(request, response),
        )
        if context.needs_guard_facts:  # off (the default): no query at all
            await context.load_email_verified()
        return context

    def _transport(
        self, request: web.Request, response: web.Response | web.WebSocketResponse
    ) -> Transport:
        """REFRESH_COOKIE decides, once: the refresh token in the body or in a cookie."""
        if self.cookie_origins is None:
            return BodyTransport()
        return CookieTransport(
            jar=response if isinstance(response, web.Response) else None,
            sent=request.cookies.get(COOKIE),
            content_type=request.content_type,
            origin=request.headers.get("Origin"),
            allowed_origins=self.cookie_origins,
        )

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
