"""Account lifecycle: verify the email, reset a forgotten password, change the email.

Each flow mails a single-use link (api/accounts/actions.py) and applies its effect in the same
transaction that spends the token. Deleting an account is in api/accounts/deletion.py.
"""

from __future__ import annotations

import functools

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.exceptions import IntegrityError

from api.accounts.actions import (
    CANCELLING,
    CHANGING,
    RESETTING,
    VERIFYING,
    ActionTokens,
    Purpose,
    new_token,
)
from api.accounts.emails import AccountMails
from api.accounts.service import normalise_email
from api.auth.audit import AuditLog
from api.auth.fresh import FreshAuth
from api.auth.passwords import PasswordHasher, check_password
from api.auth.ratelimit import RateLimiter
from api.auth.sessions import SessionService
from api.clock import Clock, to_datetime
from api.db.connection import atomic, locked
from api.db.models import ActionToken, User
from api.errors import BadUserInputError, EmailTakenError, InvalidTokenError
from api.identity import AccessClaims, ClientInfo
from api.infra.mail import Mail, Mailer


class AccountLifecycle:
    """The mailed-link flows. Resolvers call one method each."""

    def __init__(
        self,
        *,
        tokens: ActionTokens,
        mails: AccountMails,
        mailer: Mailer,
        hasher: PasswordHasher,
        sessions: SessionService,
        fresh: FreshAuth,
        audit: AuditLog,
        limiter: RateLimiter,
        clock: Clock,
    ) -> None:
        self._tokens = tokens
        self._mails = mails
        self._mailer = mailer
        self._hasher = hasher
        self._sessions = sessions
        self._fresh = fresh
        self._audit = audit
        self._limiter = limiter
        self._clock = clock

    async def request_verification(
        self, user: User, caller: AccessClaims, client: ClientInfo
    ) -> None:
        """Mail a verification link to the user's address (nothing to do if verified)."""
        if user.email_verified:
            return
        await self._limiter.hit_email(user.email, "verify_email")
        async with atomic() as conn:
            current = await self._sessions.lock_caller(caller, conn)  # the address as it is now
            if current.email_verified:
                return
            token = await self._tokens.issue(user.id, "verify_email", using_db=conn)
            await self._audit.record(
                "email_verification_requested", user_id=user.id, ip=client.ip, using_db=conn
            )
        self._mailer.send(self._mails.verify_email(current.email, token))

    async def verify_email(self, token: str, client: ClientInfo) -> User:
        """Spend a verify_email or change_email token: the address is verified (and, for a
        change, becomes the account's address)."""
        old_email: str | None = None
        async with atomic() as conn:
            row, user = await self._spend(token, VERIFYING, conn)
            fields = ["email_verified", "updated_at"]
            if row.purpose == "change_email" and row.new_email is not None:
                if await User.filter(email=row.new_email).using_db(conn).exists():
                    raise EmailTakenError("This address was registered meanwhile.")
                old_email, user.email = user.email, row.new_email
                fields.append("email")
            user.email_verified = True
            user.updated_at = to_datetime(self._clock())
            try:
                await user.save(update_fields=fields, using_db=conn)
            except IntegrityError as exc:  # the unique index decides a race with register
                raise EmailTakenError("This address was registered meanwhile.") from exc
            if old_email is not None:
                # Links mailed to the old address (a pending reset, say) must die with it.
                await self._tokens.retire(user.id, using_db=conn)
            kind = "email_changed" if old_email is not None else "email_verified"
            await self._audit.record(kind, user_id=user.id, ip=client.ip, using_db=conn)
        if old_email is not None:
            self._mailer.send(self._mails.email_changed(old_email))
        return user

    async def request_password_reset(self, email: str, client: ClientInfo) -> None:
        """Mail a reset link if an active account has this address; the answer is the same,
        in the same time, either way."""
        await self._limiter.hit_ip(client.ip)
        address = normalise_email(email)
        await self._limiter.hit_email(address, "reset_password")
        prepared = new_token()  # made for unknown addresses too: the same work either way
        # Everything that depends on whether the account exists runs after the answer.
        self._mailer.send(functools.partial(self._prepare_reset, address, prepared, client))

    async def _prepare_reset(
        self, address: str, prepared: tuple[str, str], client: ClientInfo
    ) -> Mail | None:
        async with atomic() as conn:
            # Read and locked in the transaction that issues the link: an address changed
            # meanwhile gets no link for the account it no longer names.
            user = (
                await User.filter(email=address)
                .select_for_update(no_key=True)
                .using_db(conn)
                .first()
            )
            if user is None or not user.is_active:
                # Recorded too: someone probing for accounts shows in the audit trail.
                await self._audit.record(
                    "password_reset_requested",
                    ip=client.ip,
                    detail="no active account",
                    using_db=conn,
                )
                return None
            token = await self._tokens.issue(
                user.id, "reset_password", prepared=prepared, using_db=conn
            )
            await self._audit.record(
                "password_reset_requested", user_id=user.id, ip=client.ip, using_db=conn
            )
        return self._mails.reset_password(user.email, token)

    async def reset_password(self, token: str, new_password: str, client: ClientInfo) -> None:
        """Spend a reset token: the new password applies and every session ends."""
        check_password(new_password, "newPassword")
        await self._tokens.peek(token, RESETTING)  # a bad link costs no hashing
        password_hash = await self._hasher.hash(new_password)
        async with atomic() as conn:
            _, user = await self._spend(token, RESETTING, conn)
            user.password_hash = password_hash
            user.email_verified = True  # the link went to this address: using it proves it
            user.updated_at = to_datetime(self._clock())
            await user.save(
                update_fields=["password_hash", "email_verified", "updated_at"], using_db=conn
            )
            await self._audit.record("password_reset", user_id=user.id, ip=client.ip, using_db=conn)
            # Every other pending link goes: a parked email change may be the attacker's.
            await self._tokens.retire(user.id, using_db=conn)
            await self._sessions.end_all(
                user.id, reason="password_reset", client=client, using_db=conn
            )

    async def request_email_change(
        self,
        user: User,
        new_email: str,
        password: str | None,
        caller: AccessClaims,
        client: ClientInfo,
        code: str | None = None,
    ) -> None:
        """Mail a confirmation link to the new address; the change applies when it is used."""
        address = normalise_email(new_email, "newEmail")
        proved = await self._fresh.confirm(user, password, caller.auth_time, client, code=code)
        if address == user.email:
            raise BadUserInputError("newEmail", "This is already the account's address.")
        await self._limiter.hit_email(address, "change_email")
        if await User.filter(email=address).exists():
            raise EmailTakenError()
        async with atomic() as conn:
            # Under the lock: a reset, password change or sign-out that committed since this
            # request was authorised wins (its retired links must not be re-issued here).
            current = await self._sessions.lock_caller(caller, conn, proved_hash=proved)
            token = await self._tokens.issue(
                user.id, "change_email", new_email=address, using_db=conn
            )
            cancel = await self._tokens.issue(user.id, "cancel_email_change", using_db=conn)
            await self._audit.record(
                "email_change_requested", user_id=user.id, ip=client.ip, using_db=conn
            )
        self._mailer.send(self._mails.change_email(address, token))
        # The current owner hears of it at once, with a way to stop it.
        self._mailer.send(self._mails.email_change_requested(current.email, address, cancel))

    async def cancel_email_change(self, token: str, client: ClientInfo) -> None:
        """Spend a cancel link: the pending email change (and this link) stop working."""
        async with atomic() as conn:
            row, _ = await self._spend(token, CANCELLING, conn)
            await self._tokens.retire(row.user_id, CHANGING, using_db=conn)
            await self._audit.record(
                "email_change_cancelled", user_id=row.user_id, ip=client.ip, using_db=conn
            )

    async def _spend(
        self, token: str, purposes: tuple[Purpose, ...], conn: BaseDBAsyncClient
    ) -> tuple[ActionToken, User]:
        """Lock the link's user row, then spend the link: every change to an account takes
        its user row first, so two flows never wait on each other's rows."""
        peeked = await self._tokens.peek(token, purposes, using_db=conn)
        user = await _live_user(peeked.user_id, conn)
        return await self._tokens.spend(token, purposes, using_db=conn), user


async def _live_user(user_id: object, conn: BaseDBAsyncClient) -> User:
    """The user's row, locked for the rest of the transaction; INVALID_TOKEN once it is
    deactivated or deleted (a link of such an account does nothing)."""
    user = await locked(User, user_id, conn)
    if user is None or not user.is_active:
        raise InvalidTokenError("This link is invalid or has expired.")
    return user
