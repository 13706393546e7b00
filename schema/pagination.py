"""Relay-style connections, one generic shape for every list (notes, users, audit events).

`Connection[NoteType]` is the GraphQL type `NoteConnection` with `NoteEdge` edges; the
keyset query and the cursors behind it are api/resources/pagination.py.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

import strawberry
from graphql import FieldNode, FragmentSpreadNode, InlineFragmentNode, SelectionNode

from api.resources.pagination import Page
from schema.context import Info

T = TypeVar("T")
R = TypeVar("R")


@strawberry.type(description="Where a page ends, and whether another follows it.")
class PageInfo:
    has_next_page: bool
    end_cursor: str | None = strawberry.field(
        description="Pass it as `after` for the next page; null on an empty page."
    )


def _cursor(root: Edge[Any]) -> str:
    # Encoded only when asked: most clients read `pageInfo.endCursor` alone.
    return root.cursor_of(root.row)


@strawberry.type
class Edge(Generic[T]):
    cursor: str = strawberry.field(
        resolver=_cursor, description="Opaque: this item's position in the list."
    )
    node: T
    row: strawberry.Private[Any]
    cursor_of: strawberry.Private[Callable[[Any], str]]


@strawberry.type
class Connection(Generic[T]):
    edges: list[Edge[T]]
    page_info: PageInfo
    count: strawberry.Private[Callable[[], Awaitable[int]]]

    @strawberry.field(description="How many items the whole list has (counted only when asked).")
    async def total_count(self) -> int:
        return await self.count()

    @classmethod
    def of(cls, page: Page[R], node: Callable[[R], T]) -> Connection[T]:
        """Shape a page of rows, each row made a node by `node`."""
        cursor_of = page.cursor_of
        return cls(
            edges=[Edge(node=node(row), row=row, cursor_of=cursor_of) for row in page.rows],
            page_info=PageInfo(has_next_page=page.has_next, end_cursor=page.end_cursor),
            count=page.count,
        )


def selects(info: Info, path: tuple[str, ...]) -> bool:
    """Whether the document asks this field for `path` (e.g. edges, node, owner), through
    inline fragments and fragment spreads: a resolver may then read ahead in one query."""
    raw = info._raw_info  # graphql-core's own: its AST nodes and the document's fragments
    fragments = raw.fragments
    selections: list[SelectionNode] = [
        sel
        for node in raw.field_nodes
        if node.selection_set
        for sel in node.selection_set.selections
    ]
    for name in path:
        found: list[SelectionNode] = []
        seen: set[str] = set()
        while selections:
            sel = selections.pop()
            if isinstance(sel, FieldNode):
                if sel.name.value == name and sel.selection_set is not None:
                    found.extend(sel.selection_set.selections)
                elif sel.name.value == name:
                    found.append(sel)  # a leaf: present, nothing below
            elif isinstance(sel, InlineFragmentNode):
                selections.extend(sel.selection_set.selections)
            elif isinstance(sel, FragmentSpreadNode) and sel.name.value not in seen:
                seen.add(sel.name.value)
                fragment = fragments.get(sel.name.value)
                if fragment is not None:
                    selections.extend(fragment.selection_set.selections)
        if not found:
            return False
        selections = found
    return True
