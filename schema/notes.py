"""Notes in GraphQL: the Note type and its root fields. Decisions live in api/resources/notes.py."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator
from datetime import datetime

import strawberry

from api.db.models import Note
from api.db.reads import NoteRow, UserView
from schema.context import Info
from schema.pagination import Connection
from schema.permissions import IsAuthenticated, guard
from schema.selection import selected
from schema.types import UserType


@strawberry.type(name="Note", description="A note. Visible to its owner and to admins.")
class NoteType:
    id: strawberry.ID
    title: str
    body: str
    created_at: datetime
    updated_at: datetime
    # A plain value, not a resolver: graphql-core reads it without a call per note.
    owner: UserType = strawberry.field(
        description="Loaded in one query for a whole page (DataLoader)."
    )

    @classmethod
    def from_row(cls, row: Note | NoteRow, owner: UserView | None = None) -> NoteType:
        return cls(
            id=strawberry.ID(str(row.id)),
            title=row.title,
            body=row.body,
            created_at=row.created_at,
            updated_at=row.updated_at,
            owner=UserType(user_id=str(row.owner_id), row=owner),
        )


@strawberry.type(name="NoteEvent", description="Something happened to one of your notes.")
class NoteEventType:
    kind: str = strawberry.field(description="created | updated | deleted")
    note: NoteType = strawberry.field(description="The note as it is now (or was, if deleted).")


@strawberry.type
class NoteQuery:
    @strawberry.field(
        extensions=guard(IsAuthenticated),
        description="Your own notes, newest first (by creation time, then id).",
    )
    async def notes(
        self, info: Info, first: int | None = 20, after: str | None = None
    ) -> Connection[NoteType]:
        ctx = info.context
        first = 20 if first is None else first  # an explicit null means the default
        page = await ctx.services.notes.page(ctx.viewer, first, after)
        if not page.rows or "owner" not in selected(info, ("edges", "node")):
            return Connection.of(page, NoteType.from_row)
        # The owners now, in the one query the DataLoader would make, so that each owner's
        # fields answer synchronously (twenty coroutines and futures fewer per page).
        owners = await ctx.read_users([row.owner_id for row in page.rows])
        viewer = owners.get(ctx.viewer.user_id or "")
        if viewer is not None and not viewer.is_active:
            owners.pop(viewer.id)  # left to the lazy path, which refuses it (TOKEN_REVOKED)
        return Connection.of(page, lambda row: NoteType.from_row(row, owners.get(row.owner_id)))

    @strawberry.field(
        extensions=guard(IsAuthenticated),
        description="One note: its owner or an admin; anyone else gets NOT_FOUND.",
    )
    async def note(self, info: Info, id: strawberry.ID) -> NoteType | None:
        ctx = info.context
        return NoteType.from_row(await ctx.services.notes.get(ctx.viewer, str(id)))


@strawberry.type
class NoteMutation:
    @strawberry.mutation(
        extensions=guard(IsAuthenticated),
        description="A new note of yours: title 1-200 characters, body up to 100000.",
    )
    async def create_note(self, info: Info, title: str, body: str) -> NoteType:
        ctx = info.context
        return NoteType.from_row(await ctx.services.notes.create(ctx.viewer, title, body))

    @strawberry.mutation(
        extensions=guard(IsAuthenticated),
        description="Change your note (absent arguments stay). Admins: FORBIDDEN; others: NOT_FOUND.",
    )
    async def update_note(
        self, info: Info, id: strawberry.ID, title: str | None = None, body: str | None = None
    ) -> NoteType:
        ctx = info.context
        note = await ctx.services.notes.update(ctx.viewer, str(id), title, body)
        return NoteType.from_row(note)

    @strawberry.mutation(
        extensions=guard(IsAuthenticated),
        description="Delete a note: its owner or an admin; anyone else gets NOT_FOUND.",
    )
    async def delete_note(self, info: Info, id: strawberry.ID) -> bool:
        ctx = info.context
        await ctx.services.notes.delete(ctx.viewer, str(id))
        return True


@strawberry.type
class NoteSubscription:
    @strawberry.subscription(
        extensions=guard(IsAuthenticated),
        description="Events on your own notes, as they happen (graphql-transport-ws).",
    )
    async def note_events(self, info: Info) -> AsyncGenerator[NoteEventType, None]:
        ctx = info.context
        async with contextlib.aclosing(ctx.services.notes.events(ctx.viewer)) as events:
            async for event in events:
                # One socket lives for hours: load users afresh for each event.
                ctx.users.clear_all()
                yield NoteEventType(kind=event.kind, note=NoteType.from_row(event.note))
