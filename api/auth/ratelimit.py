"""Brute-force limits with the `limits` library: per client IP and per normalised email.

Policy (docs/security.md, Rate limits):
- every call of login, register, refresh and requestPasswordReset, and every password check
  of a signed-in user (changePassword, changeEmail, deleteAccount, fresh sign-in), counts
  against the caller's IP (RATE_LIMIT_PER_IP), inside the resolver, so aliased copies in one
  request each count;
- a second-factor code (verifyMfa, or a code given for a fresh sign-in) is a password check
  here: reserved and counted the same way;
- every *failed* password check counts against the email (RATE_LIMIT_PER_EMAIL), and against
  the pair (email, IP) at the same rate. Past the email's limit the email is refused, even
  with the right password, for as long as failures keep coming within the window - except
  from an IP the account already signed in from (a session there), where only that IP's own
  failures for this email count: an attacker cannot lock the owner out of their usual
  devices, and one who shares the owner's IP (a NAT) gets no more guesses than anyone else;
- a check is *reserved* before the password is verified and given back when it succeeds
  (`password_attempt`): failures in the window plus checks in flight never exceed the limit,
  so N concurrent guesses against a limit of L get at most L verifications.
Memory storage by default (each worker process counts on its own); Redis (shared by every
worker and replica) when REDIS_URL is set, falling back to memory while it is unreachable.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from limits import RateLimitItem, WindowStats, parse
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError

from api.errors import RateLimitedError
from api.infra.logs import ModeLog
from api.infra.pubsub import redis_options
from api.networks import rate_limit_key

log = logging.getLogger(__name__)

T = TypeVar("T")
REDIS_RETRY_INTERVAL = 1.0  # seconds between tries of an unreachable Redis
# A reservation outlives any password check (hash queue wait + hash): a worker that dies
# mid-check gives its reservations back when the counter expires.
RESERVATION_TTL = 60


@dataclass
class PasswordAttempt:
    """One reserved password check; call `failed()` when the password was wrong."""

    is_failure: bool = False

    def failed(self) -> None:
        self.is_failure = True


class RateLimiter:
    """Counts attempts; raises RateLimitedError (with retryAfter) past a limit."""

    def __init__(self, per_email: str, per_ip: str, redis_url: str | None = None) -> None:
        self._per_email: RateLimitItem | None = parse(per_email) if per_email else None
        self._per_ip: RateLimitItem | None = parse(per_ip) if per_ip else None
        self._memory_storage = MemoryStorage()
        self._memory = MovingWindowRateLimiter(self._memory_storage)
        self._redis_storage = (
            RedisStorage(
                f"async+{redis_url}",
                implementation="redispy",
                wrap_exceptions=True,
                **redis_options(socket_timeout=1, retry_once=True),
            )
            if redis_url
            else None
        )
        self._redis = MovingWindowRateLimiter(self._redis_storage) if self._redis_storage else None
        self._mode = ModeLog(
            log,
            "rate limits: Redis is back; counting there again",
            "rate limits: Redis unreachable; counting in this process meanwhile",
            last=True,
        )
        self._retry_redis_at = 0.0

    def _set_redis(self, ok: bool) -> None:
        if not ok:
            # An unreachable Redis may cost a connect timeout per try: try again a second later.
            self._retry_redis_at = time.monotonic() + REDIS_RETRY_INTERVAL
        self._mode.note(ok)

    def _redis_due(self) -> bool:
        return time.monotonic() >= self._retry_redis_at

    async def _on_storage(
        self, act: Callable[[Storage, MovingWindowRateLimiter], Awaitable[T]]
    ) -> tuple[T, Storage, MovingWindowRateLimiter]:
        """Run `act` on Redis while it answers (a second after it failed, try it again),
        else on this process's memory; with the storage and limiter that answered."""
        storage, limiter = self._storage()
        if limiter is self._redis:
            try:
                result = await act(storage, limiter)
                self._set_redis(True)
                return result, storage, limiter
            except StorageError:
                self._set_redis(False)
        storage, limiter = self._memory_storage, self._memory
        return await act(storage, limiter), storage, limiter

    async def _hit(self, item: RateLimitItem, *key: str, refuse: bool = True) -> None:
        """Count one attempt; past the limit raise RateLimitedError (when `refuse`)."""
        allowed, _, limiter = await self._on_storage(lambda _, on: on.hit(item, *key))
        if not allowed and refuse:
            raise RateLimitedError(await self._retry_after(limiter, item, *key))

    async def _exceeded(self, item: RateLimitItem, *key: str) -> int | None:
        """Seconds until the next attempt is allowed, or None when under the limit."""

        async def wait(_: Storage, on: MovingWindowRateLimiter) -> int | None:
            return None if await on.test(item, *key) else await self._retry_after(on, item, *key)

        seconds, _, _ = await self._on_storage(wait)
        return seconds

    @staticmethod
    async def _retry_after(limiter: MovingWindowRateLimiter, item: RateLimitItem, *key: str) -> int:
        stats = await limiter.get_window_stats(item, *key)
        return max(1, math.ceil(stats.reset_time - time.time()))

    async def hit_ip(self, ip: str | None) -> None:
        """Count one call of a public auth mutation from this IP."""
        if self._per_ip is not None:
            await self._hit(self._per_ip, "ip", rate_limit_key(ip))

    @contextlib.asynccontextmanager
    async def password_attempt(
        self, email: str, ip: str | None, owner_ip: Callable[[], Awaitable[bool]]
    ) -> AsyncIterator[PasswordAttempt]:
        """Reserve one password check for this email, or raise RATE_LIMITED.

        Checks in flight count like failures until they end, so concurrent guesses cannot
        all pass a check-then-act test: at most the limit's number of checks ever run.
        The email's own budget is tried first; past it, only from an IP the account signed in
        from (`owner_ip`), the (email, IP) budget. A check that fails is recorded in both
        windows before its reservation is given back: it never stops counting."""
        await self.hit_ip(ip)
        if self._per_email is None:
            yield PasswordAttempt()
            return
        item, where = self._per_email, ip or "unknown"
        held = await self._reserve(item, "login-failed", email)
        if held is None and await owner_ip():
            # The owner's own IP keeps a way in, with its own quota: not an unlimited one.
            held = await self._reserve(item, "login-failed-ip", email, where)
        if held is None:
            wait = await self._exceeded(item, "login-failed", email) or 1
            raise RateLimitedError(wait)
        attempt = PasswordAttempt()
        try:
            yield attempt
        finally:
            if attempt.is_failure:
                await self._hit(item, "login-failed", email, refuse=False)
                await self._hit(item, "login-failed-ip", email, where, refuse=False)
            await self._release(*held)

    async def _reserve(self, item: RateLimitItem, *key: str) -> tuple[Storage, str] | None:
        """Take one in-flight slot beside the failures window `key`; None when full."""
        counter = "inflight/" + item.key_for(*key)

        async def take(storage: Storage, on: MovingWindowRateLimiter) -> tuple[int, WindowStats]:
            return await storage.incr(counter, RESERVATION_TTL), await on.get_window_stats(
                item, *key
            )

        (in_flight, stats), storage, _ = await self._on_storage(take)
        failures = item.amount - stats.remaining
        if failures + in_flight > item.amount:
            await self._release(storage, counter)
            return None
        return storage, counter

    async def _release(self, storage: Storage, counter: str) -> None:
        try:  # incr with -1: the Redis storage has no decr
            if await storage.incr(counter, RESERVATION_TTL, amount=-1) < 0:
                # The counter expired under checks still running: their give-backs must not
                # leave credit that would let later checks through uncounted.
                await storage.clear(counter)
        except StorageError:
            self._set_redis(False)  # the counter expires on its own

    def _storage(self) -> tuple[Storage, MovingWindowRateLimiter]:
        if self._redis is not None and self._redis_storage is not None and self._redis_due():
            return self._redis_storage, self._redis
        return self._memory_storage, self._memory

    async def hit_email(self, email: str, action: str) -> None:
        """Count one call of `action` for an email (e.g. password-reset mails); refuse past it."""
        if self._per_email is not None:
            await self._hit(self._per_email, action, email)
