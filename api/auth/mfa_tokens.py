"""MFA tokens: the second step of one sign-in.

`login` with the right password of an enrolled user answers MFA_REQUIRED with one of these
instead of a token pair. It is random (only its hash is stored), single use, lives
MFA_TOKEN_TTL seconds, works only from the client (IP and User-Agent) that proved the
password and only while that password is still the account's, and MAX_FAILURES wrong codes
spend it."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from tortoise.backends.base.client import BaseDBAsyncClient

from api.auth.second_factor import methods
from api.clock import Clock, to_datetime
from api.db.models import MfaChallenge, User
from api.errors import InvalidTokenError
from api.identity import ClientInfo

MAX_FAILURES = 5  # wrong codes that spend an MFA token (each also counts as a failed password)
MAX_TOKEN_LENGTH = 128


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def proof_of(password_hash: str) -> str:
    """What the token remembers of the password that was proved: a change spends it."""
    return hashlib.sha256(password_hash.encode()).hexdigest()


def spent_error() -> InvalidTokenError:
    return InvalidTokenError("The MFA token is invalid, used or expired: sign in again.")


class MfaTokens:
    def __init__(self, ttl: int, clock: Clock) -> None:
        self._ttl = ttl
        self._clock = clock

    @property
    def ttl(self) -> int:
        return self._ttl

    async def issue(
        self, user: User, device: str | None, client: ClientInfo, conn: BaseDBAsyncClient
    ) -> str:
        """A new MFA token for a user whose password was just proved (in the caller's
        transaction, on the locked row)."""
        token = secrets.token_urlsafe(32)
        now = self._clock()
        await MfaChallenge.create(
            user_id=user.id,
            token_hash=_hash(token),
            proof=proof_of(user.password_hash),
            ip=client.ip,
            user_agent=client.stored_user_agent,
            device=device[:200] if device else None,
            created_at=to_datetime(now),
            expires_at=to_datetime(now + self._ttl),
            using_db=conn,
        )
        return token

    async def find(self, token: str) -> MfaChallenge | None:
        """The challenge of a token (read without a lock: `claim` checks it again)."""
        if not token or len(token) > MAX_TOKEN_LENGTH:
            return None
        return await MfaChallenge.get_or_none(token_hash=_hash(token))

    async def claim(
        self, challenge_id: object, user: User, client: ClientInfo, conn: BaseDBAsyncClient
    ) -> MfaChallenge:
        """Re-read the challenge inside the transaction that locked its user's row, and check
        that it may still be answered; INVALID_TOKEN otherwise."""
        row = await MfaChallenge.get_or_none(id=challenge_id, using_db=conn)
        if (
            row is None
            or row.user_id != user.id
            or not self.answerable(row, client)
            or row.proof != proof_of(user.password_hash)
            # reset or disabled since the password step
            or not await methods(user, conn)
        ):
            raise spent_error()
        return row

    def answerable(self, row: MfaChallenge, client: ClientInfo) -> bool:
        """Unspent, unexpired, and asked for by the client that proved the password: a token
        copied elsewhere is dead."""
        return (
            row.used_at is None
            and self._clock() < row.expires_at.timestamp()
            and row.ip == client.ip
            and row.user_agent == client.stored_user_agent
        )

    async def failed(self, row: MfaChallenge, conn: BaseDBAsyncClient) -> bool:
        """Count a wrong code; True when it spent the token."""
        failures = row.failures + 1
        spent = failures >= MAX_FAILURES
        changes: dict[str, object] = {"failures": failures}
        if spent:
            changes["used_at"] = to_datetime(self._clock())
        await MfaChallenge.filter(id=row.id).using_db(conn).update(**changes)
        return spent

    async def spend(self, row: MfaChallenge, conn: BaseDBAsyncClient) -> None:
        await (
            MfaChallenge.filter(id=row.id).using_db(conn).update(used_at=to_datetime(self._clock()))
        )

    async def spend_all(self, user_id: object, conn: BaseDBAsyncClient) -> None:
        """Every pending MFA token of the user stops working (reset, disable)."""
        await (
            MfaChallenge.filter(user_id=user_id, used_at__isnull=True)
            .using_db(conn)
            .update(used_at=to_datetime(self._clock()))
        )

    async def prune(self) -> int:
        """Delete challenges that expired over a day ago."""
        return await MfaChallenge.filter(
            expires_at__lt=to_datetime(self._clock()) - timedelta(days=1)
        ).delete()
