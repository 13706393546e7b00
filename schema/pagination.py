"""Relay-style connections, one generic shape for every list (notes, users, audit events).

`Connection[NoteType]` is the GraphQL type `NoteConnection` with `NoteEdge` edges; the
keyset query and the cursors behind it are api/resources/pagination.py.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

import strawberry

from api.resources.pagination import Page

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
