"""GraphQL over HTTP: the response media type a client asked for, and its status codes.

`application/json` (the legacy type every client understands) answers 200 for every
well-formed request, errors included. `application/graphql-response+json` answers a
request error (the document does not parse or validate, the variables do not coerce: no
execution happened) with 400 and no `data` entry, so an HTTP client can tell "my request is
wrong" from "a field failed" without reading the body.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

from aiohttp import web
from cross_web import AsyncHTTPRequestAdapter, HTTPException
from strawberry.aiohttp.views import GraphQLView
from strawberry.http import GraphQLHTTPResponse, GraphQLRequestData
from strawberry.types import ExecutionResult

from api.web.graphiql import graphiql_response

GRAPHQL_RESPONSE_JSON = "application/graphql-response+json"
JSON = "application/json"
_STATUS_FOR_CODE = {
    "SERVICE_UNAVAILABLE": 503,
    "INTERNAL_SERVER_ERROR": 500,
    # As Apollo Router answers them; Apollo Client's persisted-queries link reads the body
    # of a 4xx answer too, so it still retries with the full text.
    "PERSISTED_QUERY_NOT_FOUND": 404,
    "DOCUMENT_NOT_TRUSTED": 403,
}

# Where the negotiated type waits on the sub-response until the body is written.
_MEDIA_TYPE: web.ResponseKey[str] = web.ResponseKey("graphgate_media_type", str)

ContextT = TypeVar("ContextT")
RootT = TypeVar("RootT")


def negotiate(accept: str | None) -> str:
    """The response media type for an Accept header (RFC 9110 q-values and specificity).

    `application/graphql-response+json` needs to be asked for by name; a bare `*/*`, no
    header, or only types we cannot produce get `application/json`, as the spec asks for
    legacy clients.
    """
    if not accept:
        return JSON
    best: dict[str, tuple[float, int]] = {}  # media type -> (q, specificity of the match)
    for part in accept.split(","):
        media_range, *params = (piece.strip() for piece in part.split(";"))
        media_range = media_range.lower()
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = min(max(float(value), 0.0), 1.0)
                except ValueError:
                    q = 0.0
        for candidate in (GRAPHQL_RESPONSE_JSON, JSON):
            specificity = _specificity(media_range, candidate)
            # The most specific range that matches decides the candidate's q.
            if specificity and specificity > best.get(candidate, (0.0, 0))[1]:
                best[candidate] = (q, specificity)
    graphql_q, graphql_spec = best.get(GRAPHQL_RESPONSE_JSON, (0.0, 0))
    json_q, json_spec = best.get(JSON, (0.0, 0))
    if graphql_q > 0 and (graphql_q, graphql_spec) >= (json_q, json_spec) and graphql_spec == 3:
        return GRAPHQL_RESPONSE_JSON
    return JSON


def _specificity(media_range: str, candidate: str) -> int:
    if media_range == candidate:
        return 3
    if media_range == "application/*":
        return 2
    if media_range == "*/*":
        return 1
    return 0


@dataclass
class PersistedRequestData(GraphQLRequestData):
    """A request that may name its document instead of sending it (schema/persisted.py)."""

    document_id: object = None  # the `documentId` member, unchecked


def names_a_document(data: dict[str, Any]) -> bool:
    """The request names a persisted document (`documentId`, or Apollo's extension)."""
    extensions = data.get("extensions")
    return data.get("documentId") is not None or (
        type(extensions) is dict and extensions.get("persistedQuery") is not None
    )


def is_request_error(data: GraphQLHTTPResponse) -> bool:
    """No execution happened: no data, and no error points at a field (spec: request error)."""
    errors = data.get("errors") or []
    if data.get("data") is not None or not errors:
        return False
    return all(isinstance(error, dict) and not error.get("path") for error in errors)


def request_error_status(data: GraphQLHTTPResponse) -> int:
    codes = [
        (error.get("extensions") or {}).get("code")
        for error in data.get("errors") or []
        if isinstance(error, dict)
    ]
    return next((_STATUS_FOR_CODE[code] for code in codes if code in _STATUS_FOR_CODE), 400)


def vary_on_accept(response: web.StreamResponse) -> None:
    """Caches must key the answer on Accept too (other parts may vary it on more)."""
    present = [v.strip() for v in response.headers.get("Vary", "").split(",") if v.strip()]
    if "accept" not in (v.lower() for v in present):
        response.headers["Vary"] = ", ".join([*present, "Accept"])


class GraphQLHTTPView(GraphQLView[ContextT, RootT]):
    """strawberry's aiohttp view, with content negotiation and graphgate's GraphiQL page."""

    async def __call__(self, request: web.Request) -> web.StreamResponse:
        try:
            if request.method == "POST" and request.content_type == JSON:
                response = await self._run_json_post(request)
                if response is not None:
                    return response
            return await self.run(request=request)
        except HTTPException as exc:
            # strawberry answers a malformed request in plain text; clients (GraphiQL
            # included) expect a GraphQL error they can show, in the type they asked for.
            media_type = negotiate(request.headers.get("Accept"))
            body = self.encode_json({"errors": [{"message": exc.reason}]})
            return web.Response(
                status=exc.status_code,
                body=body.encode() if isinstance(body, str) else body,
                content_type=media_type,
                charset="utf-8",
                headers={"Vary": "Accept"},
            )

    async def _run_json_post(self, request: web.Request) -> web.Response | None:
        """strawberry's `run`, for what nearly every client sends: one operation as a JSON
        object in a POST. The same hooks in the same order, without `run`'s dispatch over
        every other kind of request (content type parsed through `email.message`, stream
        transports, subscription and batch results): ~8% of a small query's CPU.

        None, before anything ran, for any other body (a batch, a malformed or ill-typed
        one): `run` then answers it as it always does."""
        if self._stream_transport_map:  # streaming over HTTP is configured: `run` decides
            return None
        try:
            data = self.decode_json(await request.read())  # aiohttp keeps the body for `run`
        except ValueError:
            return None
        if type(data) is not dict:
            return None
        query, document_id = data.get("query"), data.get("documentId")
        variables, extensions = data.get("variables"), data.get("extensions")
        name = data.get("operationName")
        if not (
            (type(query) is str or (query is None and names_a_document(data)))
            and (variables is None or type(variables) is dict)
            and (extensions is None or type(extensions) is dict)
            and (name is None or type(name) is str)
        ):
            return None
        root_value = await self.get_root_value(request)
        sub_response = await self.get_sub_response(request)
        context = await self.get_context(request, response=sub_response)
        result = await self.execute_operation(
            request=request,
            request_adapter=self.request_adapter_class(request),
            request_data=PersistedRequestData(
                query=query,
                variables=variables,
                operation_name=name,
                extensions=extensions,
                document_id=document_id,
            ),
            context=context,
            root_value=root_value,
            sub_response=sub_response,
        )
        assert isinstance(result, ExecutionResult)  # no batch, no stream: one result
        response_data = await self.process_result(request=request, result=result)
        if result.errors:
            self._handle_errors(result.errors, response_data)
        return self.create_response(response_data=response_data, sub_response=sub_response)

    async def parse_http_body(
        self, request: AsyncHTTPRequestAdapter
    ) -> GraphQLRequestData | list[GraphQLRequestData]:
        """strawberry's parsing, keeping a GET request's `documentId` (JSON POSTs that name
        a document take `_run_json_post`)."""
        parsed = await super().parse_http_body(request)
        if request.method != "GET" or not isinstance(parsed, GraphQLRequestData):
            return parsed
        document_id = request.query_params.get("documentId")
        if document_id is None:
            return parsed
        return PersistedRequestData(
            query=parsed.query,
            variables=parsed.variables,
            operation_name=parsed.operation_name,
            extensions=parsed.extensions,
            protocol=parsed.protocol,
            document_id=document_id,
        )

    def should_render_graphql_ide(self, request: Any) -> bool:
        # A GET naming a persisted document has no `query` either: it is a request, not a
        # browser asking for the IDE.
        params = request.query_params
        if "documentId" in params or "extensions" in params:
            return False
        return bool(super().should_render_graphql_ide(request))

    async def get_sub_response(self, request: web.Request) -> web.Response:
        response = web.Response()
        response[_MEDIA_TYPE] = negotiate(request.headers.get("Accept"))
        return response

    def create_response(
        self,
        response_data: GraphQLHTTPResponse | list[GraphQLHTTPResponse],
        sub_response: web.Response,
    ) -> web.Response:
        # strawberry's create_response decodes our bytes to str and re-encodes them
        encoded = self.encode_json(response_data)
        response = sub_response
        response.body = encoded.encode() if isinstance(encoded, str) else encoded
        response.content_type = JSON
        response.charset = "utf-8"
        media_type = sub_response.get(_MEDIA_TYPE, JSON)
        vary_on_accept(response)
        if media_type != GRAPHQL_RESPONSE_JSON or isinstance(response_data, list):
            return response
        if is_request_error(response_data):
            # The spec's request error: a 4xx/5xx status and no `data` entry at all.
            body: dict[str, Any] = {k: v for k, v in response_data.items() if k != "data"}
            encoded = self.encode_json(body)
            response.text = encoded.decode() if isinstance(encoded, bytes) else encoded
            response.set_status(request_error_status(response_data))
        response.content_type = GRAPHQL_RESPONSE_JSON
        return response

    async def render_graphql_ide(self, request: web.Request) -> web.Response:
        return graphiql_response(request)
