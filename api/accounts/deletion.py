"""Deleting an account: everything the user owns goes; an anonymous tombstone row stays.

Policy (docs/lifecycle.md, "Deletion"): in one transaction
- every session ends (its access tokens are refused at once, in every worker), and the
  session rows lose their device, user agent and IP;
- every row that a hard delete of the user would cascade to (notes, action tokens, any
  later model whose foreign key to User is CASCADE) is deleted;
- the user row is kept, stripped of everything that names or reaches a person: a
  `deleted-<id>@deleted.invalid` address (the real one is free to register again; nobody can
  register a `.invalid` address, so the tombstone's is never taken), a
  password hash no password matches, no display name, no roles, inactive;
- an `account_deleted` audit event is written. Audit events stay (they are the security
  record: kind, time, IP), pointing at the tombstone, which no longer names anyone.

Why a tombstone rather than DELETE: other workers learn of ended sessions by reading the
session rows; deleting them would let the user's access tokens live on elsewhere.
"""

from __future__ import annotations

from tortoise import Tortoise, fields
from tortoise.fields.relational import ForeignKeyFieldInstance
from tortoise.models import Model

from api.accounts.admin import keep_an_admin, lock_admin_changes
from api.auth.audit import AuditLog
from api.auth.fresh import FreshAuth
from api.auth.sessions import SessionService
from api.clock import Clock, to_datetime
from api.db.connection import atomic
from api.db.models import Session, User
from api.errors import BadUserInputError, ForbiddenError
from api.identity import AccessClaims, ClientInfo

UNUSABLE_PASSWORD_HASH = "!"  # matches no password: passlib identifies no scheme in it


def tombstone_email(user: User) -> str:
    return f"deleted-{user.id.hex}@deleted.invalid"


def _owned_relations() -> list[tuple[type[Model], str]]:
    """(model, column) of every CASCADE foreign key to User, sessions excepted."""
    owned: list[tuple[type[Model], str]] = []
    for app in Tortoise.apps.values():
        for model in app.values():
            if model is Session:
                continue
            for field in model._meta.fields_map.values():
                if (
                    isinstance(field, ForeignKeyFieldInstance)
                    and field.related_model is User
                    and field.on_delete == fields.CASCADE
                    and field.source_field is not None
                ):
                    owned.append((model, field.source_field))
    return owned


class AccountDeletion:
    """deleteAccount: confirm, then erase in one transaction."""

    def __init__(
        self, sessions: SessionService, fresh: FreshAuth, audit: AuditLog, clock: Clock
    ) -> None:
        self._sessions = sessions
        self._fresh = fresh
        self._audit = audit
        self._clock = clock

    async def delete(
        self,
        user: User,
        password: str | None,
        caller: AccessClaims,
        client: ClientInfo,
        code: str | None = None,
    ) -> None:
        """Erase the user's data (see the module's policy); needs a fresh sign-in, the
        password or a second-factor code."""
        proved = await self._fresh.confirm(user, password, caller.auth_time, client, code=code)
        async with atomic() as conn:
            await lock_admin_changes(conn)
            # A reset or password change that committed meanwhile ended this session (or
            # changed the password checked above): then this request deletes nothing.
            user = await self._sessions.lock_caller(caller, conn, proved_hash=proved)
            message = "The last admin cannot delete their account: make another admin first."
            try:  # the same row-locked count that guards demotion and deactivation
                await keep_an_admin(user, "password", message, conn)
            except BadUserInputError as exc:
                raise ForbiddenError(message) from exc
            await self._sessions.end_all(
                user.id, reason="account_deleted", client=client, using_db=conn
            )
            await (
                Session.filter(user_id=user.id)
                .using_db(conn)
                .update(device=None, user_agent=None, ip=None)
            )
            for model, column in _owned_relations():
                await model.filter(**{column: user.id}).using_db(conn).delete()
            user.email = tombstone_email(user)
            user.password_hash = UNUSABLE_PASSWORD_HASH
            user.display_name = None
            user.roles = []
            user.is_active = False
            user.email_verified = False
            user.last_login_at = None
            user.updated_at = to_datetime(self._clock())
            await user.save(using_db=conn)
            await self._audit.record(
                "account_deleted",
                user_id=user.id,
                ip=client.ip,
                detail="by the user",
                using_db=conn,
            )
