"""build_schema(settings): the one strawberry Schema, with its extensions and limits."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import strawberry
from strawberry.extensions import SchemaExtension
from strawberry.schema.config import StrawberryConfig
from strawberry.tools import merge_types

from api.settings import Settings
from schema.account import AccountMutation
from schema.admin import AdminQuery
from schema.admission import check_lanes
from schema.documents import ParseOnce, ValidationResults
from schema.execution import GraphGateSchema, MaskUnexpectedErrors
from schema.guards import check_guards
from schema.lean_fields import lean_fields
from schema.limits import limit_extensions
from schema.manifest import TrustedDocument, check_documents
from schema.mfa import MfaMutation
from schema.mutations import Mutation
from schema.notes import NoteMutation, NoteQuery, NoteSubscription
from schema.passkeys import JSON, JSON_SCALAR, PasskeyMutation, PasskeyQuery
from schema.queries import Query
from schema.telemetry import RequestTelemetry

# Each domain module contributes its own root fields; they are merged here.
QUERIES: tuple[type, ...] = (Query, NoteQuery, AdminQuery, PasskeyQuery)
MUTATIONS: tuple[type, ...] = (
    Mutation,
    NoteMutation,
    AccountMutation,
    MfaMutation,
    PasskeyMutation,
)
SUBSCRIPTIONS: tuple[type, ...] = (NoteSubscription,)


def build_schema(settings: Settings, trusted: Iterable[TrustedDocument] = ()) -> strawberry.Schema:
    """The schema; `trusted` documents (a manifest) are checked against it and kept prepared
    (ManifestError names the first invalid one)."""
    # digest of a query text -> its document and validation errors, bounded in bytes
    validated = ValidationResults(1024, settings.query_cache_bytes, settings.max_query_bytes)
    extensions: list[Callable[[], SchemaExtension] | type[SchemaExtension]] = [
        lambda: ParseOnce(validated),
        *limit_extensions(settings, validated),  # validation: limits first, cached
        MaskUnexpectedErrors,
        RequestTelemetry,
    ]
    schema = GraphGateSchema(
        query=merge_types("Query", QUERIES),
        mutation=merge_types("Mutation", MUTATIONS),
        subscription=merge_types("Subscription", SUBSCRIPTIONS) if SUBSCRIPTIONS else None,
        extensions=extensions,
        config=StrawberryConfig(
            disable_field_suggestions=not settings.field_suggestions,
            scalar_map={JSON: JSON_SCALAR},
        ),
        hide_suggestions=not settings.field_suggestions,
        prepared=validated,
        execution_timeout=settings.execution_timeout,
    )
    check_guards(schema)
    check_lanes(schema)
    lean_fields(schema)
    check_documents(trusted, schema._schema, settings, validated)
    return schema
