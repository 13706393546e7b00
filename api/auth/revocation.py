"""Access-token revocation: an in-process map keyed by session id, checked on every request.

An entry says "access tokens of this session issued before second N are refused" (ended
sessions: every token). Entries live until such tokens would have expired anyway, so the
map stays small and the check costs one dict lookup.

The database is the record (sessions.ended_at / access_not_before). Every worker loads it
at start and follows the `revocations` feed each second. With Redis, a revocation is also
published at once to every worker (RedisRevocationFeed); while Redis is unreachable, each
check reads the session row instead (correct, slower) until the feed is back.

Why a feed table, read in commit order: `ended_at` comes from the app clock before the
transaction commits, so polling `ended_at >= last poll - 1 s` missed, for good, any change
whose commit took longer than the overlap (no overlap is provably long enough: PostgreSQL 15
has no transaction timeout). A trigger on `sessions` (migration 0004) appends one row per
change that refuses tokens, inside the transaction that makes it, whatever code path runs
the UPDATE. Workers read it by a cursor that only moves past committed work:
- SQLite lets one writer at a time hold the write lock from its first write to its commit,
  so ids are handed out in commit order: read `id > last id seen`.
- PostgreSQL hands ids out before commit, in any order, so each row carries its writing
  transaction's id (pg_current_xact_id). A read also returns its own snapshot's xmin, the
  oldest transaction still running; the next read takes `xact_id >= that xmin`, so a
  transaction open at one read is read again at every later one until it has committed.
Rows are deleted only once they committed RETENTION ago (a commit-ordered mark again), by
which time every token they refuse has expired.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import deque
from collections.abc import AsyncIterator, Iterable

from redis.asyncio import Redis
from redis.exceptions import RedisError
from tortoise.connection import get_connection

from api.clock import Clock, to_datetime
from api.db.connection import is_unavailable
from api.db.models import Session
from api.errors import ServiceUnavailableError
from api.infra.logs import ModeLog
from api.infra.pubsub import follow_channel, publish, redis_options
from api.infra.tasks import cancel_all

log = logging.getLogger(__name__)

ENDED = 2**62  # "not before" for an ended session: no token of it is ever accepted again
PRUNE_EVERY = 60.0  # seconds between two marks that may later bound a deletion of the feed
RETENTION_MARGIN = 60.0  # seconds a feed row is kept past the last token it can refuse

# The mark comes from the snapshot this very statement reads with (pg_current_snapshot).
_READ_POSTGRES = (
    "SELECT m.mark, r.sid, r.not_before"
    " FROM (SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint AS mark) AS m"
    " LEFT JOIN revocations AS r ON r.xact_id >= $1"
)
_READ_SQLITE = "SELECT id AS mark, sid, not_before FROM revocations WHERE id > ? ORDER BY id"
_PRUNE_POSTGRES = "DELETE FROM revocations WHERE xact_id < $1"
_PRUNE_SQLITE = "DELETE FROM revocations WHERE id <= ?"


class RevocationList:
    """sid -> first `iat` still accepted, kept until the affected tokens expire."""

    def __init__(self, clock: Clock, access_ttl: int, leeway: int) -> None:
        self._clock = clock
        self._horizon = access_ttl + leeway  # after this, an affected token is expired anyway
        self._not_before: dict[str, int] = {}
        self._expires: dict[str, float] = {}
        # Where the next feed read starts: SQLite the last id read, PostgreSQL an xmin.
        self._cursor = 0
        # (when, cursor then): every feed row below that cursor had committed by then.
        self._marks: deque[tuple[float, int]] = deque()

        self.feed: RedisRevocationFeed | None = None

    @property
    def needs_database(self) -> bool:
        """True while revocations made by other workers may be unknown here."""
        return self.feed is not None and not self.feed.healthy

    def is_revoked(self, sid: str, iat: int) -> bool:
        not_before = self._not_before.get(sid)
        return not_before is not None and iat < not_before

    async def is_revoked_in_database(self, sid: str, iat: int) -> bool:
        """The session row decides; SERVICE_UNAVAILABLE when the database cannot say."""
        try:
            row = await Session.filter(id=sid).values_list("ended_at", "access_not_before")
        except Exception as exc:
            if is_unavailable(exc):  # fail closed: no answer is not "not revoked"
                raise ServiceUnavailableError() from exc
            raise
        if not row:
            return True
        ended_at, not_before = row[0]
        return ended_at is not None or iat < not_before

    async def announce(self, sids: Iterable[str], not_before: int = ENDED) -> None:
        """Record revocations made here, and tell every other worker."""
        sids = list(sids)
        if not sids:
            return
        self.revoke(sids, not_before)
        if self.feed is not None:
            await self.feed.publish(sids, not_before)

    def revoke(self, sids: Iterable[str], not_before: int = ENDED) -> None:
        """Record revocations made here or learned from elsewhere."""
        until = self._clock() + self._horizon
        for sid in sids:
            if not_before > self._not_before.get(sid, 0):
                self._not_before[sid] = not_before
            self._expires[sid] = until

    def prune(self) -> None:
        now = self._clock()
        for sid in [sid for sid, until in self._expires.items() if until < now]:
            del self._expires[sid]
            del self._not_before[sid]

    def __len__(self) -> int:
        return len(self._not_before)

    async def load(self) -> None:
        """At start: every revocation whose tokens may still be alive."""
        self._cursor = 0
        await self.follow()  # the whole feed: it holds no row older than it needs
        # Revocations made before the feed existed (migration 0004) are only in `sessions`.
        since = self._clock() - self._horizon
        ended = Session.filter(ended_at__gte=to_datetime(since)).values_list("id", flat=True)
        changed = Session.filter(access_not_before__gte=int(since)).values_list(
            "id", "access_not_before"
        )
        self.revoke(str(sid) for sid in await ended)
        for sid, not_before in await changed:
            self.revoke([str(sid)], not_before)

    async def follow(self) -> None:
        """Apply the revocations committed since the last read, in commit order."""
        conn = get_connection("default")
        postgres = conn.capabilities.dialect == "postgres"
        rows = await conn.execute_query_dict(
            _READ_POSTGRES if postgres else _READ_SQLITE, [self._cursor]
        )
        for row in rows:
            if row["sid"] is not None:  # PostgreSQL: the mark comes alone when nothing is new
                self.revoke([str(row["sid"])], int(row["not_before"]))
        if rows:
            self._cursor = int(rows[-1]["mark"])
        await self._prune_feed(postgres)

    async def _prune_feed(self, postgres: bool) -> None:
        """Delete feed rows that committed RETENTION ago: every token they refuse has expired."""
        now = self._clock()
        if not self._marks or now - self._marks[-1][0] >= PRUNE_EVERY:
            self._marks.append((now, self._cursor))
        below = None
        while self._marks and self._marks[0][0] <= now - self._horizon - RETENTION_MARGIN:
            below = self._marks.popleft()[1]
        if below is not None:
            conn = get_connection("default")
            await conn.execute_query(_PRUNE_POSTGRES if postgres else _PRUNE_SQLITE, [below])

    async def poll_forever(self, interval: float) -> None:
        """Follow revocations made by other worker processes (without Redis)."""
        failing = False
        while True:
            await asyncio.sleep(interval)
            try:
                await self.follow()
                if failing:
                    failing = False
                    log.info("revocation poll: the database answers again")
            except Exception as exc:  # the database may be away; keep the last good state
                if not failing:  # once per outage, not once a second
                    failing = True
                    log.warning(
                        "revocation poll failed (%r); retrying every %s s",
                        exc,
                        interval,
                        exc_info=not is_unavailable(exc),
                    )
            self.prune()

    @contextlib.asynccontextmanager
    async def running(self, redis_url: str | None, interval: float = 1.0) -> AsyncIterator[None]:
        """Load, then follow other workers' revocations (database poll, and Redis if set)."""
        await self.load()
        tasks = [asyncio.create_task(self.poll_forever(interval))]
        if redis_url:
            self.feed = RedisRevocationFeed(redis_url, self)
            tasks.append(asyncio.create_task(self.feed.follow()))
        try:
            yield
        finally:
            await cancel_all(tasks)
            if self.feed is not None:
                await self.feed.close()
                self.feed = None


class RedisRevocationFeed:
    """Publishes revocations to every worker over Redis pub/sub and applies theirs here."""

    CHANNEL = "graphgate:revocations"

    def __init__(self, url: str, revocations: RevocationList) -> None:
        self._revocations = revocations
        self._redis = Redis.from_url(url, **redis_options(socket_timeout=1))
        self.healthy = False  # until subscribed: checks read the database meanwhile
        self._mode = ModeLog(
            log,
            "revocation feed: Redis connected; checks use memory",
            "revocation feed: Redis unreachable; checks read the database",
        )

    def _set_health(self, healthy: bool) -> None:
        self.healthy = healthy
        self._mode.note(healthy)

    async def ping(self) -> None:
        """Raise if Redis does not answer within a second (for /readyz)."""
        async with asyncio.timeout(1.0):
            await self._redis.ping()

    async def publish(self, sids: list[str], not_before: int) -> None:
        try:
            await publish(self._redis, self.CHANNEL, json.dumps([sids, not_before]))
        except (RedisError, OSError):
            self._set_health(False)  # the others read the database until the feed is back

    async def follow(self) -> None:
        async def subscribed() -> None:
            # Anything revoked while we were away is in the database: catch up first.
            await self._catch_up()
            self._set_health(True)

        await follow_channel(
            self._redis, self.CHANNEL, self._apply, subscribed, lambda: self._set_health(False)
        )

    async def _catch_up(self) -> None:
        """Load revocations from the database, retrying each second while it is away."""
        failing = False
        while True:
            try:
                await self._revocations.load()
                return
            except Exception as exc:
                if not failing:  # once per outage
                    failing = True
                    log.warning(
                        "revocation feed: cannot catch up from the database (%r); retrying",
                        exc,
                        exc_info=not is_unavailable(exc),
                    )
                await asyncio.sleep(1)

    def _apply(self, data: bytes) -> None:
        try:
            sids, not_before = json.loads(data)
            self._revocations.revoke([str(sid) for sid in sids], int(not_before))
        except (ValueError, TypeError):
            log.warning("revocation feed: ignored a malformed message")

    async def close(self) -> None:
        await self._redis.aclose()
