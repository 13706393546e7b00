"""The replica rig as a fixture: one per run and worker count (1 or 2 per replica), shared by
every test here (starting one costs seconds); a test that restarts parts leaves it whole.

PostgreSQL is the test database (TEST_POSTGRES_URL), emptied first; Redis is a throwaway
redis-server of its own, because pub/sub channels are global to a Redis server
(another run's events would arrive here) and because a test here stops it. Skipped, with the
reason, where HAProxy, PostgreSQL or redis-server is missing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tests.helpers.env import postgres_or_skip, reset_postgres
from tests.helpers.live import server_env
from tests.helpers.replicas import Rig, haproxy_or_skip
from tests.reliability.processes import RedisServer

# Past the proxy's time to notice a replica is not ready (2 checks 500 ms apart), with margin
# for a busy CI machine: the port must not close while the proxy still sends to it.
SHUTDOWN_DELAY = "3"
RIG_ENV = {
    "TRUSTED_PROXIES": "127.0.0.1",  # the proxy reaches the replicas from there; clients never
    "SHUTDOWN_DELAY": SHUTDOWN_DELAY,
    "RATE_LIMIT_PER_EMAIL": "5 per 15 minutes",
    "RATE_LIMIT_PER_IP": "20 per 15 minutes",
    "READY_WITHOUT_REDIS": "true",  # a Redis outage must not empty the rotation (see there)
    "DATABASE_POOL_SIZE": "4",
    # About sharing, not capacity: on a busy CI machine 13 logins at once on one replica would
    # otherwise meet the hash queue's 2 s bound (SERVICE_UNAVAILABLE), which the limits
    # tests would count as neither an answer nor a refusal.
    "PASSWORD_HASH_MAX_WAIT": "30",
    "LOG_FORMAT": "text",
}


def run(coro: Coroutine[Any, Any, None]) -> None:
    """Run `coro` to the end, in a thread of its own (a loop may be running here)."""
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, coro).result()


@pytest.fixture(scope="session")
def rig_redis() -> Iterator[RedisServer]:
    try:
        server = RedisServer()
        server.start()
    except FileNotFoundError as exc:
        pytest.skip(f"throwaway Redis unavailable: {exc}")
    yield server
    server.kill()


@pytest.fixture(
    scope="session",
    params=[1, 2],
    ids=["1-worker-each", "2-workers-each"],
)
def rig(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    rig_redis: RedisServer,
) -> Iterator[Rig]:
    """Two replicas of `param` workers each, behind HAProxy, started and all UP."""
    haproxy = haproxy_or_skip()
    database = postgres_or_skip()
    run(reset_postgres(database))
    root = tmp_path_factory.mktemp("rig")
    env = server_env(root, DATABASE_URL=database, REDIS_URL=rig_redis.url, **RIG_ENV)
    started = Rig(root, env, workers=int(request.param))
    try:
        yield started.start(haproxy)
    finally:
        started.stop()
    run(reset_postgres(database))
