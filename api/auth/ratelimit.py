"""Brute-force limits with the `limits` library: per client IP and per normalised email.

Policy (README, Security):
- every call of login, register, refresh and requestPasswordReset counts against the caller's
  IP (RATE_LIMIT_PER_IP), inside the resolver, so aliased copies in one request each count;
- every *failed* login counts against the email (RATE_LIMIT_PER_EMAIL), and against the pair
  (email, IP) at the same rate. Past the email's limit the email is refused, even with the
  right password, for as long as failures keep coming within the window - except from an IP
  the account already signed in from (a session there), where only that IP's own failures for
  this email count: an attacker cannot lock the owner out of their usual devices, and one who
  shares the owner's IP (a NAT) gets no more guesses than anyone else.
Memory storage by default; Redis (shared by every worker) when REDIS_URL is set, falling back
to memory while Redis is unreachable.
"""

from __future__ import annotations

import logging
import math
import time

from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError

from api.errors import RateLimitedError

log = logging.getLogger(__name__)

REDIS_RETRY_INTERVAL = 1.0  # seconds between tries of an unreachable Redis


class RateLimiter:
    """Counts attempts; raises RateLimitedError (with retryAfter) past a limit."""

    def __init__(self, per_email: str, per_ip: str, redis_url: str | None = None) -> None:
        self._per_email: RateLimitItem | None = parse(per_email) if per_email else None
        self._per_ip: RateLimitItem | None = parse(per_ip) if per_ip else None
        self._memory = MovingWindowRateLimiter(MemoryStorage())
        self._redis = (
            MovingWindowRateLimiter(
                RedisStorage(
                    f"async+{redis_url}",
                    implementation="redispy",
                    wrap_exceptions=True,
                    socket_connect_timeout=1,
                    socket_timeout=1,
                )
            )
            if redis_url
            else None
        )
        self._redis_ok = True
        self._retry_redis_at = 0.0

    def _set_redis(self, ok: bool) -> None:
        if not ok:
            # An unreachable Redis may cost a connect timeout per try: try again a second later.
            self._retry_redis_at = time.monotonic() + REDIS_RETRY_INTERVAL
        if ok != self._redis_ok:
            self._redis_ok = ok
            if ok:
                log.info("rate limits: Redis is back; counting there again")
            else:
                log.warning("rate limits: Redis unreachable; counting in this process meanwhile")

    def _redis_due(self) -> bool:
        return time.monotonic() >= self._retry_redis_at

    async def _hit(self, item: RateLimitItem, *key: str, refuse: bool = True) -> None:
        """Count one attempt; past the limit raise RateLimitedError (when `refuse`)."""
        limiter = self._memory
        if self._redis is not None and self._redis_due():
            try:
                allowed = await self._redis.hit(item, *key)
                self._set_redis(True)
                limiter = self._redis
            except StorageError:
                self._set_redis(False)
                allowed = await self._memory.hit(item, *key)
        else:
            allowed = await self._memory.hit(item, *key)
        if not allowed and refuse:
            raise RateLimitedError(await self._retry_after(limiter, item, *key))

    async def _exceeded(self, item: RateLimitItem, *key: str) -> int | None:
        """Seconds until the next attempt is allowed, or None when under the limit."""
        limiter = self._memory
        if self._redis is not None and self._redis_due():
            try:
                if await self._redis.test(item, *key):
                    self._set_redis(True)
                    return None
                self._set_redis(True)
                return await self._retry_after(self._redis, item, *key)
            except StorageError:
                self._set_redis(False)
        if await limiter.test(item, *key):
            return None
        return await self._retry_after(limiter, item, *key)

    @staticmethod
    async def _retry_after(limiter: MovingWindowRateLimiter, item: RateLimitItem, *key: str) -> int:
        stats = await limiter.get_window_stats(item, *key)
        return max(1, math.ceil(stats.reset_time - time.time()))

    async def hit_ip(self, ip: str | None) -> None:
        """Count one call of a public auth mutation from this IP."""
        if self._per_ip is not None:
            await self._hit(self._per_ip, "ip", ip or "unknown")

    async def email_locked(self, email: str, ip: str | None = None) -> int | None:
        """Seconds to wait if this email (from this IP, when given) is past its failed-login
        limit, else None."""
        if self._per_email is None:
            return None
        key = ("login-failed", email) if ip is None else ("login-failed-ip", email, ip)
        return await self._exceeded(self._per_email, *key)

    async def record_login_failure(self, email: str, ip: str | None) -> None:
        if self._per_email is not None:
            await self._hit(self._per_email, "login-failed", email, refuse=False)
            await self._hit(
                self._per_email, "login-failed-ip", email, ip or "unknown", refuse=False
            )

    async def hit_email(self, email: str, action: str) -> None:
        """Count one call of `action` for an email (e.g. password-reset mails); refuse past it."""
        if self._per_email is not None:
            await self._hit(self._per_email, action, email)
