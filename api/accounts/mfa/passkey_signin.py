"""Signing in with a passkey: without a password (a discoverable passkey, or after typing the
email), or as the second step of a password sign-in that answered MFA_REQUIRED.

Without a password the authenticator must verify the user (PIN or biometrics): possession of
the key plus that check are two factors, and `amr` says so (`hwk`/`swk`, `mfa`). A passkey
alone, unverified, would be one factor, and it would skip the second factor of an account
that has one; it is refused. After a password, user verification is preferred, not needed:
password plus key are the two factors (`pwd`, `hwk`/`swk`, `mfa`).

A failed assertion counts like a wrong password (the email's and the IP's limits, reserved
before the check). The challenge, the passkey's counter, the MFA token and the new session are
checked and written in one transaction on the user's locked row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NoReturn

from tortoise.backends.base.client import BaseDBAsyncClient
from webauthn.helpers import bytes_to_base64url
from webauthn.helpers.structs import AuthenticationCredential

from api.accounts.mfa.passkeys import credential_ids, require_passkeys, user_handle
from api.accounts.service import normalise_email
from api.auth.audit import AuditLog
from api.auth.fresh import password_check
from api.auth.mfa_tokens import MfaTokens, spent_error
from api.auth.passkey_challenges import (
    SECOND_FACTOR,
    SIGN_IN,
    PasskeyChallenges,
)
from api.auth.ratelimit import RateLimiter
from api.auth.sessions import IssuedPair, SessionService
from api.auth.webauthn import RelyingParty, counter_regressed, key_kind, parse_assertion
from api.clock import Clock, to_datetime
from api.db.connection import atomic, locked
from api.db.models import MfaChallenge, Passkey, PasskeyChallenge, User
from api.errors import (
    AccountDisabledError,
    BadUserInputError,
    InvalidCredentialsError,
)
from api.identity import ClientInfo
from api.infra.metrics import Metrics
from api.settings import Settings

WRONG = "The passkey was not accepted."
RATE_LIMITED = "passkey_rate_limited"  # the audit event of a refusal by the limits


@dataclass(frozen=True, slots=True)
class Accepted:
    """A verified assertion: what to write back to the passkey, and the session's `amr`."""

    sign_count: int
    backed_up: bool
    amr: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Failure:
    """Why an assertion was refused (recorded: its transaction commits)."""

    reason: str


class PasskeySignIn:
    def __init__(
        self,
        *,
        settings: Settings,
        party: RelyingParty,
        challenges: PasskeyChallenges,
        sessions: SessionService,
        mfa_tokens: MfaTokens,
        limiter: RateLimiter,
        audit: AuditLog,
        metrics: Metrics,
        clock: Clock,
    ) -> None:
        self._settings = settings
        self._party = party
        self._challenges = challenges
        self._sessions = sessions
        self._mfa_tokens = mfa_tokens
        self._limiter = limiter
        self._audit = audit
        self._metrics = metrics
        self._clock = clock

    async def start(
        self, email: str | None, mfa_token: str | None, client: ClientInfo
    ) -> tuple[str, dict[str, Any]]:
        """The challenge id and the options for navigator.credentials.get()."""
        require_passkeys(self._settings)
        if email is not None and mfa_token is not None:
            raise BadUserInputError("mfaToken", "Give 'email' or 'mfaToken', not both.")
        address = None if email is None else normalise_email(email)
        await self._limiter.hit_ip(client.ip)  # each start stores a challenge
        if mfa_token is not None:
            return await self._start_second_factor(mfa_token, client)
        # Email first or not, the options are the same: any discoverable passkey of this site
        # (every passkey registered here is one). Listing the account's passkeys would tell
        # who has an account and how many passkeys; the typed address binds the challenge
        # instead: only that account's passkeys finish it (none, for an unknown address).
        user = None if address is None else await User.get_or_none(email=address)
        options, challenge = self._party.authentication_options(None, user_verification=True)
        challenge_id = await self._challenges.issue(
            SIGN_IN,
            challenge,
            client,
            user_id=None if user is None else user.id,
            email=address,
            user_verification=True,
        )
        return challenge_id, options

    async def _start_second_factor(
        self, mfa_token: str, client: ClientInfo
    ) -> tuple[str, dict[str, Any]]:
        challenge = await self._mfa_tokens.find(mfa_token)
        if challenge is None or not self._mfa_tokens.answerable(challenge, client):
            raise spent_error()
        allow = await credential_ids(challenge.user_id)
        if not allow:
            raise BadUserInputError(
                "mfaToken", "This account has no passkey: answer with a code (verifyMfa)."
            )
        options, raw = self._party.authentication_options(allow, user_verification=False)
        challenge_id = await self._challenges.issue(
            SECOND_FACTOR,
            raw,
            client,
            user_id=challenge.user_id,
            mfa_challenge_id=challenge.id,
        )
        return challenge_id, options

    async def finish(
        self, challenge_id: str, credential: Any, *, device: str | None, client: ClientInfo
    ) -> IssuedPair:
        """A new session, or INVALID_CREDENTIALS (a wrong, unknown or replayed assertion),
        INVALID_TOKEN (the MFA token cannot be used), RATE_LIMITED or ACCOUNT_DISABLED."""
        require_passkeys(self._settings)
        parsed = parse_assertion(credential)
        row, challenge = await self._challenges.claim(
            challenge_id, (SIGN_IN, SECOND_FACTOR), client
        )
        passkey = await Passkey.get_or_none(credential_id=bytes_to_base64url(parsed.raw_id))
        owner = None if passkey is None else await User.get_or_none(id=passkey.user_id)
        # After an email, only that account's passkeys (none for an unknown address: another
        # account's passkey signing in there would tell which addresses have an account).
        named = row.user_id is not None or row.email is not None
        if passkey is None or owner is None or (named and passkey.user_id != row.user_id):
            # Unknown, or another account's passkey than the ceremony is for.
            await self._unknown(row, client)
        email = owner.email
        check = password_check(
            self._limiter, self._audit, email, client, refused=RATE_LIMITED, user_id=owner.id
        )
        async with check as counted:
            outcome = await self._attempt(
                row, challenge, passkey.id, owner.id, parsed, device, client
            )
            if isinstance(outcome, Failure):
                counted.failed()
        if isinstance(outcome, Failure):
            self._metrics.logins.labels(outcome="failed").inc()
            raise InvalidCredentialsError(
                WRONG + " This MFA token is spent: sign in again."
                if outcome.reason == "mfa token spent"
                else WRONG
            )
        self._metrics.logins.labels(outcome="ok").inc()
        return outcome

    async def _unknown(self, row: PasskeyChallenge, client: ClientInfo) -> NoReturn:
        """Refuse a passkey that is not (or not this ceremony's account's). After an email it
        counts against that address, known or not, as a wrong password for an unknown
        address does: a limit reached only by addresses with passkeys would tell them apart."""
        if row.email is None:
            await self._limiter.hit_ip(client.ip)
        else:
            check = password_check(
                self._limiter,
                self._audit,
                row.email,
                client,
                refused=RATE_LIMITED,
                user_id=row.user_id,
            )
            async with check as counted:
                counted.failed()
        await self._audit.record(
            "passkey_sign_in_failed",
            user_id=row.user_id,
            ip=client.ip,
            detail="unknown passkey",
        )
        self._metrics.logins.labels(outcome="failed").inc()
        raise InvalidCredentialsError(WRONG)

    async def _attempt(
        self,
        row: PasskeyChallenge,
        challenge: bytes,
        passkey_id: object,
        owner_id: object,
        credential: AuthenticationCredential,
        device: str | None,
        client: ClientInfo,
    ) -> IssuedPair | Failure:
        async with atomic() as conn:
            user = await locked(User, owner_id, conn)
            # Read under the user's lock: a removal or a sign-in that committed first counts.
            passkey = await Passkey.filter(id=passkey_id, user_id=owner_id).using_db(conn).first()
            if passkey is None or user is None:
                raise InvalidCredentialsError(WRONG)  # removed meanwhile
            second_step = None
            if row.purpose == SECOND_FACTOR:
                second_step = await self._mfa_tokens.claim(row.mfa_challenge_id, user, client, conn)
            checked = self._check(row, challenge, passkey, credential, user)
            if isinstance(checked, Failure):
                return await self._failed(user, checked, second_step, client, conn)
            await (
                Passkey.filter(id=passkey.id)
                .using_db(conn)
                .update(
                    sign_count=checked.sign_count,
                    backed_up=checked.backed_up,
                    last_used_at=to_datetime(self._clock()),
                )
            )
            if not user.is_active:
                raise AccountDisabledError()
            if second_step is not None:
                await self._mfa_tokens.spend(second_step, conn)
            user.last_login_at = to_datetime(self._clock())
            await user.save(update_fields=["last_login_at"], using_db=conn)
            await self._audit.record(
                "login",
                user_id=user.id,
                ip=client.ip,
                detail=f"passkey {passkey.id}",
                using_db=conn,
            )
            return await self._sessions.start(
                user,
                device=device if device is not None or second_step is None else second_step.device,
                client=client,
                using_db=conn,
                amr=checked.amr,
                passkey_id=passkey.id,
            )

    def _check(
        self,
        row: PasskeyChallenge,
        challenge: bytes,
        passkey: Passkey,
        credential: AuthenticationCredential,
        user: User,
    ) -> Accepted | Failure:
        """What the assertion proved, or why it is refused."""
        handle = credential.response.user_handle
        if handle is not None and handle != user_handle(user.id):
            return Failure("user handle of another account")
        assertion = self._party.verify_assertion(
            credential,
            challenge,
            public_key=passkey.public_key,
            user_verification=row.user_verification,
        )
        if assertion is None:
            return Failure("assertion")
        if counter_regressed(passkey.sign_count, assertion.sign_count):
            return Failure("counter went back: a cloned authenticator?")
        kind = key_kind(passkey.backup_eligible)
        # After a password: password and key. Without: key and user verification (required).
        amr = ("pwd", kind, "mfa") if row.purpose == SECOND_FACTOR else (kind, "mfa")
        return Accepted(assertion.sign_count, assertion.backed_up, amr)

    async def _failed(
        self,
        user: User,
        failure: Failure,
        second_step: MfaChallenge | None,
        client: ClientInfo,
        conn: BaseDBAsyncClient,
    ) -> Failure:
        """Record a refused assertion (it commits); a wrong one counts against the MFA token."""
        await self._audit.record(
            "passkey_sign_in_failed",
            user_id=user.id,
            ip=client.ip,
            detail=failure.reason,
            using_db=conn,
        )
        if second_step is not None and await self._mfa_tokens.failed(second_step, conn):
            return Failure("mfa token spent")
        return failure
