"""What an admin does to other accounts: (de)activate them and set their roles, without ever
leaving no active admin.

Every such change takes one advisory lock first (`lock_admin_changes`), then the acting
admin's row, re-checked under lock (`lock_acting_admin`): an admin deactivated, demoted or
signed out meanwhile acts no more, even with requests already queued behind the lock."""

from __future__ import annotations

import uuid

from tortoise.backends.base.client import BaseDBAsyncClient

from api.auth.audit import AuditLog
from api.auth.sessions import SessionService
from api.clock import Clock, to_datetime
from api.db.connection import atomic, locked
from api.db.models import User
from api.errors import BadUserInputError, ForbiddenError, NotFoundError
from api.identity import AccessClaims, ClientInfo


async def lock_acting_admin(
    sessions: SessionService, actor: AccessClaims, conn: BaseDBAsyncClient
) -> User:
    """Serialise changes to who is an admin, then re-check the acting admin under lock:
    one deactivated, demoted or signed out meanwhile acts no more (FORBIDDEN /
    TOKEN_REVOKED), even with requests already queued behind the lock."""
    await lock_admin_changes(conn)
    me = await sessions.lock_caller(actor, conn)
    if "admin" not in me.roles:
        raise ForbiddenError()
    return me


class AdminActions:
    def __init__(self, sessions: SessionService, audit: AuditLog, clock: Clock) -> None:
        self._sessions = sessions
        self._audit = audit
        self._clock = clock

    async def set_active(
        self, actor: AccessClaims, user_id: uuid.UUID | None, active: bool, client: ClientInfo
    ) -> User:
        """Admin: (de)activate a user; deactivating ends every session at once."""
        async with atomic() as conn:
            actor_id = (await lock_acting_admin(self._sessions, actor, conn)).id
            user = None if user_id is None else await locked(User, user_id, conn)
            if user is None:
                raise NotFoundError()
            if not active:
                await keep_an_admin(user, "active", "The last admin cannot be deactivated.", conn)
            user.is_active = active
            user.updated_at = to_datetime(self._clock())
            await user.save(update_fields=["is_active", "updated_at"], using_db=conn)
            kind = "user_activated" if active else "user_deactivated"
            await self._audit.record(
                kind, user_id=user.id, ip=client.ip, detail=f"by {actor_id}", using_db=conn
            )
            if not active:
                await self._sessions.end_all(
                    user.id, reason="deactivated", client=client, using_db=conn
                )
        return user

    async def set_roles(
        self,
        actor: AccessClaims,
        user_id: uuid.UUID | None,
        roles: list[str],
        known_roles: tuple[str, ...],
        client: ClientInfo,
    ) -> User:
        """Admin: replace a user's roles; their current access tokens stop working at once."""
        unknown = sorted(set(roles) - set(known_roles))
        if unknown:
            raise BadUserInputError("roles", f"Unknown role(s): {', '.join(unknown)}.")
        wanted = sorted(set(roles), key=roles.index)
        async with atomic() as conn:
            actor_id = (await lock_acting_admin(self._sessions, actor, conn)).id
            user = None if user_id is None else await locked(User, user_id, conn)
            if user is None:
                raise NotFoundError()
            if "admin" not in wanted:
                msg = "The last admin cannot lose the admin role."
                await keep_an_admin(user, "roles", msg, conn)
            user.roles = wanted
            user.updated_at = to_datetime(self._clock())
            await user.save(update_fields=["roles", "updated_at"], using_db=conn)
            await self._audit.record(
                "roles_changed",
                user_id=user.id,
                ip=client.ip,
                detail=f"by {actor_id}: {','.join(wanted)}",
                using_db=conn,
            )
            await self._sessions.cut_access(user.id, using_db=conn)
        return user


# Any number: it names the lock that changes which users are admins take (PostgreSQL).
_ADMIN_CHANGES_LOCK = 0x67726170


async def lock_admin_changes(conn: BaseDBAsyncClient) -> None:
    """Take the lock of changes that may touch the set of active admins (first thing in the
    transaction; SQLite's transaction already holds the database's write lock).

    Such changes lock several users' rows (the actor's, the target's, every admin's in
    `keep_an_admin`); one transaction-scoped advisory lock taken first serialises them, so
    two never wait on each other's rows (no deadlock), while sign-ins and refreshes, which
    lock one row, do not wait for it."""
    if conn.capabilities.dialect == "postgres":
        await conn.execute_query("SELECT pg_advisory_xact_lock($1)", [_ADMIN_CHANGES_LOCK])


async def keep_an_admin(user: User, field: str, message: str, conn: BaseDBAsyncClient) -> None:
    """Refuse a change that would leave no active admin (BAD_USER_INPUT on `field`)."""
    if not user.is_active or "admin" not in user.roles:
        return
    ids = [u.id for u in await User.filter(is_active=True).using_db(conn) if "admin" in u.roles]
    # Lock the admins' rows, then count again: two admins demoting each other at once are
    # serialised here, and the second sees the first's change (PostgreSQL, SQLite alike).
    locked = (
        await User.filter(id__in=ids, is_active=True)
        .order_by("id")
        .select_for_update(no_key=True)  # as `locked`: no conflict with foreign-key checks
        .using_db(conn)
    )
    if not any("admin" in u.roles and u.id != user.id for u in locked):
        raise BadUserInputError(field, message)
