"""Account lifecycle: verify the email, reset a forgotten password, change the email.

Each flow mails a single-use link (api/auth/actions.py) and applies its effect in the same
transaction that spends the token. Deleting an account is in api/auth/deletion.py.
"""

from __future__ import annotations

import functools

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from api.auth.accounts import normalise_email
from api.auth.actions import RESETTING, VERIFYING, ActionTokens, new_token
from api.auth.audit import AuditLog
from api.auth.emails import AccountMails
from api.auth.fresh import FreshAuth
from api.auth.passwords import PasswordHasher, check_password
from api.auth.ratelimit import RateLimiter
from api.auth.sessions import ClientInfo, SessionService
from api.clock import Clock, to_datetime
from api.errors import BadUserInputError, EmailTakenError
from api.mail import Mail, Mailer
from api.models import User


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

    async def request_verification(self, user: User, client: ClientInfo) -> None:
        """Mail a verification link to the user's address (nothing to do if verified)."""
        if user.email_verified:
            return
        await self._limiter.hit_email(user.email, "verify_email")
        async with in_transaction() as conn:
            token = await self._tokens.issue(user.id, "verify_email", using_db=conn)
            await self._audit.record(
                "email_verification_requested", user_id=user.id, ip=client.ip, using_db=conn
            )
        self._mailer.send(self._mails.verify_email(user.email, token))

    async def verify_email(self, token: str, client: ClientInfo) -> User:
        """Spend a verify_email or change_email token: the address is verified (and, for a
        change, becomes the account's address)."""
        old_email: str | None = None
        async with in_transaction() as conn:
            row = await self._tokens.spend(token, VERIFYING, using_db=conn)
            user = row.user
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
        user = await User.get_or_none(email=address)
        async with in_transaction() as conn:
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
        async with in_transaction() as conn:
            row = await self._tokens.spend(token, RESETTING, using_db=conn)
            user = row.user
            user.password_hash = password_hash
            user.email_verified = True  # the link went to this address: using it proves it
            user.updated_at = to_datetime(self._clock())
            await user.save(
                update_fields=["password_hash", "email_verified", "updated_at"], using_db=conn
            )
            await self._audit.record("password_reset", user_id=user.id, ip=client.ip, using_db=conn)
            await self._sessions.end_all(
                user.id, reason="password_reset", client=client, using_db=conn
            )

    async def request_email_change(
        self,
        user: User,
        new_email: str,
        password: str | None,
        auth_time: int,
        client: ClientInfo,
    ) -> None:
        """Mail a confirmation link to the new address; the change applies when it is used."""
        address = normalise_email(new_email, "newEmail")
        await self._fresh.confirm(user, password, auth_time, client)
        if address == user.email:
            raise BadUserInputError("newEmail", "This is already the account's address.")
        await self._limiter.hit_email(address, "change_email")
        if await User.filter(email=address).exists():
            raise EmailTakenError()
        async with in_transaction() as conn:
            token = await self._tokens.issue(
                user.id, "change_email", new_email=address, using_db=conn
            )
            await self._audit.record(
                "email_change_requested", user_id=user.id, ip=client.ip, using_db=conn
            )
        self._mailer.send(self._mails.change_email(address, token))
