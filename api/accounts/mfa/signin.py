"""verifyMfa: the second step of a sign-in, an MFA token and a code for a token pair.

A wrong code counts exactly like a wrong password (the email's and the IP's limits, reserved
before the check: api/auth/ratelimit.py), and MAX_FAILURES of them spend the MFA token. The
token, the code and the new session are checked and written in one transaction on the
user's locked row: of two requests with one token (or one recovery code), one wins."""

from __future__ import annotations

from api.auth.audit import AuditLog
from api.auth.fresh import password_check
from api.auth.mfa_tokens import MfaTokens, spent_error
from api.auth.ratelimit import RateLimiter
from api.auth.second_factor import SecondFactor, check_code_input
from api.auth.sessions import IssuedPair, SessionService
from api.clock import Clock, to_datetime
from api.db.connection import atomic, locked
from api.db.models import User
from api.errors import AccountDisabledError, InvalidCredentialsError
from api.identity import ClientInfo
from api.infra.metrics import Metrics

SIGNED_IN_WITH = ("pwd", "otp", "mfa")  # RFC 8176: password, one-time code, both


class MfaSignIn:
    def __init__(
        self,
        *,
        sessions: SessionService,
        factor: SecondFactor,
        mfa_tokens: MfaTokens,
        limiter: RateLimiter,
        audit: AuditLog,
        metrics: Metrics,
        clock: Clock,
    ) -> None:
        self._sessions = sessions
        self._factor = factor
        self._mfa_tokens = mfa_tokens
        self._limiter = limiter
        self._audit = audit
        self._metrics = metrics
        self._clock = clock

    async def verify(
        self, mfa_token: str, code: str, *, device: str | None, client: ClientInfo
    ) -> IssuedPair:
        """A new multi-factor session, or INVALID_TOKEN (the MFA token cannot be used),
        INVALID_CREDENTIALS (a wrong code), RATE_LIMITED or ACCOUNT_DISABLED."""
        check_code_input(code)
        challenge = await self._mfa_tokens.find(mfa_token)
        email = None if challenge is None else await _email_of(challenge.user_id)
        if challenge is None or email is None:
            await self._limiter.hit_ip(client.ip)
            raise spent_error()
        check = password_check(
            self._limiter,
            self._audit,
            email,
            client,
            refused="mfa_rate_limited",
            user_id=challenge.user_id,
        )
        async with check as counted:
            outcome = await self._attempt(challenge.id, challenge.user_id, code, device, client)
            if not isinstance(outcome, IssuedPair):
                counted.failed()
        if isinstance(outcome, IssuedPair):
            self._metrics.logins.labels(outcome="ok").inc()
            return outcome
        self._metrics.logins.labels(outcome="failed").inc()
        if outcome == "spent":
            raise InvalidCredentialsError(
                "The code is wrong; this MFA token is spent: sign in again."
            )
        raise InvalidCredentialsError("The code is wrong.")

    async def _attempt(
        self,
        challenge_id: object,
        user_id: object,
        code: str,
        device: str | None,
        client: ClientInfo,
    ) -> IssuedPair | str:
        """The pair, or "wrong" / "spent" after a wrong code (recorded: it commits)."""
        async with atomic() as conn:
            user = await locked(User, user_id, conn)
            if user is None:
                raise spent_error()
            if not user.is_active:
                raise AccountDisabledError()
            row = await self._mfa_tokens.claim(challenge_id, user, client, conn)
            method = await self._factor.verify(user, code, conn)
            if method is None:
                spent = await self._mfa_tokens.failed(row, conn)
                await self._audit.record(
                    "mfa_failed",
                    user_id=user.id,
                    ip=client.ip,
                    using_db=conn,
                    detail="token spent" if spent else None,
                )
                return "spent" if spent else "wrong"
            await self._mfa_tokens.spend(row, conn)
            user.last_login_at = to_datetime(self._clock())
            await user.save(update_fields=["last_login_at"], using_db=conn)
            await self._audit.record(
                "login", user_id=user.id, ip=client.ip, detail=f"mfa: {method}", using_db=conn
            )
            return await self._sessions.start(
                user,
                device=device if device is not None else row.device,
                client=client,
                using_db=conn,
                amr=SIGNED_IN_WITH,
            )


async def _email_of(user_id: object) -> str | None:
    user = await User.get_or_none(id=user_id)
    return None if user is None else user.email
