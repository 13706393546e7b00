"""Turning an authenticator app on and off, and the recovery codes that stand in for it.

Each change locks the caller's user row first (the order every account change takes), checks
under that lock that the session which asked is still live, and commits with its audit event.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from tortoise.backends.base.client import BaseDBAsyncClient

from api.auth import totp
from api.auth.audit import AuditLog
from api.auth.fresh import FreshAuth, password_check
from api.auth.mfa_tokens import MfaTokens
from api.auth.ratelimit import RateLimiter
from api.auth.second_factor import SecondFactor, check_code_input
from api.auth.sessions import SessionService
from api.clock import Clock
from api.db.connection import atomic
from api.db.models import Passkey, RecoveryCode, Session, User
from api.db.reads import UserView
from api.errors import (
    BadUserInputError,
    InvalidCredentialsError,
    TokenRevokedError,
)
from api.identity import AccessClaims, ClientInfo

# The session that confirmed enrolment proved a code: its next tokens say so.
MULTI_FACTOR = ("pwd", "otp", "mfa")


@dataclass(frozen=True, slots=True)
class TotpSetup:
    secret: str
    otpauth_uri: str
    qr_svg: str


@dataclass(frozen=True, slots=True)
class MfaState:
    totp_enabled: bool
    recovery_codes_left: int
    passkeys: int


async def mfa_state(user: User | UserView) -> MfaState:
    enabled = user.totp_enabled if isinstance(user, UserView) else user.totp_secret is not None
    left = await RecoveryCode.filter(user_id=user.id, used_at__isnull=True).count()
    passkeys = await Passkey.filter(user_id=user.id).count()
    return MfaState(totp_enabled=enabled, recovery_codes_left=left, passkeys=passkeys)


class MfaEnrolment:
    def __init__(
        self,
        *,
        sessions: SessionService,
        factor: SecondFactor,
        mfa_tokens: MfaTokens,
        fresh: FreshAuth,
        audit: AuditLog,
        limiter: RateLimiter,
        clock: Clock,
        issuer: str,
    ) -> None:
        self._sessions = sessions
        self._factor = factor
        self._mfa_tokens = mfa_tokens
        self._fresh = fresh
        self._audit = audit
        self._limiter = limiter
        self._clock = clock
        self._issuer = issuer

    async def start(self, caller: AccessClaims, client: ClientInfo) -> TotpSetup:
        """A new secret, kept (encrypted) as pending until a code from it confirms it."""
        self._fresh.require(caller.auth_time)
        await self._limiter.hit_ip(client.ip)  # each start draws a QR code (~40 ms of CPU)
        secret = totp.new_secret()
        async with atomic() as conn:
            user = await self._sessions.lock_caller(caller, conn)
            if user.totp_secret is not None:
                raise BadUserInputError(
                    "code", "Two-factor sign-in is already on: disable it first to replace it."
                )
            user.totp_pending = self._factor.box.encrypt(secret, str(user.id))
            await user.save(update_fields=["totp_pending"], using_db=conn)
            await self._audit.record(
                "totp_enrollment_started", user_id=user.id, ip=client.ip, using_db=conn
            )
        uri = totp.provisioning_uri(secret, user.email, self._issuer)
        # Off the event loop: drawing the QR code is CPU work that would stall every request.
        svg = await asyncio.to_thread(totp.qr_svg, uri)
        return TotpSetup(secret=secret, otpauth_uri=uri, qr_svg=svg)

    async def confirm(self, caller: AccessClaims, code: str, client: ClientInfo) -> list[str]:
        """Turn TOTP on with a first code; returns the ten recovery codes (shown once).

        Every other session of the user ends (they were signed in with the password alone,
        which may be what a thief holds); this one continues, its next tokens multi-factor."""
        check_code_input(code)
        owner = await User.get_or_none(id=caller.sub)
        if owner is None:
            raise TokenRevokedError()
        email = owner.email
        # A wrong first code is a wrong code like any other: it counts against the email (and
        # the IP), reserved before the check, so a stolen session cannot guess the code of a
        # pending secret from many addresses, turn it on and take its recovery codes.
        check = password_check(
            self._limiter, self._audit, email, client, refused="mfa_rate_limited", user_id=owner.id
        )
        async with check as counted:
            ok, codes, user = await self._confirm(caller, code, client)
            if not ok:
                counted.failed()
        if not ok:
            await self._audit.record("totp_confirm_failed", user_id=user.id, ip=client.ip)
            raise InvalidCredentialsError("The code is wrong: enter the one the app shows now.")
        return codes

    async def _confirm(
        self, caller: AccessClaims, code: str, client: ClientInfo
    ) -> tuple[bool, list[str], User]:
        """Check the code against the pending secret and turn it on, in one transaction."""
        codes: list[str] = []
        async with atomic() as conn:
            user = await self._sessions.lock_caller(caller, conn)
            if user.totp_secret is not None:
                raise BadUserInputError("code", "Two-factor sign-in is already on.")
            if user.totp_pending is None:
                raise BadUserInputError("code", "Start with startTotpEnrollment.")
            ok = await self._factor.verify_totp(user, user.totp_pending, code, conn)
            if ok:
                user.totp_secret, user.totp_pending = user.totp_pending, None
                await user.save(update_fields=["totp_secret", "totp_pending"], using_db=conn)
                codes = await self._factor.new_recovery_codes(user, conn)
                await Session.filter(id=caller.sid).using_db(conn).update(amr=list(MULTI_FACTOR))
                await self._sessions.end_all(
                    user.id, reason="mfa_enabled", client=client, keep=caller.sid, using_db=conn
                )
                await self._audit.record(
                    "totp_enabled", user_id=user.id, ip=client.ip, using_db=conn
                )
        return ok, codes, user

    async def disable(
        self, caller: AccessClaims, code: str | None, password: str | None, client: ClientInfo
    ) -> bool:
        """Turn TOTP off: with a current code, the password, or a fresh sign-in."""
        user = await User.get(id=caller.sub)
        proved = await self._fresh.confirm(user, password, caller.auth_time, client, code=code)
        async with atomic() as conn:
            user = await self._sessions.lock_caller(caller, conn, proved_hash=proved)
            if user.totp_secret is None and user.totp_pending is None:
                return False
            await clear_factors(user, self._mfa_tokens, conn)
            await self._audit.record("totp_disabled", user_id=user.id, ip=client.ip, using_db=conn)
        return True

    async def regenerate(self, caller: AccessClaims, client: ClientInfo) -> list[str]:
        """Ten new recovery codes; the old ones stop working."""
        self._fresh.require(caller.auth_time)
        async with atomic() as conn:
            user = await self._sessions.lock_caller(caller, conn)
            if user.totp_secret is None:
                raise BadUserInputError("code", "Two-factor sign-in is off: nothing to regenerate.")
            codes = await self._factor.new_recovery_codes(user, conn)
            await self._audit.record(
                "recovery_codes_regenerated", user_id=user.id, ip=client.ip, using_db=conn
            )
        return codes


async def clear_factors(user: User, mfa_tokens: MfaTokens, conn: BaseDBAsyncClient) -> None:
    """No secret, no recovery codes, no pending MFA token (on a row the caller locked)."""
    user.totp_secret = user.totp_pending = None
    await user.save(update_fields=["totp_secret", "totp_pending"], using_db=conn)
    await RecoveryCode.filter(user_id=user.id).using_db(conn).delete()
    await mfa_tokens.spend_all(user.id, conn)
