"""Fixtures for failure tests: throwaway PostgreSQL and Redis servers, real server processes.

Skipped, with the reason, where initdb/pg_ctl or redis-server are missing or cannot run.
"""

from __future__ import annotations

import asyncio
import itertools
import subprocess
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import asyncpg
import pytest

from tests.helpers.env import BASE_ENV
from tests.helpers.live import LiveServer
from tests.reliability.processes import PostgresCluster, RedisServer

_databases = itertools.count()


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PostgresCluster]:
    """One private cluster for the run; a test that stops it starts it again."""
    try:
        cluster = PostgresCluster()
        cluster.start()
    except (FileNotFoundError, LookupError) as exc:  # no initdb/runuser, no postgres user
        pytest.skip(f"throwaway PostgreSQL unavailable: {exc}")
    except subprocess.CalledProcessError as exc:
        pytest.skip(f"throwaway PostgreSQL could not start: {exc.stderr!r}")
    yield cluster
    cluster.close()


async def _create_database(url: str, name: str) -> None:
    conn = await asyncpg.connect(url.replace("postgres://", "postgresql://", 1))
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {name}")
        await conn.execute(f"CREATE DATABASE {name}")
    finally:
        await conn.close()


@pytest.fixture
def pg_url(pg_cluster: PostgresCluster) -> str:
    """A fresh, empty database on the private cluster (which is running)."""
    name = f"rel_{next(_databases)}"
    # In a thread of its own: this may be asked for from inside a running event loop.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, _create_database(pg_cluster.url, name)).result()
    return pg_cluster.url.rsplit("/", 1)[0] + f"/{name}"


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    try:
        server = RedisServer()
        server.start()
    except FileNotFoundError as exc:
        pytest.skip(f"throwaway Redis unavailable: {exc}")
    yield server
    server.kill()


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., LiveServer]]:
    """Start `python -m api serve` processes (test secrets, own data folder); stopped at the end."""
    started: list[LiveServer] = []

    def start(*args: str, **env: str) -> LiveServer:
        full = {**BASE_ENV, "DATA_DIR": str(tmp_path / "data"), **env}
        started.append(LiveServer(full, tmp_path, *args))
        return started[-1]

    yield start
    for server in started:
        server.stop()
