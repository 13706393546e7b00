"""strawberry's private API that graphgate relies on, named and checked.

api/web/http.py (the one-operation POST path) and schema/execution.py (the prepared-operation
path) call a few of strawberry's internals for speed. pyproject.toml bounds
strawberry-graphql from above; before raising that bound, run this file: a failure names the
internal that moved and the graphgate code to re-check against the new release.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

import pytest
import strawberry
from strawberry.aiohttp.views import GraphQLView
from strawberry.extensions import MaskErrors, SchemaExtension
from strawberry.schema import schema as strawberry_schema

# (what, how to find it, parameters it must take, graphgate code that uses it)
INTERNALS: list[tuple[str, Callable[[], object], tuple[str, ...], str]] = [
    (
        "GraphQLView._handle_errors",
        lambda: GraphQLView._handle_errors,
        ("errors", "response_data"),
        "api/web/http.py GraphQLHTTPView._run_json_post",
    ),
    (
        "GraphQLView._stream_transport_map",
        lambda: GraphQLView._stream_transport_map,
        (),
        "api/web/http.py GraphQLHTTPView._run_json_post (streaming over HTTP turns it off)",
    ),
    (
        "MaskErrors._process_result",
        lambda: MaskErrors._process_result,
        ("result",),
        "schema/execution.py MaskUnexpectedErrors._process_result",
    ),
    (
        "MaskErrors._process_errors",
        lambda: MaskErrors._process_errors,
        ("errors",),
        "schema/execution.py MaskUnexpectedErrors.mask (masking on the prepared path)",
    ),
    (
        "SchemaExtension._implements_resolve",
        lambda: SchemaExtension._implements_resolve,
        (),
        "schema/execution.py GraphGateSchema.__init__ (which extensions allow the fast path)",
    ),
    (
        "Schema._schema (the graphql-core schema)",
        lambda: strawberry.Schema(query=_Query)._schema,
        (),
        "schema/execution.py GraphGateSchema (executes prepared operations on graphql-core)",
    ),
    (
        "strawberry.schema.schema.StrawberryGraphQLCoreExecutionContext",
        lambda: strawberry_schema.StrawberryGraphQLCoreExecutionContext,
        (),
        "schema/execution.py GraphGateExecutionContext",
    ),
    (
        "strawberry.execution.optimized_is_awaitable",
        lambda: __import__("strawberry.execution", fromlist=["x"]).optimized_is_awaitable,
        (),
        "schema/execution.py (awaiting results on the prepared path)",
    ),
]


@strawberry.type
class _Query:
    ok: bool = True


@pytest.mark.parametrize(
    ("name", "find", "parameters", "user"), INTERNALS, ids=[row[0] for row in INTERNALS]
)
def test_strawberry_internal_is_still_there(
    name: str, find: Callable[[], object], parameters: tuple[str, ...], user: str
) -> None:
    try:
        found = find()
    except (AttributeError, ImportError) as exc:
        pytest.fail(f"strawberry no longer has {name} ({exc}); re-check {user}")
    if parameters:
        assert callable(found), f"{name} is no longer callable; re-check {user}"
        taken = set(inspect.signature(found).parameters)
        missing = [p for p in parameters if p not in taken]
        assert not missing, f"{name} no longer takes {missing}; re-check {user}"
