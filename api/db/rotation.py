"""The refresh rotation's statements as fixed SQL (api/auth/sessions.py decides; this reads
and writes).

A fleet refreshes all day: through the ORM each rotation built five statements again
(pypika) and made three models with every column converted. The order and the locks are
the ORM path's: the session with its user's active flag; then, in the caller's
transaction, the user's row locked (FOR NO KEY UPDATE on PostgreSQL; SQLite's atomic()
holds the write lock), the session's cut-off read under that lock, the compare-and-set
UPDATE on the current jti hash, and the audit row. bench/ceiling_db.py sends the same.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from functools import cache

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.connection import get_connection

from api.db.reads import USER_COLUMNS, UserView, amr_of, to_datetime, user_view


@dataclass(frozen=True, slots=True)
class RefreshState:
    """A session as a refresh sees it, with its user's active flag."""

    id: uuid.UUID
    user_id: uuid.UUID
    user_active: bool
    current_jti_hash: str
    previous_jti_hash: str | None
    rotated_at: datetime | None
    expires_at: datetime
    max_expires_at: datetime
    ended_at: datetime | None


@dataclass(frozen=True, slots=True)
class SessionCut:
    """What signing a session's next access token needs, read under the user's lock."""

    id: uuid.UUID
    access_not_before: int
    latest_access_iat: int
    auth_time: int
    amr: tuple[str, ...] | None  # how the session was signed in; a refresh keeps it


def _marks(sqlite: bool, count: int) -> list[str]:
    return ["?"] * count if sqlite else [f"${n}" for n in range(1, count + 1)]


@cache
def _sql(sqlite: bool) -> dict[str, str]:
    one = _marks(sqlite, 1)[0]
    swap = _marks(sqlite, 8)
    audit = _marks(sqlite, 5)
    return {
        "state": (
            'SELECT s."id",s."user_id",u."is_active",s."current_jti_hash",s."previous_jti_hash",'
            's."rotated_at",s."expires_at",s."max_expires_at",s."ended_at" FROM "sessions" s '
            f'JOIN "users" u ON u."id"=s."user_id" WHERE s."id"={one}'
        ),
        "lock_user": f'SELECT {USER_COLUMNS} FROM "users" WHERE "id"={one}'
        + ("" if sqlite else " FOR NO KEY UPDATE"),
        "cut": (
            'SELECT "id","access_not_before","latest_access_iat","auth_time","amr" FROM "sessions" '
            f'WHERE "id"={one}'
        ),
        "swap": (
            f'UPDATE "sessions" SET "current_jti_hash"={swap[0]},"previous_jti_hash"={swap[1]},'
            f'"rotated_at"={swap[2]},"last_used_at"={swap[3]},"expires_at"={swap[4]},'
            f'"latest_access_iat"={swap[5]} WHERE "id"={swap[6]} AND "current_jti_hash"={swap[7]} '
            'AND "ended_at" IS NULL'
        ),
        "audit": (
            'INSERT INTO "audit_events" ("id","kind","ip","at","user_id") '
            f"VALUES ({','.join(audit)})"
        ),
    }


def _is_sqlite(conn: BaseDBAsyncClient) -> bool:
    return conn.capabilities.dialect == "sqlite"


def _optional(value: object) -> datetime | None:
    return None if value is None else to_datetime(value)


def _uuid(value: object) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


async def refresh_state(sid: uuid.UUID) -> RefreshState | None:
    """The session (outside any transaction: a first look, checked again under lock)."""
    conn = get_connection("default")
    rows = await conn.execute_query_dict(_sql(_is_sqlite(conn))["state"], [str(sid)])
    if not rows:
        return None
    row = rows[0]
    return RefreshState(
        id=_uuid(row["id"]),
        user_id=_uuid(row["user_id"]),
        user_active=bool(row["is_active"]),
        current_jti_hash=row["current_jti_hash"],
        previous_jti_hash=row["previous_jti_hash"],
        rotated_at=_optional(row["rotated_at"]),
        expires_at=to_datetime(row["expires_at"]),
        max_expires_at=to_datetime(row["max_expires_at"]),
        ended_at=_optional(row["ended_at"]),
    )


async def lock_user(conn: BaseDBAsyncClient, user_id: uuid.UUID) -> UserView | None:
    """The user's row, locked until the transaction ends."""
    rows = await conn.execute_query_dict(_sql(_is_sqlite(conn))["lock_user"], [str(user_id)])
    return user_view(rows[0]) if rows else None


async def session_cut(conn: BaseDBAsyncClient, sid: uuid.UUID) -> SessionCut | None:
    rows = await conn.execute_query_dict(_sql(_is_sqlite(conn))["cut"], [str(sid)])
    if not rows:
        return None
    row = rows[0]
    return SessionCut(
        id=_uuid(row["id"]),
        access_not_before=int(row["access_not_before"]),
        latest_access_iat=int(row["latest_access_iat"]),
        auth_time=int(row["auth_time"]),
        amr=None if row["amr"] is None else amr_of(row["amr"]),
    )


async def swap(
    conn: BaseDBAsyncClient,
    sid: uuid.UUID,
    *,
    expected_hash: str,
    new_hash: str,
    at: datetime,
    expires_at: datetime,
    latest_access_iat: int,
) -> bool:
    """The compare-and-set: True when the session's current hash was `expected_hash` (and it
    is live) and is now `new_hash`; False when another request spent it first."""
    values = [
        new_hash,
        expected_hash,
        at,
        at,
        expires_at,
        latest_access_iat,
        str(sid),
        expected_hash,
    ]
    count, _ = await conn.execute_query(_sql(_is_sqlite(conn))["swap"], values)
    return count > 0


async def record_refresh(
    conn: BaseDBAsyncClient, user_id: uuid.UUID, ip: str | None, at: datetime
) -> None:
    """The rotation's audit row (api/auth/audit.py's `refresh` event), in its transaction."""
    values = [str(uuid.uuid4()), "refresh", ip, at, str(user_id)]
    await conn.execute_query(_sql(_is_sqlite(conn))["audit"], values)
