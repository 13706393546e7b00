"""The APQ store: bounded in this process, shared through Redis, and still serving (and saying
so once) while Redis is away."""

from __future__ import annotations

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
    key = uuid.uuid4().hex + uuid.uuid4().hex  # 64 hex digits no other test uses
    one, other = PersistedQueryStore(url), PersistedQueryStore(url)
    redis = Redis.from_url(url)
    try:
        await one.put(key, "query Shared { __typename }")
        assert await other.get(key) == "query Shared { __typename }"
        assert 0 < await redis.ttl(REDIS_PREFIX + key) <= docstore.REDIS_TTL
    finally:
        await redis.delete(REDIS_PREFIX + key)
        await redis.aclose()
        await one.close()
        await other.close()
