"""The challenges of WebAuthn ceremonies in progress, kept server-side.

A ceremony's `challengeId` is random (only its hash is stored), lives CEREMONY_SECONDS, and
is spent by its first finish, right or wrong: the compare-and-set on `used_at` commits before
the credential is looked at, so a challenge is never answered twice, and two concurrent
finishes of one challenge never both run. A registration's challenge is bound to the session
that asked; a sign-in's to the client (IP and User-Agent) that asked, and, when it completes
a password sign-in, to that sign-in's MFA token."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import timedelta

from webauthn.helpers import base64url_to_bytes, bytes_to_base64url

from api.auth.webauthn import CEREMONY_SECONDS
from api.clock import Clock, to_datetime
from api.db.models import PasskeyChallenge
from api.errors import InvalidCredentialsError
from api.identity import ClientInfo

REGISTER = "register"
SIGN_IN = "sign_in"  # passwordless: with a discoverable passkey, or after an email
SECOND_FACTOR = "second_factor"  # after a password, for an MFA token
MAX_ID_LENGTH = 128


def _hash(challenge_id: str) -> str:
    return hashlib.sha256(challenge_id.encode()).hexdigest()


def spent_challenge() -> InvalidCredentialsError:
    return InvalidCredentialsError(
        "The passkey challenge is unknown, used or expired: start again."
    )


class PasskeyChallenges:
    def __init__(self, clock: Clock) -> None:
        self._clock = clock

    async def issue(
        self,
        purpose: str,
        challenge: bytes,
        client: ClientInfo,
        *,
        user_id: object = None,
        session_id: str | None = None,
        mfa_challenge_id: object = None,
        email: str | None = None,
        user_verification: bool = False,
    ) -> str:
        """Store a ceremony's challenge; returns the `challengeId` for the client."""
        challenge_id = secrets.token_urlsafe(32)
        now = self._clock()
        await PasskeyChallenge.create(
            token_hash=_hash(challenge_id),
            purpose=purpose,
            challenge=bytes_to_base64url(challenge),
            user_id=user_id,
            session_id=uuid.UUID(session_id) if session_id else None,
            mfa_challenge_id=mfa_challenge_id,
            email=email,
            user_verification=user_verification,
            ip=client.ip,
            user_agent=client.stored_user_agent,
            created_at=to_datetime(now),
            expires_at=to_datetime(now + CEREMONY_SECONDS),
        )
        return challenge_id

    async def claim(
        self, challenge_id: str, purposes: tuple[str, ...], client: ClientInfo
    ) -> tuple[PasskeyChallenge, bytes]:
        """Spend a challenge (committed at once) and return it with its challenge bytes; a
        challenge that is unknown, spent, expired, of another ceremony or asked for by
        another client is INVALID_CREDENTIALS."""
        if not challenge_id or len(challenge_id) > MAX_ID_LENGTH:
            raise spent_challenge()
        now = to_datetime(self._clock())
        row = await PasskeyChallenge.get_or_none(token_hash=_hash(challenge_id))
        if row is None or row.purpose not in purposes or row.expires_at <= now:
            raise spent_challenge()
        # The compare-and-set that makes it single use: of two finishes, one spends it.
        spent = await PasskeyChallenge.filter(id=row.id, used_at__isnull=True).update(used_at=now)
        if not spent:
            raise spent_challenge()
        if row.purpose != REGISTER and (
            row.ip != client.ip or row.user_agent != client.stored_user_agent
        ):
            raise spent_challenge()  # a challenge carried to another client is dead
        return row, base64url_to_bytes(row.challenge)

    async def prune(self) -> int:
        """Delete challenges that expired over a day ago."""
        return await PasskeyChallenge.filter(
            expires_at__lt=to_datetime(self._clock()) - timedelta(days=1)
        ).delete()
