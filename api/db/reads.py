"""Hot reads with fixed SQL: users by id and one page of an owner's notes.

Every request that shows a user or a list of notes runs these. Through the ORM each one
built its SQL again (pypika) and made a model per row (with a field-by-field conversion);
here the SQL text is written once per dialect and rows become small frozen records. Only
what the API shows is read: never the password hash. The statements are those bench/
ceiling_db.py sends, so the database ceilings of the bench measure the same SQL.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any

from tortoise.connection import get_connection

from api.db.models import User

USER_COLUMNS = (
    '"id","email","display_name","roles","is_active","email_verified","created_at","last_login_at",'
    '("totp_secret" IS NOT NULL) AS "totp_enabled"'  # whether, never the sealed secret itself
)
NOTE_COLUMNS = '"id","title","body","owner_id","created_at","updated_at"'


@dataclass(frozen=True, slots=True)
class UserView:
    """What the API may show of a user (no password hash), as read for one request."""

    id: str
    email: str
    display_name: str | None
    roles: tuple[str, ...]
    is_active: bool
    email_verified: bool
    created_at: datetime
    last_login_at: datetime | None
    totp_enabled: bool = False

    @classmethod
    def of(cls, user: User) -> UserView:
        """The view of a model row another service already holds (a login's user)."""
        return cls(
            id=str(user.id),
            email=user.email,
            display_name=user.display_name,
            roles=tuple(user.roles),
            is_active=user.is_active,
            email_verified=user.email_verified,
            created_at=user.created_at,
            last_login_at=user.last_login_at,
            totp_enabled=user.totp_secret is not None,
        )


@dataclass(frozen=True, slots=True)
class NoteRow:
    """One note as read for a page."""

    id: str
    owner_id: str
    title: str
    body: str
    created_at: datetime
    updated_at: datetime


@cache
def _users_sql(dialect_sqlite: bool, count: int) -> str:
    marks = ",".join(["?"] * count if dialect_sqlite else [f"${n + 1}" for n in range(count)])
    return f'SELECT {USER_COLUMNS} FROM "users" WHERE "id" IN ({marks})'


@cache
def _notes_sql(dialect_sqlite: bool, after: bool) -> str:
    mark = iter(["?"] * 5 if dialect_sqlite else [f"${n}" for n in range(1, 6)])
    where = f'"owner_id"={next(mark)}'
    if after:  # strictly after the cursor in (created_at, id) descending order
        at, at_again, key = next(mark), next(mark), next(mark)
        where += f' AND ("created_at"<{at} OR ("created_at"={at_again} AND "id"<{key}))'
    order = '"created_at" DESC,"id" DESC'
    return f'SELECT {NOTE_COLUMNS} FROM "notes" WHERE {where} ORDER BY {order} LIMIT {next(mark)}'


def to_datetime(value: Any) -> datetime:
    """A timestamp column as an aware datetime: asyncpg gives one; SQLite keeps the text
    Tortoise wrote (`isoformat(" ")` of a UTC time)."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    assert isinstance(value, datetime)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _roles(value: Any) -> tuple[str, ...]:
    if isinstance(value, str | bytes):
        value = json.loads(value)
    return tuple(value)


amr_of = _roles  # a JSON list of strings, as the driver returns it (text or decoded)


def user_view(row: Mapping[str, Any]) -> UserView:
    last = row["last_login_at"]
    return UserView(
        id=str(row["id"]),
        email=row["email"],
        display_name=row["display_name"],
        roles=_roles(row["roles"]),
        is_active=bool(row["is_active"]),
        email_verified=bool(row["email_verified"]),
        created_at=to_datetime(row["created_at"]),
        last_login_at=None if last is None else to_datetime(last),
        totp_enabled=bool(row["totp_enabled"]),
    )


async def users_by_id(ids: Sequence[str]) -> dict[str, UserView]:
    """The users with these ids (malformed ids match nothing), by id."""
    keys = []
    for raw in dict.fromkeys(ids):
        try:
            keys.append(str(uuid.UUID(raw)))
        except (ValueError, TypeError, AttributeError):
            continue
    if not keys:
        return {}
    conn = get_connection("default")
    sql = _users_sql(conn.capabilities.dialect == "sqlite", len(keys))
    rows = await conn.execute_query_dict(sql, keys)
    views = (user_view(row) for row in rows)
    return {view.id: view for view in views}


async def notes_page(
    owner_id: str, limit: int, after: tuple[datetime, uuid.UUID] | None = None
) -> list[NoteRow]:
    """Up to `limit` notes of one owner, newest first by (created_at, id), strictly after
    `after` in that order when given."""
    conn = get_connection("default")
    sqlite = conn.capabilities.dialect == "sqlite"
    values: list[Any] = [str(uuid.UUID(owner_id))]  # as Tortoise writes it: lower-case text
    if after is not None:
        at, key = after
        values += [at, at, str(key)]
    values.append(limit)
    rows = await conn.execute_query_dict(_notes_sql(sqlite, after is not None), values)
    return [
        NoteRow(
            id=str(row["id"]),
            owner_id=str(row["owner_id"]),
            title=row["title"],
            body=row["body"],
            created_at=to_datetime(row["created_at"]),
            updated_at=to_datetime(row["updated_at"]),
        )
        for row in rows
    ]
