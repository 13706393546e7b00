"""The automatic-persisted-queries store: SHA-256 hex digest -> document text.

In this process, bounded in entries and in bytes (least recently used out first); shared
with every worker and replica through Redis when REDIS_URL is set, each key expiring after
REDIS_TTL. What Redis returns is read up to `max_text_bytes` + 1 bytes only and served only
under its own SHA-256: another writer to the same Redis cannot make a hash run another text,
nor make a worker read a huge value. While Redis does not answer, the local store alone serves, and the change is
logged once (ModeLog), not per request; Redis is tried again a second later.
"""

from __future__ import annotations

import hashlib
import logging
import sys
import time
from collections import OrderedDict

from redis.asyncio import Redis
from redis.exceptions import RedisError

from api.infra.logs import ModeLog

log = logging.getLogger(__name__)

MAX_ENTRIES = 10_000  # documents kept in this process
MAX_BYTES = 16 * 1024 * 1024  # their texts' memory (sys.getsizeof), all entries together
MAX_TEXT_BYTES = 65_536  # one text read from Redis (the app passes MAX_QUERY_BYTES)
REDIS_PREFIX = "graphgate:apq:"
REDIS_TTL = 7 * 24 * 3600  # a document unused for a week is dropped from Redis
REDIS_RETRY_INTERVAL = 1.0  # seconds between tries of an unreachable Redis


class PersistedQueryStore:
    """Texts by digest. The caller checks digest and text (length, hash, validation) first:
    nothing here parses, and only texts it was given are ever returned."""

    def __init__(
        self,
        redis_url: str | None = None,
        *,
        max_entries: int = MAX_ENTRIES,
        max_bytes: int = MAX_BYTES,
        max_text_bytes: int = MAX_TEXT_BYTES,
    ) -> None:
        self._local: OrderedDict[str, str] = OrderedDict()
        self._max_entries = max_entries
        self._max_bytes = max_bytes
        self._max_text_bytes = max_text_bytes
        self.bytes = 0
        self._redis = (
            Redis.from_url(redis_url, socket_connect_timeout=1, socket_timeout=1)
            if redis_url
            else None
        )
        self._retry_redis_at = 0.0
        self._mode = ModeLog(
            log,
            "persisted queries: Redis is back; sharing documents there again",
            "persisted queries: Redis unreachable; using this process's store meanwhile",
            last=True,
        )

    def __len__(self) -> int:
        return len(self._local)

    def _remember(self, digest: str, text: str) -> None:
        if digest in self._local:
            self._local.move_to_end(digest)
            return
        size = sys.getsizeof(text)
        if size > self._max_bytes:
            return
        self._local[digest] = text
        self.bytes += size
        while len(self._local) > self._max_entries or self.bytes > self._max_bytes:
            _, dropped = self._local.popitem(last=False)
            self.bytes -= sys.getsizeof(dropped)

    def _redis_usable(self) -> Redis | None:
        if self._redis is None or time.monotonic() < self._retry_redis_at:
            return None
        return self._redis

    def _redis_failed(self) -> None:
        self._retry_redis_at = time.monotonic() + REDIS_RETRY_INTERVAL
        self._mode.note(False)

    async def get(self, digest: str) -> str | None:
        """The text stored under `digest`: this process's copy, else Redis's."""
        text = self._local.get(digest)
        if text is not None:
            self._local.move_to_end(digest)
            return text
        redis = self._redis_usable()
        if redis is None:
            return None
        try:
            # At most one byte over the budget: enough to tell the value is too long.
            raw = await redis.getrange(REDIS_PREFIX + digest, 0, self._max_text_bytes)
        except (RedisError, OSError):
            self._redis_failed()
            return None
        self._mode.note(True)
        if not isinstance(raw, bytes) or not raw or len(raw) > self._max_text_bytes:
            return None  # missing (GETRANGE answers b""), or over the budget
        if hashlib.sha256(raw).hexdigest() != digest:
            return None  # not what was registered under this digest: never served
        try:
            text = raw.decode("utf-8", "surrogatepass")  # as put() encoded it
        except UnicodeDecodeError:
            return None
        self._remember(digest, text)
        return text

    async def put(self, digest: str, text: str) -> None:
        """Keep `text` under `digest`, here and (when configured and answering) in Redis."""
        self._remember(digest, text)
        redis = self._redis_usable()
        if redis is None:
            return
        try:
            await redis.set(
                REDIS_PREFIX + digest, text.encode("utf-8", "surrogatepass"), ex=REDIS_TTL
            )
        except (RedisError, OSError):
            self._redis_failed()
            return
        self._mode.note(True)

    async def close(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()
