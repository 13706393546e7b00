"""Accounts: register, sign in, change password, and the admin's role and active switches."""

from __future__ import annotations

import re
import uuid

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from api.addresses import is_plain_address
from api.auth.audit import AuditLog
from api.auth.passwords import PasswordHasher, check_password
from api.auth.ratelimit import RateLimiter
from api.auth.sessions import ClientInfo, IssuedPair, SessionService
from api.clock import Clock, to_datetime
from api.errors import (
    AccountDisabledError,
    BadUserInputError,
    EmailTakenError,
    InvalidCredentialsError,
    NotFoundError,
    RateLimitedError,
)
from api.metrics import Metrics
from api.models import Session, User

# Deliberately loose: one @, something on each side, a dot in the domain, no spaces.
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
MAX_DISPLAY_NAME = 200


def normalise_email(raw: str, field: str = "email") -> str:
    """Trimmed, lower-cased, and shaped like an address, else BAD_USER_INPUT."""
    email = raw.strip().lower()
    if not is_plain_address(email):
        raise BadUserInputError(field, f"'{field}' must be an email address.")
    return email


def check_display_name(raw: str | None) -> str | None:
    if raw is None:
        return None
    name = raw.strip()
    if len(name) > MAX_DISPLAY_NAME:
        raise BadUserInputError(
            "displayName", f"'displayName' has at most {MAX_DISPLAY_NAME} characters."
        )
    return name or None


def parse_id(raw: str, field: str = "id") -> uuid.UUID | None:
    """A UUID, or None for anything else (callers answer NOT_FOUND, revealing nothing)."""
    try:
        return uuid.UUID(raw)
    except ValueError:
        return None


class AccountService:
    def __init__(
        self,
        hasher: PasswordHasher,
        sessions: SessionService,
        audit: AuditLog,
        clock: Clock,
        limiter: RateLimiter,
        metrics: Metrics,
    ) -> None:
        self._limiter = limiter
        self._metrics = metrics
        self._hasher = hasher
        self._sessions = sessions
        self._audit = audit
        self._clock = clock

    async def create_user(
        self,
        email: str,
        password: str,
        *,
        display_name: str | None = None,
        roles: tuple[str, ...] = ("user",),
    ) -> User:
        """A new user (the CLI's create-user); EMAIL_TAKEN when the address is in use."""
        fields = await self._prepare(email, password, display_name)
        return await self._insert(*fields, roles=roles)

    async def _prepare(
        self, email: str, password: str, display_name: str | None
    ) -> tuple[str, str, str | None]:
        """Checked inputs and the password hash: (email, password_hash, display_name)."""
        email = normalise_email(email)
        check_password(password)
        name = check_display_name(display_name)
        return email, await self._hasher.hash(password), name

    async def _insert(
        self,
        email: str,
        password_hash: str,
        name: str | None,
        *,
        roles: tuple[str, ...] = ("user",),
        using_db: BaseDBAsyncClient | None = None,
    ) -> User:
        now = to_datetime(self._clock())
        try:
            return await User.create(
                email=email,
                password_hash=password_hash,
                display_name=name,
                roles=list(roles),
                created_at=now,
                updated_at=now,
                using_db=using_db,
            )
        except IntegrityError as exc:  # the unique index decides races, not a prior SELECT
            raise EmailTakenError() from exc

    async def register(
        self,
        email: str,
        password: str,
        *,
        display_name: str | None,
        device: str | None,
        client: ClientInfo,
    ) -> IssuedPair:
        """A new ordinary user, signed in."""
        await self._limiter.hit_ip(client.ip)
        # Hashed before the transaction: no connection (or SQLite's lock) is held while hashing.
        fields = await self._prepare(email, password, display_name)
        async with in_transaction() as conn:
            user = await self._insert(*fields, using_db=conn)
            user.last_login_at = user.created_at
            await user.save(update_fields=["last_login_at"], using_db=conn)
            await self._audit.record("register", user_id=user.id, ip=client.ip, using_db=conn)
            return await self._sessions.start(user, device=device, client=client, using_db=conn)

    async def authenticate(self, email: str, password: str, client: ClientInfo) -> User:
        """The user with this email and password, or INVALID_CREDENTIALS / ACCOUNT_DISABLED."""
        await self._limiter.hit_ip(client.ip)
        email = normalise_email(email)
        check_password(password)
        wait = await self._limiter.email_locked(email)
        if wait is not None and await self._signed_in_from(email, client.ip):
            # The owner's own IP keeps a way in, with its own quota: not an unlimited one.
            wait = await self._limiter.email_locked(email, client.ip)
        if wait is not None:
            await self._audit.record("login_rate_limited", ip=client.ip)
            raise RateLimitedError(wait)
        user = await User.get_or_none(email=email)
        if user is None:
            # Same cost as a wrong password, so timing does not reveal which emails exist.
            await self._hasher.dummy_verify()
            await self._limiter.record_login_failure(email, client.ip)
            await self._audit.record("login_failed", ip=client.ip, detail="unknown email")
            self._metrics.logins.labels(outcome="failed").inc()
            raise InvalidCredentialsError()
        ok, new_hash = await self._hasher.verify(password, user.password_hash)
        if not ok:
            await self._limiter.record_login_failure(email, client.ip)
            await self._audit.record("login_failed", user_id=user.id, ip=client.ip)
            self._metrics.logins.labels(outcome="failed").inc()
            raise InvalidCredentialsError()
        if not user.is_active:
            await self._audit.record("login_refused_disabled", user_id=user.id, ip=client.ip)
            self._metrics.logins.labels(outcome="disabled").inc()
            raise AccountDisabledError()
        if new_hash is not None:
            user.password_hash = new_hash
        return user

    @staticmethod
    async def _signed_in_from(email: str, ip: str | None) -> bool:
        """Whether this account has a session (live or recent) from this IP: its owner's."""
        return ip is not None and await Session.filter(user__email=email, ip=ip).exists()

    async def login(
        self, email: str, password: str, *, device: str | None, client: ClientInfo
    ) -> IssuedPair:
        user = await self.authenticate(email, password, client)
        async with in_transaction() as conn:
            user.last_login_at = to_datetime(self._clock())
            await user.save(update_fields=["last_login_at", "password_hash"], using_db=conn)
            await self._audit.record("login", user_id=user.id, ip=client.ip, using_db=conn)
            pair = await self._sessions.start(user, device=device, client=client, using_db=conn)
        self._metrics.logins.labels(outcome="ok").inc()
        return pair

    async def change_password(
        self, user_id: object, sid: str, current: str, new: str, client: ClientInfo
    ) -> IssuedPair:
        """Check the current password, store the new one, end every other session."""
        check_password(new, "newPassword")
        user = await User.get_or_none(id=user_id)
        if user is None:
            raise NotFoundError()
        ok, _ = await self._hasher.verify(current, user.password_hash)
        if not ok:
            await self._audit.record("password_change_failed", user_id=user.id, ip=client.ip)
            raise InvalidCredentialsError("The current password is wrong.")
        user.password_hash = await self._hasher.hash(new)
        user.updated_at = to_datetime(self._clock())
        async with in_transaction() as conn:  # new password and ended sessions commit together
            await user.save(update_fields=["password_hash", "updated_at"], using_db=conn)
            await self._audit.record(
                "password_changed", user_id=user.id, ip=client.ip, using_db=conn
            )
            await self._sessions.end_all(
                user.id, reason="password_changed", client=client, keep=sid, using_db=conn
            )
            return await self._sessions.renew(user, sid, using_db=conn)

    async def set_active(
        self, actor_id: object, user_id: uuid.UUID | None, active: bool, client: ClientInfo
    ) -> User:
        """Admin: (de)activate a user; deactivating ends every session at once."""
        user = None if user_id is None else await User.get_or_none(id=user_id)
        if user is None:
            raise NotFoundError()
        async with in_transaction() as conn:
            if not active:
                await _keep_an_admin(user, "active", "The last admin cannot be deactivated.", conn)
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
        actor_id: object,
        user_id: uuid.UUID | None,
        roles: list[str],
        known_roles: tuple[str, ...],
        client: ClientInfo,
    ) -> User:
        """Admin: replace a user's roles; their current access tokens stop working at once."""
        unknown = sorted(set(roles) - set(known_roles))
        if unknown:
            raise BadUserInputError("roles", f"Unknown role(s): {', '.join(unknown)}.")
        user = None if user_id is None else await User.get_or_none(id=user_id)
        if user is None:
            raise NotFoundError()
        wanted = sorted(set(roles), key=roles.index)
        async with in_transaction() as conn:
            if "admin" not in wanted:
                msg = "The last admin cannot lose the admin role."
                await _keep_an_admin(user, "roles", msg, conn)
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


async def _keep_an_admin(user: User, field: str, message: str, conn: BaseDBAsyncClient) -> None:
    """Refuse a change that would leave no active admin (BAD_USER_INPUT on `field`)."""
    if not user.is_active or "admin" not in user.roles:
        return
    ids = [u.id for u in await User.filter(is_active=True).using_db(conn) if "admin" in u.roles]
    # Lock the admins' rows, then count again: two admins demoting each other at once are
    # serialised here, and the second sees the first's change (PostgreSQL, SQLite alike).
    locked = (
        await User.filter(id__in=ids, is_active=True)
        .order_by("id")
        .select_for_update()
        .using_db(conn)
    )
    if not any("admin" in u.roles and u.id != user.id for u in locked):
        raise BadUserInputError(field, message)
