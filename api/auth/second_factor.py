"""Checking a second-factor code against a user row locked by the caller: a TOTP code
(once per time step, never a step at or before the last one accepted) or a recovery code
(spent by a compare-and-set, so two concurrent uses of one code cannot both win)."""

from __future__ import annotations

from tortoise.backends.base.client import BaseDBAsyncClient

from api.auth import recovery_codes, totp
from api.auth.secretbox import SecretBox
from api.clock import Clock, to_datetime
from api.db.models import Passkey, RecoveryCode, User
from api.errors import BadUserInputError
from api.settings import SettingsError

MAX_CODE_LENGTH = 64  # longer than any code of ours: refused before any work
TOTP = "totp"
RECOVERY_CODE = "recovery_code"
PASSKEY = "passkey"


def check_code_input(code: str, field: str = "code") -> None:
    if not code.strip() or len(code) > MAX_CODE_LENGTH:
        raise BadUserInputError(field, f"'{field}' must be a 6-digit code or a recovery code.")


async def has_passkey(user_id: object, conn: BaseDBAsyncClient | None = None) -> bool:
    return await Passkey.filter(user_id=user_id).using_db(conn).exists()


async def methods(user: User, conn: BaseDBAsyncClient | None = None) -> list[str]:
    """What the user can answer MFA_REQUIRED with; empty when a password is enough.

    Any second factor turns it on: an authenticator app, or a passkey."""
    found = [TOTP, RECOVERY_CODE] if user.totp_secret is not None else []
    if await has_passkey(user.id, conn):
        found.append(PASSKEY)
    return found


class SecondFactor:
    """Verifies codes; every method runs inside the caller's transaction, on a row the
    caller locked (`locked(User, …)`), so the last accepted step is read and written
    under that lock."""

    def __init__(self, box: SecretBox, clock: Clock) -> None:
        self._box = box
        self._clock = clock

    @property
    def box(self) -> SecretBox:
        return self._box

    async def verify(self, user: User, code: str, conn: BaseDBAsyncClient) -> str | None:
        """The method the code proved (TOTP or RECOVERY_CODE) and spend it, or None."""
        if user.totp_secret is None:
            return None
        if await self.verify_totp(user, user.totp_secret, code, conn):
            return TOTP
        normalised = recovery_codes.normalise(code)
        if normalised is None:
            return None
        spent = (
            await RecoveryCode.filter(
                user_id=user.id,
                code_hash=recovery_codes.hash_code(user.id, normalised),
                used_at__isnull=True,
            )
            .using_db(conn)
            .update(used_at=to_datetime(self._clock()))
        )
        return RECOVERY_CODE if spent else None

    async def verify_totp(
        self, user: User, sealed: str, code: str, conn: BaseDBAsyncClient
    ) -> bool:
        """A TOTP code of the secret `sealed` (the enrolled or the pending one), used once."""
        secret = self._box.decrypt(sealed, str(user.id))
        step = totp.matching_step(secret, code, self._clock())
        # A code is accepted once: its step, and every step before it, are spent.
        if step is None or step <= user.totp_last_step:
            return False
        changes: dict[str, object] = {"totp_last_step": step}
        if user.totp_secret == sealed and not self._box.is_current(sealed):
            changes["totp_secret"] = self._box.encrypt(secret, str(user.id))  # key rotation
        await User.filter(id=user.id).using_db(conn).update(**changes)
        user.update_from_dict(changes)
        return True

    async def new_recovery_codes(self, user: User, conn: BaseDBAsyncClient) -> list[str]:
        """Replace the user's recovery codes with ten new ones; returns them (shown once)."""
        await RecoveryCode.filter(user_id=user.id).using_db(conn).delete()
        codes = recovery_codes.new_codes()
        now = to_datetime(self._clock())
        await RecoveryCode.bulk_create(
            [
                RecoveryCode(
                    user_id=user.id,
                    code_hash=recovery_codes.hash_code(user.id, c.replace("-", "")),
                    created_at=now,
                )
                for c in codes
            ],
            using_db=conn,
        )
        return codes


async def require_key_if_enrolled(box: SecretBox) -> None:
    """At start: without MFA_ENCRYPTION_KEY (production has no generated one) no enrolled
    user could sign in; refuse to start, naming the setting, instead of failing each login."""
    if not box.configured and await User.filter(totp_secret__isnull=False).exists():
        raise SettingsError(
            "MFA_ENCRYPTION_KEY is required: users have turned on two-factor sign-in, and "
            "their secrets are encrypted with it (docs/mfa.md)"
        )


async def require_relying_party_if_registered(passkeys_on: bool) -> None:
    """At start: with passkeys off (production without WEBAUTHN_RP_ID), users who registered
    passkeys, and answer MFA_REQUIRED with them, could not sign in; refuse to start."""
    if not passkeys_on and await Passkey.exists():
        raise SettingsError(
            "WEBAUTHN_RP_ID and WEBAUTHN_ORIGINS are required: users have registered passkeys "
            "(docs/passkeys.md)"
        )
