"""The APQ store: bounded in this process, shared through Redis, and still serving (and saying
so once) while Redis is away."""

from __future__ import annotations

import hashlib
import logging
import uuid

import pytest
from redis.asyncio import Redis

from api.infra import docstore
from api.infra.docstore import REDIS_PREFIX, PersistedQueryStore
from tests.helpers.env import redis_or_skip
from tests.helpers.live import free_port


def digest(n: int) -> str:
    return f"{n:064x}"


async def test_the_local_store_is_bounded_in_entries() -> None:
    store = PersistedQueryStore(max_entries=3)
    for n in range(5):
        await store.put(digest(n), f"query Q{n} {{ __typename }}")
    assert len(store) == 3
    assert await store.get(digest(0)) is None  # least recently used out first
    assert await store.get(digest(4)) == "query Q4 { __typename }"


async def test_the_local_store_is_bounded_in_bytes() -> None:
    store = PersistedQueryStore(max_bytes=10_000)
    for n in range(10):
        await store.put(digest(n), "x" * 3_000)
    assert store.bytes <= 10_000
    assert len(store) == 3
    await store.put(digest(99), "y" * 20_000)  # larger than the whole budget: not kept
    assert await store.get(digest(99)) is None
    assert store.bytes <= 10_000


async def test_redis_down_falls_back_to_the_local_store_and_says_so_once(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(docstore, "REDIS_RETRY_INTERVAL", 0.0)  # try Redis on every call
    store = PersistedQueryStore(f"redis://127.0.0.1:{free_port()}/0")  # nothing listens
    try:
        with caplog.at_level(logging.INFO, logger="api.infra.docstore"):
            for n in range(5):
                await store.put(digest(n), "query { __typename }")
                assert await store.get(digest(n)) == "query { __typename }"
                assert await store.get(digest(100 + n)) is None
        lines = [r for r in caplog.records if r.name == "api.infra.docstore"]
        assert [(r.levelno, r.getMessage()) for r in lines] == [
            (
                logging.WARNING,
                "persisted queries: Redis unreachable; using this process's store meanwhile",
            )
        ]
    finally:
        await store.close()


async def test_documents_are_shared_through_redis() -> None:
    url = redis_or_skip()
    text = f"query Shared {{ __typename }} # {uuid.uuid4().hex}"  # no other test's key
    key = hashlib.sha256(text.encode()).hexdigest()
    one, other = PersistedQueryStore(url), PersistedQueryStore(url)
    redis = Redis.from_url(url)
    try:
        await one.put(key, text)
        assert await other.get(key) == text
        assert 0 < await redis.ttl(REDIS_PREFIX + key) <= docstore.REDIS_TTL
    finally:
        await redis.delete(REDIS_PREFIX + key)
        await redis.aclose()
        await one.close()
        await other.close()


async def test_a_redis_value_is_served_only_under_its_own_sha256() -> None:
    """Whoever can write to Redis (another app sharing it, a stale or hostile entry) cannot
    make a hash run another text: what Redis returns is checked against the digest."""
    url = redis_or_skip()
    text = f"query Innocent {{ __typename }} # {uuid.uuid4().hex}"
    key = hashlib.sha256(text.encode()).hexdigest()
    store = PersistedQueryStore(url)
    redis = Redis.from_url(url)
    try:
        await redis.set(REDIS_PREFIX + key, "query Evil { me { id } }")
        assert await store.get(key) is None
        assert len(store) == 0  # not kept here either
        await redis.set(REDIS_PREFIX + key, text)
        assert await store.get(key) == text
    finally:
        await redis.delete(REDIS_PREFIX + key)
        await redis.aclose()
        await store.close()


async def test_an_oversized_redis_value_is_not_read_whole() -> None:
    """A value longer than the text budget is refused after reading at most budget + 1 bytes."""
    url = redis_or_skip()
    text = "query Big { __typename }" + " " * 5_000
    key = hashlib.sha256(text.encode()).hexdigest()
    store = PersistedQueryStore(url, max_text_bytes=1_000)
    redis = Redis.from_url(url)
    try:
        await redis.set(REDIS_PREFIX + key, text)
        assert await store.get(key) is None
        assert store.bytes == 0
    finally:
        await redis.delete(REDIS_PREFIX + key)
        await redis.aclose()
        await store.close()
