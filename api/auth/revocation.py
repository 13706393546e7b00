"""Access-token revocation: an in-process map keyed by session id, checked on every request.

An entry says "access tokens of this session issued before second N are refused" (ended
sessions: every token). Entries live until such tokens would have expired anyway, so the
map stays small and the check costs one dict lookup.

The database is the record (sessions.ended_at / access_not_before). Every worker loads it
at start and polls it each second. With Redis, a revocation is also published at once to
every worker (RedisRevocationFeed); while Redis is unreachable, each check reads the
session row instead (correct, slower) until the feed is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Iterable

from redis.asyncio import Redis
from redis.exceptions import RedisError

from api.clock import Clock, to_datetime
from api.db import is_unavailable
from api.errors import ServiceUnavailableError
from api.models import Session
from api.pubsub import cancel_all, follow_channel

log = logging.getLogger(__name__)

ENDED = 2**62  # "not before" for an ended session: no token of it is ever accepted again


class RevocationList:
    """sid -> first `iat` still accepted, kept until the affected tokens expire."""

    def __init__(self, clock: Clock, access_ttl: int, leeway: int) -> None:
        self._clock = clock
        self._horizon = access_ttl + leeway  # after this, an affected token is expired anyway
        self._not_before: dict[str, int] = {}
        self._expires: dict[str, float] = {}
        self._polled_at = 0.0

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

    async def load_since(self, since: float) -> None:
        """Pick up revocations recorded in the database since `since` (epoch seconds)."""
        ended = Session.filter(ended_at__gte=to_datetime(since)).values_list("id", flat=True)
        changed = Session.filter(access_not_before__gte=int(since)).values_list(
            "id", "access_not_before"
        )
        self.revoke(str(sid) for sid in await ended)
        for sid, not_before in await changed:
            self.revoke([str(sid)], not_before)

    async def load(self) -> None:
        """At start: every revocation whose tokens may still be alive."""
        self._polled_at = self._clock()
        await self.load_since(self._polled_at - self._horizon)

    async def poll_forever(self, interval: float) -> None:
        """Follow revocations made by other worker processes (without Redis)."""
        failing = False
        while True:
            await asyncio.sleep(interval)
            started = self._clock()
            try:
                await self.load_since(self._polled_at - 1)  # 1 s overlap: clocks tick in seconds
                self._polled_at = started
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
        self._redis = Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
        self.healthy = False  # until subscribed: checks read the database meanwhile
        self._logged: bool | None = None  # the mode last logged: each change is logged once

    def _set_health(self, healthy: bool) -> None:
        self.healthy = healthy
        if healthy != self._logged:
            self._logged = healthy
            if healthy:
                log.info("revocation feed: Redis connected; checks use memory")
            else:
                log.warning("revocation feed: Redis unreachable; checks read the database")

    async def ping(self) -> None:
        """Raise if Redis does not answer within a second (for /readyz)."""
        async with asyncio.timeout(1.0):
            await self._redis.ping()

    async def publish(self, sids: list[str], not_before: int) -> None:
        try:
            await self._redis.publish(self.CHANNEL, json.dumps([sids, not_before]))
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
