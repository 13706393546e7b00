"""Per-request telemetry: a request id, one access-log line, and the request metrics.

The request id comes from `X-Request-ID` when the caller (or a proxy) sent a sane one,
otherwise it is made here; either way the response echoes it in `X-Request-ID`, and every
log line written while the request runs carries it.
"""

from __future__ import annotations

import logging
import time

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from api.infra.logs import CONTEXT_FIELDS, RequestScope, enter_scope, leave_scope, request_id_from
from api.infra.metrics import Metrics
from api.web.overload import REFUSED_KEY

log = logging.getLogger("graphgate.access")
REQUEST_ID_HEADER = "X-Request-ID"
SCOPE_KEY: web.RequestKey[RequestScope] = web.RequestKey("graphgate_scope", RequestScope)


def _route(request: web.Request) -> str:
    """The matched route's pattern: a bounded label, and never a query string."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


def telemetry_middleware(metrics: Metrics) -> Middleware:
    """Outermost middleware: times the request, logs it once, counts it."""

    @web.middleware
    async def telemetry(request: web.Request, handler: Handler) -> web.StreamResponse:
        scope = RequestScope(request_id_from(request.headers.get(REQUEST_ID_HEADER)))
        request[SCOPE_KEY] = scope
        token = enter_scope(scope)
        started = time.perf_counter()
        status = 500
        refused = False
        try:
            response = await handler(request)
            status = response.status
            refused = response.get(REFUSED_KEY, False)
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            seconds = time.perf_counter() - started
            route = _route(request)
            metrics.http_requests.labels(request.method, route, str(status)).inc()
            if scope.graphql_ok is not None:
                metrics.observe_graphql(
                    scope.operation,
                    scope.operation_type or "unknown",
                    ok=scope.graphql_ok,
                    seconds=seconds,
                )
            # A 503 of overload.py is counted above, not logged one by one: a flood must not
            # become as many log lines (one warning per episode says it).
            if not refused:
                context = {name: getattr(scope, name) for name in CONTEXT_FIELDS}
                log.info(
                    "%s %s %s",
                    request.method,
                    route,
                    status,
                    extra={
                        **{k: v for k, v in context.items() if v is not None},
                        "status": status,
                        "duration_ms": round(seconds * 1000, 2),
                    },
                )
            leave_scope(token)

    return telemetry


async def echo_request_id(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: every response, errors and WebSockets too, names its request."""
    scope = request.get(SCOPE_KEY)
    if scope is not None:
        response.headers[REQUEST_ID_HEADER] = scope.request_id


def add_telemetry(app: web.Application, metrics: Metrics) -> None:
    """Wire the middleware (first, so it wraps every other one) and the header echo."""
    app.middlewares.insert(0, telemetry_middleware(metrics))
    app.on_response_prepare.append(echo_request_id)
