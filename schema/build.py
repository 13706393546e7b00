"""build_schema(settings): the one strawberry Schema, with its extensions and limits."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.extensions import MaskErrors, ParserCache, SchemaExtension
from strawberry.schema.config import StrawberryConfig
from strawberry.tools import merge_types

from api import db
from api.errors import AppError, ServiceUnavailableError
from api.settings import Settings
from schema.account import AccountMutation
from schema.admin import AdminQuery
from schema.guards import check_guards
from schema.limits import limit_extensions
from schema.mutations import Mutation
from schema.notes import NoteMutation, NoteQuery, NoteSubscription
from schema.queries import Query
from schema.telemetry import RequestTelemetry

# Each domain module contributes its own root fields; they are merged here.
QUERIES: tuple[type, ...] = (Query, NoteQuery, AdminQuery)
MUTATIONS: tuple[type, ...] = (Mutation, NoteMutation, AccountMutation)
SUBSCRIPTIONS: tuple[type, ...] = (NoteSubscription,)

log = logging.getLogger("graphgate.errors")
_MASKED = "Internal server error."
_SUGGESTION = " Did you mean "  # graphql-core appends every suggestion as this sentence


def _is_unexpected(error: GraphQLError) -> bool:
    """Mask only errors that came from an exception that is not ours."""
    original = error.original_error
    return original is not None and not isinstance(original, AppError)


class MaskUnexpectedErrors(MaskErrors):
    """Contract errors pass through; a database outage becomes SERVICE_UNAVAILABLE and
    anything else INTERNAL_SERVER_ERROR, with the details only in the log."""

    def __init__(self) -> None:
        super().__init__(should_mask_error=_is_unexpected, error_message=_MASKED)

    def _process_result(self, result: object) -> None:
        # The base class first runs isinstance() against a typing Protocol (slow): skip it
        # for the common answer without errors.
        if getattr(result, "errors", None):
            super()._process_result(result)

    def anonymise_error(self, error: GraphQLError) -> GraphQLError:
        masked = super().anonymise_error(error)
        masked.message, masked.extensions = _masked(error.original_error)
        return masked


class GraphGateSchema(strawberry.Schema):
    def __init__(self, *args: Any, hide_suggestions: bool, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.hide_suggestions = hide_suggestions

    def process_errors(self, errors: list[GraphQLError], execution_context: Any = None) -> None:
        for error in errors:
            if self.hide_suggestions and _SUGGESTION in error.message:
                # strawberry strips field suggestions only: argument, type and enum value
                # suggestions would still spell out the schema (what clairvoyance feeds on).
                error.message = error.message.split(_SUGGESTION, 1)[0]
            if not _is_unexpected(error):
                continue  # contract errors are answers, not incidents
            assert error.original_error is not None
            if db.is_unavailable(error.original_error):
                log.warning("dependency unavailable in %s: %r", error.path, error.original_error)
            else:
                log.error("unexpected error in %s", error.path, exc_info=error.original_error)
            # Masked here too: an exception before execution (a validation rule, an
            # extension) never reaches MaskUnexpectedErrors.
            error.message, error.extensions = _masked(error.original_error)


def _masked(original: BaseException | None) -> tuple[str, dict[str, Any]]:
    """The message and extensions a client sees instead of an unexpected exception."""
    if original is not None and db.is_unavailable(original):
        return ServiceUnavailableError.default_message, {"code": ServiceUnavailableError.code}
    return _MASKED, {"code": "INTERNAL_SERVER_ERROR"}


def build_schema(settings: Settings) -> strawberry.Schema:
    extensions: list[Callable[[], SchemaExtension] | type[SchemaExtension]] = [
        lambda: ParserCache(maxsize=1024),
        *limit_extensions(settings, cache_size=1024),  # validation: limits first, cached
        MaskUnexpectedErrors,
        RequestTelemetry,
    ]
    schema = GraphGateSchema(
        query=merge_types("Query", QUERIES),
        mutation=merge_types("Mutation", MUTATIONS),
        subscription=merge_types("Subscription", SUBSCRIPTIONS) if SUBSCRIPTIONS else None,
        extensions=extensions,
        config=StrawberryConfig(disable_field_suggestions=not settings.field_suggestions),
        hide_suggestions=not settings.field_suggestions,
    )
    check_guards(schema)
    return schema
