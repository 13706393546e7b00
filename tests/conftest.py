"""Fixtures: the real app from the real factory, on SQLite and on PostgreSQL.

PostgreSQL tests use TEST_POSTGRES_URL (default: the machine's server, database `test`) and
are skipped, with the reason, when it does not answer. Each test starts from empty tables,
and the tables are dropped at the end of the run.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from api.clock import Clock, FrozenClock, system_clock
from api.db import connection as db
from api.settings import Settings, load_settings
from api.web.app import create_app
from tests.helpers.api import Api, QueryCounter
from tests.helpers.differential import (  # every compiled operation checked against graphql-core
    differential_plans,  # noqa: F401
    pytest_addoption,  # noqa: F401
    pytest_terminal_summary,  # noqa: F401
)
from tests.helpers.env import (
    BASE_ENV,
    POSTGRES_URL,
    PRODUCTION_NEEDS,
    postgres_or_skip,
    reachable,
    reset_postgres,
)


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    if request.param == "sqlite":
        return f"sqlite://{tmp_path}/test.sqlite3"
    return postgres_or_skip()


@pytest.fixture(scope="session", autouse=True)
def _drop_postgres_tables_at_end() -> Any:
    yield
    if reachable(POSTGRES_URL):
        asyncio.run(reset_postgres(POSTGRES_URL))


@pytest.fixture
def make_settings(database_url: str, tmp_path: Any) -> Callable[..., Settings]:
    def make(**overrides: str) -> Settings:
        env = {**BASE_ENV, "DATABASE_URL": database_url, "DATA_DIR": str(tmp_path / "data")}
        env.update(overrides)
        if env["APP_ENV"] == "production":
            env = {**PRODUCTION_NEEDS, **env}
        return load_settings(env, env_file=None)

    return make


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
def start_api(
    aiohttp_client: Callable[..., Awaitable[TestClient[Any, Any]]],
    make_settings: Callable[..., Settings],
) -> Callable[..., Awaitable[Api]]:
    """Start the real app (after migrating a clean database) and return a client for it."""
    migrated: list[str] = []

    async def start(
        settings: Settings | None = None, clock: Clock = system_clock, **overrides: str
    ) -> Api:
        settings = settings or make_settings(**overrides)
        if settings.database_url not in migrated:
            if settings.database_url.startswith("postgres"):
                await reset_postgres(settings.database_url)
            await db.migrate(settings)
            migrated.append(settings.database_url)
        app = create_app(settings, clock=clock)
        return Api(client=await aiohttp_client(app), app=app)

    return start


@pytest.fixture
async def api(start_api: Callable[..., Awaitable[Api]]) -> AsyncIterator[Api]:
    yield await start_api()


@pytest.fixture
def sql() -> Iterator[QueryCounter]:
    """Counts the SQL statements sent while the test runs."""
    logger = logging.getLogger("tortoise.db_client")
    counter, level = QueryCounter(), logger.level
    logger.addHandler(counter)
    logger.setLevel(logging.DEBUG)
    yield counter
    logger.removeHandler(counter)
    logger.setLevel(level)
