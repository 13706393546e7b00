"""Tells the request's telemetry which operation ran, for whom, and how it ended.

The HTTP middleware (api/telemetry.py) times and logs the request; this extension, which
sees the parsed document, fills in the operation name and type, the verified user id, and
counts RATE_LIMITED answers, whichever limiter gave them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from graphql import GraphQLError
from strawberry.extensions import SchemaExtension

from api.logs import current_scope

_NAME = re.compile(r"^[_A-Za-z][_0-9A-Za-z]{0,63}$")  # a GraphQL Name, bounded: safe to log


def _errors(result: Any, pre_execution: list[GraphQLError] | None) -> list[GraphQLError]:
    errors = getattr(result, "errors", None) or pre_execution or []
    return list(errors)


class RequestTelemetry(SchemaExtension):
    """Records the operation on the current request scope (no-op outside a request)."""

    def on_operation(self) -> Iterator[None]:
        yield
        scope = current_scope()
        ctx = self.execution_context
        if scope is None:
            return
        name = ctx.operation_name
        scope.operation = name if name and _NAME.match(name) else None
        try:
            scope.operation_type = ctx.operation_type.value
        except Exception:  # unparsable document or unknown operation name
            scope.operation_type = "unknown"
        viewer = getattr(ctx.context, "viewer", None)
        scope.user_id = getattr(viewer, "user_id", None)
        errors = _errors(ctx.result, ctx.pre_execution_errors)
        scope.graphql_ok = not errors
        services = getattr(ctx.context, "services", None)
        metrics = getattr(services, "metrics", None)
        if metrics is None:
            return
        for error in errors:
            if (error.extensions or {}).get("code") == "RATE_LIMITED":
                metrics.rate_limited.inc()
