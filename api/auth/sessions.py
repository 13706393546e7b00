"""Sessions: start one per login, rotate its refresh token, end it.

A session is a refresh-token family. Rotation is one compare-and-set UPDATE on the hash of
the session's current refresh `jti`, so of concurrent refreshes with one token exactly one
wins, on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass

from tortoise.backends.base.client import BaseDBAsyncClient

from api.auth.audit import AuditLog
from api.auth.ratelimit import RateLimiter
from api.auth.revocation import ENDED, RevocationList
from api.auth.tokens import TokenService, hash_jti, new_jti
from api.clock import Clock, to_datetime
from api.db.connection import after_commit, atomic, locked
from api.db.models import Session, User
from api.db.reads import UserView
from api.db.rotation import (
    RefreshState,
    SessionCut,
    lock_user,
    record_refresh,
    refresh_state,
    session_cut,
    swap,
)
from api.errors import (
    InvalidCredentialsError,
    InvalidTokenError,
    RefreshTokenReusedError,
    ServiceUnavailableError,
    SessionExpiredError,
    TokenExpiredError,
    TokenRevokedError,
)
from api.identity import AccessClaims, ClientInfo, parse_id
from api.infra.metrics import Metrics
from api.settings import Settings

# Each cut-off is at least one second past the previous one; a token issued after a few in a
# row waits for its `iat` (see _pair). Past this many seconds the client retries instead.
MAX_SIGNING_WAIT = 3.0
PASSWORD_ONLY = ("pwd",)  # RFC 8176 `amr` of a password sign-in


@dataclass(frozen=True, slots=True)
class IssuedPair:
    access_token: str
    refresh_token: str
    expires_in: int
    refresh_expires_in: int
    user: User | UserView
    session_id: str


class SessionService:
    """Every way a session begins, moves on, or ends."""

    def __init__(
        self,
        settings: Settings,
        tokens: TokenService,
        revocations: RevocationList,
        audit: AuditLog,
        clock: Clock,
        limiter: RateLimiter,
        metrics: Metrics,
    ) -> None:
        self._limiter = limiter
        self._metrics = metrics
        self._tokens = tokens
        self._revocations = revocations
        self._audit = audit
        self._clock = clock
        self._refresh_ttl = settings.refresh_token_ttl
        self._max_age = settings.session_max_age
        self._grace = settings.refresh_reuse_grace

    async def start(
        self,
        user: User,
        *,
        device: str | None,
        client: ClientInfo,
        using_db: BaseDBAsyncClient | None = None,
        amr: tuple[str, ...] = PASSWORD_ONLY,
        passkey_id: object = None,
    ) -> IssuedPair:
        """A new session for a user who just proved their password (and, per `amr`, more), or
        signed in with the passkey `passkey_id`."""
        iat = int(self._clock())
        jti = new_jti()
        max_exp = iat + self._max_age
        exp = min(iat + self._refresh_ttl, max_exp)
        session = await Session.create(
            id=uuid.uuid4(),
            user=user,
            device=device[:200] if device else None,
            user_agent=client.stored_user_agent,
            ip=client.ip,
            created_at=to_datetime(iat),
            last_used_at=to_datetime(iat),
            expires_at=to_datetime(exp),
            max_expires_at=to_datetime(max_exp),
            auth_time=iat,
            current_jti_hash=hash_jti(jti),
            latest_access_iat=iat,
            amr=list(amr),
            passkey_id=passkey_id,
            using_db=using_db,
        )
        return await self._pair(user, session, jti, iat, exp)

    async def _pair(
        self, user: User | UserView, session: Session | SessionCut, jti: str, iat: int, exp: int
    ) -> IssuedPair:
        """Sign the pair; never inside a transaction (it may wait up to a second)."""
        sid = str(session.id)
        # Tokens issued after an access cut-off must carry an `iat` at or past it; the cut-off
        # is the next whole second, so wait for it: a token we hand out must be valid at once,
        # for every verifier, JWT_LEEWAY=0 included.
        access_iat = max(iat, session.access_not_before)
        early = access_iat - self._clock()
        if early > MAX_SIGNING_WAIT:  # many cut-offs in a row: come back in a moment
            raise ServiceUnavailableError("This session was just changed; retry in a moment.")
        if early > 0:
            await asyncio.sleep(early)
        access, access_exp = self._tokens.issue_access(
            sub=str(user.id),
            sid=sid,
            roles=user.roles,
            auth_time=session.auth_time,
            iat=access_iat,
            amr=session.amr or PASSWORD_ONLY,  # kept on the session row: a refresh keeps it
        )
        refresh = self._tokens.issue_refresh(sub=str(user.id), sid=sid, jti=jti, iat=iat, exp=exp)
        return IssuedPair(
            access_token=access,
            refresh_token=refresh,
            expires_in=access_exp - iat,
            refresh_expires_in=exp - iat,
            user=user,
            session_id=sid,
        )

    async def rotate(self, refresh_token: str, client: ClientInfo) -> IssuedPair:
        """Spend a refresh token and issue the next pair of its session."""
        await self._limiter.hit_ip(client.ip)
        try:
            claims = self._tokens.verify_refresh(refresh_token)
        except TokenExpiredError as exc:
            raise SessionExpiredError() from exc
        key = parse_id(claims.sid)
        # Fixed SQL (api/db/rotation.py): a fleet refreshes all day; same statements, same
        # order and locks as through the ORM, without building them or a model per row.
        session = None if key is None else await refresh_state(key)
        if session is None or str(session.user_id) != claims.sub:
            raise InvalidTokenError()
        if session.ended_at is not None or not session.user_active:
            raise TokenRevokedError()
        now = self._clock()
        if now >= session.max_expires_at.timestamp() or now >= session.expires_at.timestamp():
            await self.end([session.id], reason="expired", client=client)
            raise SessionExpiredError()

        presented = hash_jti(claims.jti)
        if presented == session.current_jti_hash:
            pair = await self._swap(session, presented, now, client)
            if pair is not None:
                return pair
            session = await self._reread(session)
            if session.ended_at is not None and session.current_jti_hash == presented:
                # Ended meanwhile (a sign-out, a removed passkey), its token not spent by
                # another refresh: revoked, not a reuse (that would raise a theft alarm).
                raise TokenRevokedError()
        if self._within_grace(session, presented, now):
            # A client that lost the response retries the spent token: it gets the next
            # pair of the same session, which spends whatever the first answer carried.
            for _ in range(3):
                pair = await self._swap(session, session.current_jti_hash, now, client)
                if pair is not None:
                    return pair
                session = await self._reread(session)
        await self.end([session.id], reason="reuse", client=client, kind="refresh_reuse_detected")
        self._metrics.refresh_reuse.inc()
        raise RefreshTokenReusedError()

    @staticmethod
    async def _reread(session: RefreshState) -> RefreshState:
        again = await refresh_state(session.id)
        if again is None:  # deleted meanwhile (its account was)
            raise TokenRevokedError()
        return again

    def _within_grace(self, session: RefreshState, presented: str, now: float) -> bool:
        return (
            self._grace > 0
            and session.ended_at is None
            and session.previous_jti_hash == presented
            and session.rotated_at is not None
            and now - session.rotated_at.timestamp() <= self._grace
        )

    async def _swap(
        self, session: RefreshState, expected_hash: str, now: float, client: ClientInfo
    ) -> IssuedPair | None:
        """Compare-and-set the session's current jti hash; None when another request won.

        The user's row is locked first (the order every account change takes: user row, then
        sessions), then the roles and active flag are read inside the transaction: a demotion
        or deactivation that commits first is what the new token carries; one that commits
        later finds this session and cuts or ends it."""
        iat = int(now)
        jti = new_jti()
        exp = min(iat + self._refresh_ttl, int(session.max_expires_at.timestamp()))
        at = to_datetime(now)
        async with atomic() as conn:  # the rotation and its audit event commit together
            user = await lock_user(conn, session.user_id)
            if user is None or not user.is_active:
                raise TokenRevokedError()
            # Cut-offs need the user row's lock too: what is read here holds until commit.
            current = await session_cut(conn, session.id)
            if current is None:
                raise TokenRevokedError()
            access_iat = max(iat, current.access_not_before)
            if access_iat - now > MAX_SIGNING_WAIT:  # refused before the token is spent
                raise ServiceUnavailableError("This session was just changed; retry in a moment.")
            # Compare-and-set: of concurrent refreshes with one token, exactly one matches.
            won = await swap(
                conn,
                session.id,
                expected_hash=expected_hash,
                new_hash=hash_jti(jti),
                at=at,
                expires_at=to_datetime(exp),
                latest_access_iat=max(current.latest_access_iat, access_iat),
            )
            if not won:
                return None
            await record_refresh(conn, session.user_id, client.ip, at)
        self._metrics.refreshes.inc()
        return await self._pair(user, current, jti, iat, exp)

    async def end(
        self,
        sids: Sequence[uuid.UUID | str],
        *,
        reason: str,
        client: ClientInfo,
        kind: str | None = None,
        user_id: object = None,
        using_db: BaseDBAsyncClient | None = None,
    ) -> int:
        """End sessions (idempotent); their access tokens are refused from the next request."""
        if not sids and kind is None:
            return 0
        now = to_datetime(self._clock())
        async with atomic() if using_db is None else _nested(using_db) as conn:
            rows = (
                await Session.filter(id__in=list(sids), ended_at__isnull=True)
                .using_db(conn)
                .values_list("id", "user_id")
            )
            if rows:
                await (
                    Session.filter(id__in=[sid for sid, _ in rows])
                    .using_db(conn)
                    .update(ended_at=now, end_reason=reason)
                )
            if kind is not None:
                owner = user_id if user_id is not None else (rows[0][1] if rows else None)
                await self._audit.record(kind, user_id=owner, ip=client.ip, using_db=conn)
        ended = [str(sid) for sid, _ in rows]
        if ended:
            await after_commit(lambda: self._announce(ended, ENDED, reason))
        return len(rows)

    async def _announce(self, sids: list[str], not_before: int, reason: str | None) -> None:
        """After the commit: every worker refuses these sessions' tokens from now on."""
        await self._revocations.announce(sids, not_before)
        if reason is not None:
            self._metrics.revocations.labels(reason=reason).inc(len(sids))

    async def end_all(
        self,
        user_id: object,
        *,
        reason: str,
        client: ClientInfo,
        keep: str | None = None,
        kind: str | None = None,
        using_db: BaseDBAsyncClient | None = None,
    ) -> int:
        """End every live session of a user, except `keep`; returns how many ended.

        With `kind`, an audit event of that kind commits with the ended sessions."""
        query = Session.filter(user_id=user_id, ended_at__isnull=True)
        if keep is not None:
            query = query.exclude(id=parse_id(keep))
        sids = await query.using_db(using_db).values_list("id", flat=True)
        return await self.end(
            list(sids),  # type: ignore[arg-type]
            reason=reason,
            client=client,
            kind=kind,
            user_id=user_id,
            using_db=using_db,
        )

    async def renew(
        self, user: User, sid: str, *, using_db: BaseDBAsyncClient
    ) -> Callable[[], Awaitable[IssuedPair]]:
        """After a password change: the same session continues with a fresh pair only.

        Its earlier refresh token is spent and its earlier access tokens are cut off. Runs in
        the caller's transaction; returns the signing step, to await once it has committed.
        Only the changed columns are written, and only while the session is live: a
        revocation that committed first stays (TOKEN_REVOKED, and the caller rolls back)."""
        iat = int(self._clock())
        jti = new_jti()
        key = parse_id(sid)
        session = None if key is None else await Session.get_or_none(id=key, using_db=using_db)
        if session is None or session.ended_at is not None:
            raise TokenRevokedError()
        exp = min(iat + self._refresh_ttl, int(session.max_expires_at.timestamp()))
        not_before = _next_cut(session.access_not_before, session.latest_access_iat, iat)
        changes = {
            "current_jti_hash": hash_jti(jti),
            "previous_jti_hash": None,
            "access_not_before": not_before,
            "latest_access_iat": max(session.latest_access_iat, not_before),
            "auth_time": iat,
            "last_used_at": to_datetime(iat),
            "expires_at": to_datetime(exp),
        }
        updated = (
            await Session.filter(id=key, ended_at__isnull=True).using_db(using_db).update(**changes)
        )
        if not updated:  # (SQLite's count includes the revocation feed trigger's row)
            raise TokenRevokedError()
        session.update_from_dict(changes)
        await after_commit(lambda: self._announce([sid], not_before, None))
        return lambda: self._pair(user, session, jti, iat, exp)

    async def cut_access(self, user_id: object, *, using_db: BaseDBAsyncClient) -> None:
        """Refuse the user's current access tokens; their sessions may refresh to new ones.

        Runs in the caller's transaction, after it locked the user's row (so no rotation of
        these sessions is half-way: it waits for this change, or finished before it)."""
        now = int(self._clock())
        live = Session.filter(user_id=user_id, ended_at__isnull=True).using_db(using_db)
        cuts: dict[int, list[str]] = {}
        rows = await live.values_list("id", "access_not_before", "latest_access_iat")
        for sid, previous, latest in rows:
            cuts.setdefault(_next_cut(previous, latest, now), []).append(str(sid))
        for not_before, sids in cuts.items():
            await (
                Session.filter(id__in=sids).using_db(using_db).update(access_not_before=not_before)
            )
        for not_before, sids in cuts.items():
            await after_commit(functools.partial(self._announce, sids, not_before, None))

    async def lock_caller(
        self, claims: AccessClaims, conn: BaseDBAsyncClient, proved_hash: str | None = None
    ) -> User:
        """Lock the signed-in caller's user row and check, under that lock, that what
        authorised the request still holds: the account is active, the token's session is
        live and its access tokens not cut off since this one was issued, and (with
        `proved_hash`) the password checked for this request is still the account's.

        The bearer check ran when the request arrived; a reset, a password change or a
        deactivation may have committed since. Whatever commits first wins, never a mix."""
        user = await locked(User, claims.sub, conn)
        if user is None or not user.is_active:
            raise TokenRevokedError()
        live = (
            await Session.filter(id=claims.sid, user_id=user.id, ended_at__isnull=True)
            .filter(access_not_before__lte=claims.iat)
            .using_db(conn)
            .exists()
        )
        if not live:
            raise TokenRevokedError()
        if proved_hash is not None and user.password_hash != proved_hash:
            raise InvalidCredentialsError("The password is wrong.")
        return user

    async def revoke_own(self, caller: AccessClaims, sid: str, client: ClientInfo) -> bool:
        """revokeSession: end one of the caller's own live sessions; False for any other id.
        The caller is re-checked under lock (a session ended meanwhile revokes nothing)."""
        key = parse_id(sid)
        async with atomic() as conn:
            user = await self.lock_caller(caller, conn)
            if (
                key is None
                or not await Session.filter(id=key, user_id=user.id, ended_at__isnull=True)
                .using_db(conn)
                .exists()
            ):
                return False
            await self.end(
                [key],
                reason="revoked",
                client=client,
                kind="session_revoked",
                user_id=user.id,
                using_db=conn,
            )
        return True

    async def live(self, user_id: object) -> list[Session]:
        """The user's sessions that can still be refreshed, newest first."""
        now = to_datetime(self._clock())
        return (
            await Session.filter(user_id=user_id, ended_at__isnull=True, expires_at__gt=now)
            .filter(max_expires_at__gt=now)
            .order_by("-created_at")
        )

    async def prune(self) -> int:
        """Delete sessions that ended or expired long enough ago that no token of theirs lives."""
        horizon = to_datetime(self._clock() - self._tokens.access_ttl - 120)
        ended = await Session.filter(ended_at__lt=horizon).delete()
        expired = await Session.filter(expires_at__lt=horizon).delete()
        return ended + expired


@contextlib.asynccontextmanager
async def _nested(conn: BaseDBAsyncClient) -> AsyncIterator[BaseDBAsyncClient]:
    """Run inside the caller's transaction."""
    yield conn


def _next_cut(previous: int, latest_iat: int, now: int) -> int:
    """The cut-off that refuses every access token issued so far: past the newest one's
    `iat` and past the clock (a token issued earlier this second has `iat == now`), and never
    below the previous cut-off. Cut-offs in a row with no token issued between them stay at
    `now + 1`: nothing piles up for the next token to wait for."""
    return max(previous, latest_iat + 1, now + 1)


__all__ = ["ENDED", "IssuedPair", "SessionService"]
