"""Accounts: register, sign in, change the password, sign out everywhere (the admin's switches
are in api/accounts/admin.py)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, NoReturn

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.exceptions import IntegrityError

from api.accounts.actions import ActionTokens
from api.addresses import is_plain_address
from api.auth.audit import AuditLog
from api.auth.fresh import FreshAuth, password_check
from api.auth.mfa_tokens import MfaTokens
from api.auth.passwords import PasswordHasher, check_password
from api.auth.ratelimit import RateLimiter
from api.auth.second_factor import methods
from api.auth.sessions import IssuedPair, SessionService
from api.clock import Clock, to_datetime
from api.db.connection import atomic, locked
from api.db.models import User
from api.errors import (
    AccountDisabledError,
    BadUserInputError,
    EmailTakenError,
    InvalidCredentialsError,
    MfaRequiredError,
    NotFoundError,
)
from api.identity import AccessClaims, ClientInfo
from api.infra.metrics import Metrics

MAX_DISPLAY_NAME = 200


def normalise_email(raw: str, field: str = "email") -> str:
    """Trimmed, lower-cased, and shaped like an address, else BAD_USER_INPUT.

    The reserved `.invalid` top-level domain (RFC 2606) receives no mail anywhere; refusing it
    also keeps the tombstones of deleted accounts (api/accounts/deletion.py) unregistrable."""
    email = raw.strip().lower()
    if not is_plain_address(email) or email.rstrip(".").endswith(".invalid"):
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


@dataclass(frozen=True, slots=True)
class Verified:
    """What a password check proved: this password matches this stored hash of this user."""

    user_id: uuid.UUID
    password_hash: str
    new_hash: str | None  # the same password hashed with today's parameters, when outdated


class AccountService:
    def __init__(
        self,
        hasher: PasswordHasher,
        sessions: SessionService,
        audit: AuditLog,
        clock: Clock,
        limiter: RateLimiter,
        metrics: Metrics,
        fresh: FreshAuth,
        actions: ActionTokens,
        mfa_tokens: MfaTokens,
    ) -> None:
        self._mfa_tokens = mfa_tokens
        self._fresh = fresh
        self._actions = actions
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
        async with atomic() as conn:
            user = await self._insert(*fields, using_db=conn)
            user.last_login_at = user.created_at
            await user.save(update_fields=["last_login_at"], using_db=conn)
            await self._audit.record("register", user_id=user.id, ip=client.ip, using_db=conn)
            return await self._sessions.start(user, device=device, client=client, using_db=conn)

    async def authenticate(self, email: str, password: str, client: ClientInfo) -> Verified:
        """The user with this email and password, or INVALID_CREDENTIALS / ACCOUNT_DISABLED.

        The row is read outside any transaction (hashing must hold no lock); what was proved
        is returned as a `Verified`, which `login` re-checks against the locked row."""
        email = normalise_email(email)
        check_password(password)
        check = password_check(
            self._limiter, self._audit, email, client, refused="login_rate_limited"
        )
        async with check as counted:
            user = await User.get_or_none(email=email)
            if user is None:
                # Same cost as a wrong password, so timing does not reveal which emails exist.
                await self._hasher.dummy_verify()
                counted.failed()
                ok, new_hash = False, None
            else:
                ok, new_hash = await self._hasher.verify(password, user.password_hash)
                if not ok:
                    counted.failed()
        if user is None or not ok:
            detail = "unknown email" if user is None else None
            await self._audit.record(
                "login_failed", user_id=user.id if user else None, ip=client.ip, detail=detail
            )
            self._metrics.logins.labels(outcome="failed").inc()
            raise InvalidCredentialsError()
        if not user.is_active:
            await self._refused_disabled(user.id, client)
        return Verified(user.id, user.password_hash, new_hash)

    async def _refused_disabled(self, user_id: object, client: ClientInfo) -> NoReturn:
        await self._audit.record("login_refused_disabled", user_id=user_id, ip=client.ip)
        self._metrics.logins.labels(outcome="disabled").inc()
        raise AccountDisabledError()

    async def login(
        self, email: str, password: str, *, device: str | None, client: ClientInfo
    ) -> IssuedPair:
        """A new session for a correct email and password.

        The password was verified against a row read before hashing; the session starts only
        if that row still holds the very hash that was verified and is still active, checked
        on the locked row in the transaction that starts the session. A password reset, change,
        deactivation, demotion or deletion that commits first wins; one that commits later
        finds the new session and ends (or cuts) it."""
        verified = await self.authenticate(email, password, client)
        now = to_datetime(self._clock())
        async with atomic() as conn:
            changes: dict[str, Any] = {"last_login_at": now}
            if verified.new_hash is not None:  # an upgraded hash, written only over the old one
                changes["password_hash"] = verified.new_hash
            claimed = (
                await User.filter(id=verified.user_id, password_hash=verified.password_hash)
                .filter(is_active=True)
                .using_db(conn)
                .update(**changes)
            )
            user = await locked(User, verified.user_id, conn)
            stale = not claimed or user is None
            second_step = None
            factors = [] if stale or user is None else await methods(user, conn)
            if not stale and user is not None and factors:
                # Enrolled (read on the locked row: an enrolment that committed first counts):
                # no session yet, only an MFA token for verifyMfa.
                second_step = await self._mfa_tokens.issue(user, device, client, conn)
                await self._audit.record(
                    "login_mfa_required", user_id=user.id, ip=client.ip, using_db=conn
                )
            elif not stale and user is not None:
                await self._audit.record("login", user_id=user.id, ip=client.ip, using_db=conn)
                pair = await self._sessions.start(user, device=device, client=client, using_db=conn)
        if stale:  # recorded outside the block: nothing in it is to keep
            if user is not None and not user.is_active:
                await self._refused_disabled(user.id, client)
            # The password changed while it was being checked: what was proved is stale.
            await self._audit.record(
                "login_failed", user_id=verified.user_id, ip=client.ip, detail="stale"
            )
            self._metrics.logins.labels(outcome="failed").inc()
            raise InvalidCredentialsError()
        if second_step is not None and user is not None:
            raise MfaRequiredError(second_step, factors, self._mfa_tokens.ttl)
        self._metrics.logins.labels(outcome="ok").inc()
        return pair

    async def change_password(
        self, caller: AccessClaims, current: str, new: str, client: ClientInfo
    ) -> IssuedPair:
        """Check the current password, store the new one, end every other session."""
        check_password(new, "newPassword")
        user = await User.get_or_none(id=caller.sub)
        if user is None:
            raise NotFoundError()
        await self._fresh.check(
            user,
            current,
            client,
            "password_change_failed",
            "The current password is wrong.",
            field="currentPassword",
        )
        new_hash = await self._hasher.hash(new)
        async with atomic() as conn:  # new password and ended sessions commit together
            # Re-checked on the locked row: a reset, a change or a sign-out that committed
            # meanwhile wins, and this request proves nothing any more. The row read here
            # (roles included) is what the renewed tokens carry.
            user = await self._sessions.lock_caller(caller, conn, proved_hash=user.password_hash)
            user.password_hash = new_hash
            user.updated_at = to_datetime(self._clock())
            await user.save(update_fields=["password_hash", "updated_at"], using_db=conn)
            await self._audit.record(
                "password_changed", user_id=user.id, ip=client.ip, using_db=conn
            )
            await self._actions.retire(user.id, using_db=conn)  # links mailed before: dead
            await self._sessions.end_all(
                user.id, reason="password_changed", client=client, keep=caller.sid, using_db=conn
            )
            sign = await self._sessions.renew(user, caller.sid, using_db=conn)
        return await sign()

    async def sign_out_everywhere(self, caller: AccessClaims, client: ClientInfo) -> int:
        """logoutAll: every session ends and every pending mailed link is retired (someone
        who could sign in may have parked an email change); returns the sessions ended.

        A caller whose session ended meanwhile (a thief just locked out by the owner's
        password change) signs nobody out: TOKEN_REVOKED."""
        async with atomic() as conn:
            user = await self._sessions.lock_caller(caller, conn)
            await self._actions.retire(user.id, using_db=conn)
            return await self._sessions.end_all(
                user.id, reason="logout_all", client=client, kind="logout_all", using_db=conn
            )
