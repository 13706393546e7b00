"""A user's passkeys: adding one (a WebAuthn registration), listing, renaming, removing.

Adding starts with a fresh sign-in (FRESH_AUTH_MAX_AGE) and finishes in the session that
started it. Every change locks the caller's user row first (the order every account change
takes), checks there that the session which asked is still live, and commits with its audit
event. Any passkey is also a second factor: a password sign-in then answers MFA_REQUIRED.
"""

from __future__ import annotations

import uuid
from typing import Any

from tortoise.exceptions import IntegrityError

from api.auth.audit import AuditLog
from api.auth.fresh import FreshAuth
from api.auth.mfa_tokens import MfaTokens
from api.auth.passkey_challenges import REGISTER, PasskeyChallenges, spent_challenge
from api.auth.ratelimit import RateLimiter
from api.auth.second_factor import methods
from api.auth.sessions import SessionService
from api.auth.webauthn import RelyingParty, parse_attestation
from api.clock import Clock, to_datetime
from api.db.connection import atomic
from api.db.models import Passkey, Session, User
from api.errors import BadUserInputError, ForbiddenError, NotFoundError, TokenRevokedError
from api.identity import AccessClaims, ClientInfo
from api.settings import Settings

MAX_PASSKEYS = 20  # per account: each one is a row and an entry in every sign-in's options
MAX_NAME = 64


def require_passkeys(settings: Settings) -> None:
    if not settings.passkeys:
        raise ForbiddenError("Passkeys are off on this server (WEBAUTHN_RP_ID is not set).")


def check_name(raw: str | None, field: str = "name") -> str | None:
    """A passkey's name: trimmed, 1 to 64 characters; None keeps the default."""
    if raw is None:
        return None
    name = raw.strip()
    if not name or len(name) > MAX_NAME:
        raise BadUserInputError(field, f"'{field}' must have 1 to {MAX_NAME} characters.")
    return name


def user_handle(user_id: object) -> bytes:
    """The WebAuthn user handle: the account id's 16 bytes (no email, nothing personal)."""
    return uuid.UUID(str(user_id)).bytes


async def credential_ids(user_id: object) -> list[str]:
    """The user's passkeys' credential ids, oldest first."""
    rows = await Passkey.filter(user_id=user_id).order_by("created_at", "id")
    return [row.credential_id for row in rows]


class PasskeyManager:
    def __init__(
        self,
        *,
        settings: Settings,
        party: RelyingParty,
        challenges: PasskeyChallenges,
        sessions: SessionService,
        mfa_tokens: MfaTokens,
        fresh: FreshAuth,
        limiter: RateLimiter,
        audit: AuditLog,
        clock: Clock,
    ) -> None:
        self._settings = settings
        self._party = party
        self._challenges = challenges
        self._sessions = sessions
        self._mfa_tokens = mfa_tokens
        self._fresh = fresh
        self._limiter = limiter
        self._audit = audit
        self._clock = clock

    async def start(self, caller: AccessClaims, client: ClientInfo) -> tuple[str, dict[str, Any]]:
        """The challenge id and the options for navigator.credentials.create()."""
        require_passkeys(self._settings)
        self._fresh.require(caller.auth_time)
        await self._limiter.hit_ip(client.ip)  # each start stores a challenge
        user = await User.get_or_none(id=caller.sub)
        if user is None:
            raise TokenRevokedError()
        existing = await credential_ids(user.id)
        if len(existing) >= MAX_PASSKEYS:
            raise BadUserInputError(
                "credential", f"An account holds at most {MAX_PASSKEYS} passkeys."
            )
        options, challenge = self._party.registration_options(
            user_handle(user.id), user.email, user.display_name, existing
        )
        challenge_id = await self._challenges.issue(
            REGISTER, challenge, client, user_id=user.id, session_id=caller.sid
        )
        return challenge_id, options

    async def finish(
        self,
        caller: AccessClaims,
        challenge_id: str,
        credential: Any,
        name: str | None,
        client: ClientInfo,
    ) -> Passkey:
        """Verify the browser's new credential and keep it as a passkey of the caller."""
        require_passkeys(self._settings)
        parsed = parse_attestation(credential)
        chosen = check_name(name)
        row, challenge = await self._challenges.claim(challenge_id, (REGISTER,), client)
        if str(row.user_id) != caller.sub or str(row.session_id) != caller.sid:
            raise spent_challenge()  # another session's ceremony
        try:
            new = self._party.verify_registration(parsed, challenge)
        except Exception:
            await self._audit.record("passkey_add_failed", user_id=caller.sub, ip=client.ip)
            raise
        async with atomic() as conn:
            user = await self._sessions.lock_caller(caller, conn)
            count = await Passkey.filter(user_id=user.id).using_db(conn).count()
            if count >= MAX_PASSKEYS:
                raise BadUserInputError(
                    "credential", f"An account holds at most {MAX_PASSKEYS} passkeys."
                )
            taken = BadUserInputError("credential", "This passkey is already registered.")
            if await Passkey.filter(credential_id=new.credential_id).using_db(conn).exists():
                raise taken
            try:
                passkey = await Passkey.create(
                    user_id=user.id,
                    credential_id=new.credential_id,
                    public_key=new.public_key,
                    sign_count=new.sign_count,
                    aaguid=new.aaguid,
                    transports=new.transports,
                    backup_eligible=new.backup_eligible,
                    backed_up=new.backed_up,
                    name=chosen or f"Passkey {count + 1}",
                    created_at=to_datetime(self._clock()),
                    using_db=conn,
                )
            except IntegrityError:  # another account registered it since the check above
                raise taken from None
            await self._audit.record(
                "passkey_added",
                user_id=user.id,
                ip=client.ip,
                detail=str(passkey.id),
                using_db=conn,
            )
        return passkey

    async def mine(self, caller: AccessClaims) -> list[Passkey]:
        return await Passkey.filter(user_id=caller.sub).order_by("created_at", "id")

    async def rename(
        self, caller: AccessClaims, passkey_id: uuid.UUID | None, name: str, client: ClientInfo
    ) -> Passkey:
        chosen = check_name(name)
        async with atomic() as conn:
            user = await self._sessions.lock_caller(caller, conn)
            passkey = await self._own(user, passkey_id, conn)
            passkey.name = chosen or passkey.name
            await passkey.save(update_fields=["name"], using_db=conn)
            await self._audit.record(
                "passkey_renamed",
                user_id=user.id,
                ip=client.ip,
                detail=str(passkey.id),
                using_db=conn,
            )
        return passkey

    async def remove(
        self, caller: AccessClaims, passkey_id: uuid.UUID | None, client: ClientInfo
    ) -> bool:
        """Remove one of the caller's passkeys; the sessions signed in with it end (but the
        caller's). The account keeps its password (every account has one), so this never
        removes the last way in; with no second factor left, a password sign-in no longer
        asks for one, and pending MFA tokens are spent."""
        self._fresh.require(caller.auth_time)
        async with atomic() as conn:
            user = await self._sessions.lock_caller(caller, conn)
            passkey = await self._own(user, passkey_id, conn)
            await Passkey.filter(id=passkey.id).using_db(conn).delete()
            # The sessions it signed in end with it (a lost device's), but the one asking.
            signed_in_with = (
                await Session.filter(passkey_id=passkey.id, ended_at__isnull=True)
                .exclude(id=caller.sid)
                .using_db(conn)
            )
            await self._sessions.end(
                [row.id for row in signed_in_with],
                reason="passkey_removed",
                client=client,
                using_db=conn,
            )
            if not await methods(user, conn):
                await self._mfa_tokens.spend_all(user.id, conn)
            await self._audit.record(
                "passkey_removed",
                user_id=user.id,
                ip=client.ip,
                detail=str(passkey.id),
                using_db=conn,
            )
        return True

    async def _own(self, user: User, passkey_id: uuid.UUID | None, conn: Any) -> Passkey:
        """The caller's passkey, or NOT_FOUND (another user's looks like none at all)."""
        found = (
            None
            if passkey_id is None
            else await Passkey.filter(id=passkey_id, user_id=user.id).using_db(conn).first()
        )
        if found is None:
            raise NotFoundError()
        return found
