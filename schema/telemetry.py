"""Tells the request's telemetry which operation ran, for whom, and how it ended.

The HTTP middleware (api/web/telemetry.py) times and logs the request; this part, which sees the
parsed document, fills in the operation name and type, the verified user id, and counts
RATE_LIMITED answers, whichever limiter gave them. Operations that run on strawberry's full
pipeline report through the RequestTelemetry extension, prepared ones (schema/execution.py)
call record_operation directly.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from graphql import GraphQLError
from strawberry.extensions import SchemaExtension

from api.infra.logs import current_scope
from api.infra.metrics import is_operation_name


def record_operation(
    context: Any, name: str | None, operation_type: str, errors: Sequence[GraphQLError]
) -> None:
    """Record the operation on the current request scope (no-op outside a request)."""
    scope = current_scope()
    if scope is None:
        return
    scope.operation = name if name and is_operation_name(name) else None
    scope.operation_type = operation_type
    viewer = getattr(context, "viewer", None)
    scope.user_id = getattr(viewer, "user_id", None)
    scope.graphql_ok = not errors
    metrics = getattr(getattr(context, "services", None), "metrics", None)
    if metrics is None:
        return
    for error in errors:
        if (error.extensions or {}).get("code") == "RATE_LIMITED":
            metrics.rate_limited.inc()


class RequestTelemetry(SchemaExtension):
    """record_operation for an operation on strawberry's full pipeline."""

    def on_operation(self) -> Iterator[None]:
        yield
        ctx = self.execution_context
        try:
            operation_type = ctx.operation_type.value
        except Exception:  # unparsable document or unknown operation name
            operation_type = "unknown"
        errors = getattr(ctx.result, "errors", None) or ctx.pre_execution_errors or []
        record_operation(ctx.context, ctx.operation_name, operation_type, errors)
