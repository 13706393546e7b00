"""Keyset pagination with opaque cursors, shared by every list (notes, users, audit events).

Order: newest first by (timestamp, id) - the id breaks ties between rows written in the
same microsecond, so the order is total and stable. A cursor is the base64url of the
(timestamp, id) of the last row a client saw; the next page is the rows strictly after it
in that order. No OFFSET: rows inserted meanwhile never shift a page or repeat a row.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from tortoise.expressions import Q
from tortoise.models import Model
from tortoise.queryset import QuerySet

from api.errors import BadUserInputError

MAX_FIRST = 100
# A real cursor is ~100 characters; anything far longer is refused before base64 and JSON
# decoding (a deeply nested JSON array raises RecursionError).
MAX_CURSOR_LENGTH = 256

M = TypeVar("M", bound=Model)
R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class Page(Generic[R]):
    """One page of rows, a way to name each row's position, and a way to count the whole
    list. Cursors are made only for the rows a client asks about (encoding one is JSON and
    base64: most pages only need the last one, for `endCursor`)."""

    rows: list[R]
    cursor_of: Callable[[R], str]
    has_next: bool
    count: Callable[[], Awaitable[int]]  # runs a COUNT only when a client asks for totalCount

    @property
    def cursors(self) -> list[str]:
        return [self.cursor_of(row) for row in self.rows]

    @property
    def end_cursor(self) -> str | None:
        return self.cursor_of(self.rows[-1]) if self.rows else None


def check_first(first: int) -> int:
    """`first` is 0..MAX_FIRST, else BAD_USER_INPUT naming it."""
    if not 0 <= first <= MAX_FIRST:
        raise BadUserInputError("first", f"'first' must be between 0 and {MAX_FIRST}.")
    return first


def encode_cursor(at: datetime, key: uuid.UUID | str) -> str:
    raw = json.dumps([at.isoformat(), str(key)], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    """The position a cursor names, or BAD_USER_INPUT on `after` for anything else."""
    refused = BadUserInputError("after", "'after' is not a cursor from this list.")
    if len(cursor) > MAX_CURSOR_LENGTH:
        raise refused
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        at_text, key_text = json.loads(raw)
        at = datetime.fromisoformat(at_text)
        key = uuid.UUID(key_text)
        if at.tzinfo is None:
            raise refused
        # In UTC, as the database compares it: year 1 at +14:00 does not exist there.
        at = at.astimezone(UTC)
    except (binascii.Error, ValueError, TypeError, AttributeError, OverflowError) as exc:
        raise refused from exc
    return at, key


async def paginate(
    query: QuerySet[M], first: int, after: str | None, *, time_field: str = "created_at"
) -> Page[M]:
    """The `first` rows of `query` after the cursor `after`, newest first by (time_field, id)."""
    first = check_first(first)
    window = query
    if after is not None:
        at, key = decode_cursor(after)
        newer: dict[str, Any] = {f"{time_field}__lt": at}
        same: dict[str, Any] = {time_field: at, "id__lt": key}
        window = query.filter(Q(**newer) | Q(**same))
    # One row more than asked tells whether another page follows, without a COUNT.
    rows = await window.order_by(f"-{time_field}", "-id").limit(first + 1)
    return page_of(
        rows, first, lambda row: encode_cursor(getattr(row, time_field), row.pk), query.count
    )


def page_of(
    rows: list[R], first: int, cursor_of: Callable[[R], str], count: Callable[[], Awaitable[int]]
) -> Page[R]:
    """The page of `first` rows from a read of `first + 1` (the extra one says a next page
    follows)."""
    return Page(rows=rows[:first], cursor_of=cursor_of, has_next=len(rows) > first, count=count)
