"""Notes: each belongs to one user. Owners change their own; admins read and delete any.

Who may do what is `NOTES` (an IsOwnerOrAdmin); every change commits in one transaction
and then publishes an event to the owner's `noteEvents` subscribers.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass
from datetime import datetime

from api.clock import Clock, to_datetime
from api.db.connection import atomic
from api.db.models import Note
from api.db.reads import NoteRow, notes_page
from api.errors import BadUserInputError
from api.identity import Viewer
from api.infra.events import Event, EventBus
from api.resources.ownership import Action, IsOwnerOrAdmin
from api.resources.pagination import Page, check_first, decode_cursor, encode_cursor, page_of

TITLE_MAX = 200
BODY_MAX = 100_000
TOPIC = "notes"

NOTES = IsOwnerOrAdmin(Note, admin_may=(Action.READ, Action.DELETE))


@dataclass(frozen=True, slots=True)
class NoteEvent:
    kind: str  # created | updated | deleted
    note: NoteRow  # the note as it was when the event happened (a deleted one has no row)


def _cursor(row: NoteRow) -> str:
    return encode_cursor(row.created_at, row.id)


def check_title(raw: str) -> str:
    """1 to TITLE_MAX characters once trimmed, else BAD_USER_INPUT on `title`."""
    title = raw.strip()
    if not 1 <= len(title) <= TITLE_MAX:
        raise BadUserInputError("title", f"'title' must have 1 to {TITLE_MAX} characters.")
    return title


def check_body(body: str) -> str:
    if len(body) > BODY_MAX:
        raise BadUserInputError("body", f"'body' has at most {BODY_MAX} characters.")
    return body


class NoteService:
    def __init__(self, clock: Clock, events: EventBus) -> None:
        self._clock = clock
        self._events = events

    async def create(self, viewer: Viewer, title: str, body: str) -> Note:
        title, body = check_title(title), check_body(body)
        now = to_datetime(self._clock())
        note = await Note.create(
            owner_id=viewer.user_id, title=title, body=body, created_at=now, updated_at=now
        )
        self._publish("created", note)
        return note

    async def get(self, viewer: Viewer, note_id: str) -> Note:
        """The note if the viewer owns it or is an admin; NOT_FOUND otherwise."""
        return await NOTES.get(viewer, note_id, Action.READ)

    async def page(self, viewer: Viewer, first: int, after: str | None) -> Page[NoteRow]:
        """The viewer's own notes, newest first (the keyset rules of api/resources/pagination.py,
        in one fixed statement: api/db/reads.py)."""
        first = check_first(first)
        position = None if after is None else decode_cursor(after)
        assert viewer.user_id is not None  # guaranteed by the field's guard
        rows = await notes_page(viewer.user_id, first + 1, position)
        return page_of(rows, first, _cursor, NOTES.owned_by(viewer).count)

    async def update(
        self, viewer: Viewer, note_id: str, title: str | None, body: str | None
    ) -> Note:
        """Owner only: an admin gets FORBIDDEN, anyone else NOT_FOUND. Absent fields stay."""
        title = None if title is None else check_title(title)
        body = None if body is None else check_body(body)
        async with atomic() as conn:
            note = await NOTES.get(viewer, note_id, Action.CHANGE, using_db=conn, for_update=True)
            if title is None and body is None:
                return note
            note.title = note.title if title is None else title
            note.body = note.body if body is None else body
            note.updated_at = to_datetime(self._clock())
            await note.save(update_fields=["title", "body", "updated_at"], using_db=conn)
        self._publish("updated", note)
        return note

    async def delete(self, viewer: Viewer, note_id: str) -> None:
        """Owner or admin; the owner's subscribers hear of it."""
        async with atomic() as conn:
            note = await NOTES.get(viewer, note_id, Action.DELETE, using_db=conn, for_update=True)
            await note.delete(using_db=conn)
        self._publish("deleted", note)

    def _publish(self, kind: str, note: Note) -> None:
        payload = {
            "id": str(note.id),
            "title": note.title,
            "body": note.body,
            "created_at": note.created_at.isoformat(),
            "updated_at": note.updated_at.isoformat(),
        }
        self._events.publish(Event(TOPIC, str(note.owner_id), kind, payload))

    async def events(self, viewer: Viewer) -> AsyncGenerator[NoteEvent, None]:
        """Events on the viewer's own notes as they happen, until the caller stops."""
        assert viewer.user_id is not None  # guaranteed by the field's guard
        async with self._events.subscribe(TOPIC, viewer.user_id) as stream:
            async for event in stream:
                data = event.data
                note = NoteRow(
                    id=data["id"],
                    owner_id=event.owner_id,
                    title=data["title"],
                    body=data["body"],
                    created_at=datetime.fromisoformat(data["created_at"]),
                    updated_at=datetime.fromisoformat(data["updated_at"]),
                )
                yield NoteEvent(event.kind, note)
