"""An admin turns off another user's second factors, passkeys included (a lost phone and
lost recovery codes): the user's sessions end, and their next sign-in is with the password
alone, after which they can enrol again."""

from __future__ import annotations

import uuid

from api.accounts.admin import lock_acting_admin
from api.accounts.mfa.enrolment import clear_factors
from api.auth.audit import AuditLog
from api.auth.mfa_tokens import MfaTokens
from api.auth.second_factor import methods
from api.auth.sessions import SessionService
from api.db.connection import atomic, locked
from api.db.models import Passkey, User
from api.errors import InsufficientAuthenticationError, NotFoundError
from api.identity import AccessClaims, ClientInfo


class MfaReset:
    def __init__(self, sessions: SessionService, mfa_tokens: MfaTokens, audit: AuditLog) -> None:
        self._sessions = sessions
        self._mfa_tokens = mfa_tokens
        self._audit = audit

    async def reset(
        self, actor: AccessClaims, user_id: uuid.UUID | None, client: ClientInfo
    ) -> bool:
        """Clear the user's second factors and end their sessions; False when they had none
        (their sessions end all the same)."""
        if not actor.multi_factor:  # the guard checked it too: a reset is never password-only
            raise InsufficientAuthenticationError(enrolled=True)
        async with atomic() as conn:
            # The actor's row, then the target's: serialised with other multi-user changes so
            # two admins resetting each other never wait on each other's rows.
            me = await lock_acting_admin(self._sessions, actor, conn)
            user = None if user_id is None else await locked(User, user_id, conn)
            if user is None:
                raise NotFoundError()
            had = bool(await methods(user, conn))
            await clear_factors(user, self._mfa_tokens, conn)
            # A lost phone may hold the passkeys too: every second factor goes.
            await Passkey.filter(user_id=user.id).using_db(conn).delete()
            await self._sessions.end_all(
                user.id,
                reason="mfa_reset",
                client=client,
                kind="mfa_reset",
                using_db=conn,
            )
            await self._audit.record(
                "mfa_reset_by_admin",
                user_id=me.id,
                ip=client.ip,
                detail=f"of {user.id}",
                using_db=conn,
            )
        return had
