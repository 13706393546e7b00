"""Object fields that graphql-core calls directly, without strawberry's per-call wrapper.

For every field with a resolver, strawberry builds at each call an `Info`, parses the
arguments, and chains the field extensions; a page of 20 notes with owners calls
`User.email` 20 times, and most of each call was that wrapper. The fields chosen here take
no arguments and carry no extensions (checked at start-up), so the wrapper did nothing for
them: graphql-core now calls the very same method, passing its own resolve info, whose
`context` is the same Context. Such a resolver may read `info.context` only.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import strawberry
from graphql import GraphQLObjectType, GraphQLResolveInfo
from strawberry.types.base import StrawberryObjectDefinition

# Types whose resolver fields are called directly (a Connection and an Edge per list).
LEAN_TYPES = ("User", "NoteEdge", "UserEdge", "AuditEventEdge")
_PLAIN = {"self", "root", "info"}


class NotLeanError(Exception):
    """A field of a lean type takes arguments or extensions: it needs strawberry's wrapper."""


def _direct(func: Callable[..., Any]) -> Callable[[Any, GraphQLResolveInfo[Any]], Any]:
    params = list(inspect.signature(func).parameters)
    if params[-1:] == ["info"]:
        return lambda source, info: func(source, info)
    return lambda source, info: func(source)


def lean_fields(schema: strawberry.Schema) -> list[str]:
    """Point graphql-core at the resolvers of LEAN_TYPES' fields; returns Type.field names."""
    done: list[str] = []
    for type_name in LEAN_TYPES:
        definition = schema.get_type_by_name(type_name)
        graphql_type = schema._schema.type_map.get(type_name)
        if not isinstance(definition, StrawberryObjectDefinition) or not isinstance(
            graphql_type, GraphQLObjectType
        ):
            continue
        for field in definition.fields:
            resolver = field.base_resolver
            if resolver is None:
                continue  # a plain attribute: strawberry's own fast path already
            func = resolver.wrapped_func
            if not callable(func):  # a staticmethod or classmethod: keep strawberry's call
                raise NotLeanError(f"{type_name}.{field.python_name} is not a plain method")
            params = set(inspect.signature(func).parameters)
            if field.arguments or field.extensions or not params <= _PLAIN:
                raise NotLeanError(f"{type_name}.{field.python_name} needs strawberry's wrapper")
            name = schema.config.name_converter.get_graphql_name(field)
            graphql_type.fields[name].resolve = _direct(func)
            done.append(f"{type_name}.{name}")
    return done
