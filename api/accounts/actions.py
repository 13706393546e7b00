"""Action tokens: the single-use secrets in mailed links (verify email, reset password,
change email, cancel an email change).

A token is 32 random bytes (secrets.token_urlsafe); only its SHA-256 is stored. Each is bound
to one purpose and one user, expires, and is spent by a compare-and-set UPDATE inside the
caller's transaction, so it works once even when two requests race, and only if the effect
it pays for commits too.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Collection
from typing import Literal

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.expressions import Q

from api.clock import Clock, to_datetime
from api.db.models import ActionToken
from api.errors import InvalidTokenError
from api.settings import Settings

Purpose = Literal["verify_email", "reset_password", "change_email", "cancel_email_change"]
# What each mutation accepts: a reset token never verifies an email, nor the reverse.
VERIFYING: tuple[Purpose, ...] = ("verify_email", "change_email")
RESETTING: tuple[Purpose, ...] = ("reset_password",)
CANCELLING: tuple[Purpose, ...] = ("cancel_email_change",)
CHANGING: tuple[Purpose, ...] = ("change_email",)
EVERY_PURPOSE: tuple[Purpose, ...] = (*VERIFYING, *RESETTING, *CANCELLING)
MAX_TOKEN_LENGTH = 200  # ours are 43 characters; longer input is not worth hashing


def new_token() -> tuple[str, str]:
    """A fresh (token, hash) pair."""
    token = secrets.token_urlsafe(32)
    return token, hash_token(token)


def hash_token(token: str) -> str:
    # A fast hash is enough: the token has 256 random bits, nothing to guess offline.
    return hashlib.sha256(token.encode()).hexdigest()


class ActionTokens:
    """Issues and spends action tokens; lifetimes come from the settings."""

    def __init__(self, settings: Settings, clock: Clock) -> None:
        self._clock = clock
        self._ttl: dict[str, int] = {
            "verify_email": settings.email_verification_ttl,
            "change_email": settings.email_verification_ttl,
            "reset_password": settings.reset_token_ttl,
            "cancel_email_change": settings.email_verification_ttl,
        }

    async def issue(
        self,
        user_id: object,
        purpose: Purpose,
        *,
        new_email: str | None = None,
        prepared: tuple[str, str] | None = None,
        using_db: BaseDBAsyncClient | None = None,
    ) -> str:
        """Store a new token (hash only) and return it; earlier ones of the same purpose stop
        working, so only the latest link mailed for it is valid."""
        token, token_hash = prepared or new_token()
        now = self._clock()
        # Superseded, spent and expired rows of this user go: the table stays small.
        await (
            ActionToken.filter(user_id=user_id)
            .filter(
                Q(purpose=purpose) | Q(used_at__isnull=False) | Q(expires_at__lte=to_datetime(now))
            )
            .using_db(using_db)
            .delete()
        )
        await ActionToken.create(
            user_id=user_id,
            purpose=purpose,
            token_hash=token_hash,
            new_email=new_email,
            expires_at=to_datetime(now + self._ttl[purpose]),
            created_at=to_datetime(now),
            using_db=using_db,
        )
        return token

    async def peek(
        self,
        token: str,
        purposes: Collection[Purpose],
        *,
        using_db: BaseDBAsyncClient | None = None,
    ) -> ActionToken:
        """The live token row (not spent), or INVALID_TOKEN: for checks before slow work."""
        if not token or len(token) > MAX_TOKEN_LENGTH:
            raise InvalidTokenError("This link is invalid or has expired.")
        row = (
            await ActionToken.filter(
                token_hash=hash_token(token),
                purpose__in=list(purposes),
                used_at__isnull=True,
                expires_at__gt=to_datetime(self._clock()),
            )
            .using_db(using_db)
            .select_related("user")
            .first()
        )
        if row is None or not row.user.is_active:
            raise InvalidTokenError("This link is invalid or has expired.")
        return row

    async def spend(
        self, token: str, purposes: Collection[Purpose], *, using_db: BaseDBAsyncClient
    ) -> ActionToken:
        """Mark the token used, inside the caller's transaction, or raise INVALID_TOKEN.

        The UPDATE's `used_at IS NULL` is the compare-and-set: of two concurrent spends one
        updates the row and the other (blocked on the row until the first commits) none.
        """
        row = await self.peek(token, purposes, using_db=using_db)
        now = to_datetime(self._clock())
        updated = (
            await ActionToken.filter(id=row.id, used_at__isnull=True, expires_at__gt=now)
            .using_db(using_db)
            .update(used_at=now)
        )
        if updated != 1:
            raise InvalidTokenError("This link was already used.")
        row.used_at = now
        return row

    async def retire(
        self,
        user_id: object,
        purposes: Collection[Purpose] = EVERY_PURPOSE,
        *,
        using_db: BaseDBAsyncClient | None = None,
    ) -> None:
        """Make every unspent token of these purposes for the user unusable.

        Policy: a password reset or change, "sign out everywhere" and a change of address
        retire every pending link of the account (a link mailed earlier may be an
        attacker's: a parked email change must not outlive the owner's recovery)."""
        await (
            ActionToken.filter(user_id=user_id, purpose__in=list(purposes), used_at__isnull=True)
            .using_db(using_db)
            .update(used_at=to_datetime(self._clock()))
        )
