"""Fresh authentication: sensitive changes need the password (or, once enrolled, a code
from the authenticator app), or a recent sign-in.

A stolen access token is good for minutes; it should not be enough to change the account's
email, delete it, or hand out roles. The token's `auth_time` says when the user last typed
their password; past FRESH_AUTH_MAX_AGE the password must come with the request.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from api.auth.audit import AuditLog
from api.auth.passwords import PasswordHasher, check_password
from api.auth.ratelimit import PasswordAttempt, RateLimiter
from api.auth.second_factor import SecondFactor, check_code_input
from api.clock import Clock
from api.db.connection import atomic, locked
from api.db.models import Session, User
from api.errors import FreshLoginRequiredError, InvalidCredentialsError, RateLimitedError
from api.identity import ClientInfo


async def signed_in_from(email: str, ip: str | None) -> bool:
    """Whether this account has a session (live or recent) from this IP: its owner's."""
    return ip is not None and await Session.filter(user__email=email, ip=ip).exists()


@contextlib.asynccontextmanager
async def password_check(
    limiter: RateLimiter,
    audit: AuditLog,
    email: str,
    client: ClientInfo,
    *,
    refused: str,
    user_id: object = None,
) -> AsyncIterator[PasswordAttempt]:
    """One reserved check of a password (or a code, or a passkey) for `email`, under the
    per-email and per-IP limits (`RateLimiter.password_attempt`; past the email's own budget,
    an IP the account signed in from keeps one of its own); a refusal is audited as `refused`
    before RATE_LIMITED goes on. Call `failed()` on what it yields when the check failed."""
    try:
        attempt = limiter.password_attempt(
            email, client.ip, lambda: signed_in_from(email, client.ip)
        )
        async with attempt as counted:
            yield counted
    except RateLimitedError:
        await audit.record(refused, user_id=user_id, ip=client.ip)
        raise


class FreshAuth:
    """Decides whether a request may do something sensitive without re-entering a password."""

    def __init__(
        self,
        max_age: int,
        clock: Clock,
        hasher: PasswordHasher,
        limiter: RateLimiter,
        audit: AuditLog,
        factor: SecondFactor,
    ) -> None:
        self._factor = factor
        self._max_age = max_age
        self._clock = clock
        self._hasher = hasher
        self._limiter = limiter
        self._audit = audit

    def require(self, auth_time: int) -> None:
        """FRESH_LOGIN_REQUIRED unless the password was entered within FRESH_AUTH_MAX_AGE."""
        if self._clock() - auth_time > self._max_age:
            raise FreshLoginRequiredError()

    async def confirm(
        self,
        user: User,
        password: str | None,
        auth_time: int,
        client: ClientInfo,
        code: str | None = None,
    ) -> str | None:
        """Accept a correct password, or a code of the user's second factor, or else a fresh
        sign-in; returns the stored hash the password was checked against (None otherwise),
        for the caller to re-check under lock (`SessionService.lock_caller`).

        A wrong password or code is INVALID_CREDENTIALS and counts as a failed login for the
        email (RATE_LIMIT_PER_EMAIL): a stolen token cannot be used to guess either.
        """
        if code is not None:
            await self.check_code(user, code, client)
            return None
        if password is None:
            self.require(auth_time)
            return None
        await self.check(user, password, client, "password_confirm_failed")
        return user.password_hash

    async def check(
        self,
        user: User,
        password: str,
        client: ClientInfo,
        failure_kind: str,
        message: str = "The password is wrong.",
        field: str = "password",
    ) -> None:
        """Verify a signed-in user's password under the same limits as `login` (per IP, per
        email, reserved before hashing): a stolen access token cannot guess it forever."""
        check_password(password, field)
        async with self._check(user, client) as counted:
            ok, _ = await self._hasher.verify(password, user.password_hash)
            if not ok:
                counted.failed()
        if not ok:
            await self._audit.record(failure_kind, user_id=user.id, ip=client.ip)
            raise InvalidCredentialsError(message)

    async def check_code(self, user: User, code: str, client: ClientInfo) -> None:
        """A TOTP or recovery code of the signed-in user, under the password limits; the code
        is spent (a TOTP step, a recovery code) in its own transaction on the locked row."""
        check_code_input(code)
        async with self._check(user, client) as counted:
            async with atomic() as conn:
                row = await locked(User, user.id, conn)
                method = None if row is None else await self._factor.verify(row, code, conn)
            if method is None:
                counted.failed()
        if method is None:
            await self._audit.record("code_confirm_failed", user_id=user.id, ip=client.ip)
            raise InvalidCredentialsError("The code is wrong.")

    def _check(
        self, user: User, client: ClientInfo
    ) -> contextlib.AbstractAsyncContextManager[PasswordAttempt]:
        return password_check(
            self._limiter,
            self._audit,
            user.email,
            client,
            refused="password_rate_limited",
            user_id=user.id,
        )
