"""Deny by default: every root field carries a guard or the explicit `Public` marker."""

from __future__ import annotations

import strawberry
from strawberry.permission import PermissionExtension
from strawberry.types.base import StrawberryObjectDefinition


class UnguardedFieldError(Exception):
    """A root field has no permission class: the app refuses to start."""


def root_guards(schema: strawberry.Schema) -> list[tuple[str, str, str]]:
    """(root type, field, guards) for every root field, in schema order."""
    rows: list[tuple[str, str, str]] = []
    for root in (schema.query, schema.mutation, schema.subscription):
        if root is None:
            continue
        definition: StrawberryObjectDefinition = root.__strawberry_definition__  # type: ignore[attr-defined]
        for field in definition.fields:
            names = [
                type(permission).__name__
                for extension in field.extensions
                if isinstance(extension, PermissionExtension)
                for permission in extension.permissions
            ]
            name = schema.config.name_converter.get_graphql_name(field)
            rows.append((definition.name, name, ", ".join(names)))
    return rows


def check_guards(schema: strawberry.Schema) -> None:
    """Raise naming the first root field that has neither a guard nor `Public`."""
    for root, field, guards in root_guards(schema):
        if not guards:
            raise UnguardedFieldError(
                f"{root}.{field} has no guard: add extensions=guard(IsAuthenticated) "
                "(or guard(Public) if anyone may call it)"
            )
