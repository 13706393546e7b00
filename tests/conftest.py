"""Fixtures: the real app from the real factory, on SQLite and on PostgreSQL.

PostgreSQL tests use TEST_POSTGRES_URL (default: the machine's server, database `test`) and
are skipped, with the reason, when it does not answer. Each test starts from empty tables,
and the tables are dropped at the end of the run.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from api.clock import Clock, FrozenClock, system_clock
from api.db import connection as db
from api.settings import Settings, load_settings
from api.web.app import create_app

POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
TABLES = (
    "action_tokens",
    "notes",
    "audit_events",
    "revocations",
    "sessions",
    "users",
    "tortoise_migrations",
)


def reachable(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 0), timeout=1):
            return True
    except OSError:
        return False


BASE_ENV = {
    "APP_ENV": "development",
    "JWT_SECRET": "test-access-secret-0123456789-abcdefghijkl",
    "JWT_REFRESH_SECRET": "test-refresh-secret-0123456789-abcdefghij",
    "RATE_LIMIT_PER_EMAIL": "",
    "RATE_LIMIT_PER_IP": "",
}
# What APP_ENV=production refuses to start without (besides the secrets above).
PRODUCTION_NEEDS = {
    "PUBLIC_URL": "http://127.0.0.1:8000",
    "METRICS_TOKEN": "test-metrics-token-0123456789abcdef",
}


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    if request.param == "sqlite":
        return f"sqlite://{tmp_path}/test.sqlite3"
    if not reachable(POSTGRES_URL):
        pytest.skip(f"PostgreSQL not reachable at {POSTGRES_URL} (set TEST_POSTGRES_URL)")
    return POSTGRES_URL


async def _reset_postgres(url: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(url.replace("postgres://", "postgresql://", 1))
    try:
        await conn.execute(f"DROP TABLE IF EXISTS {', '.join(TABLES)} CASCADE")
    finally:
        await conn.close()


@pytest.fixture(scope="session", autouse=True)
def _drop_postgres_tables_at_end() -> Any:
    yield
    if reachable(POSTGRES_URL):
        asyncio.run(_reset_postgres(POSTGRES_URL))


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


@dataclass
class Api:
    """A client of the running app that speaks GraphQL over HTTP like a frontend would."""

    client: TestClient[Any, Any]
    app: web.Application

    async def post(
        self,
        query: str,
        variables: dict[str, Any] | None = None,
        token: str | None = None,
        **headers: str,
    ) -> tuple[int, dict[str, Any], Any]:
        hdrs = {"Content-Type": "application/json", **headers}
        if token is not None:
            hdrs["Authorization"] = f"Bearer {token}"
        body: dict[str, Any] = {"query": query}
        if variables is not None:
            body["variables"] = variables
        resp = await self.client.post("/graphql", json=body, headers=hdrs)
        return resp.status, await resp.json(), resp.headers

    async def gql(
        self, query: str, variables: dict[str, Any] | None = None, token: str | None = None
    ) -> dict[str, Any]:
        status, body, _ = await self.post(query, variables, token)
        assert status == 200, body
        return body

    async def register(
        self, email: str = "ada@example.com", password: str = "correct horse", **extra: Any
    ) -> dict[str, Any]:
        body = await self.gql(REGISTER, {"email": email, "password": password, **extra})
        assert "errors" not in body, body
        return body["data"]["register"]  # type: ignore[no-any-return]

    async def login(
        self, email: str = "ada@example.com", password: str = "correct horse", **extra: Any
    ) -> dict[str, Any]:
        body = await self.gql(LOGIN, {"email": email, "password": password, **extra})
        assert "errors" not in body, body
        return body["data"]["login"]  # type: ignore[no-any-return]

    async def refresh(self, refresh_token: str) -> dict[str, Any]:
        return await self.gql(REFRESH, {"t": refresh_token})


PAIR = "accessToken refreshToken tokenType expiresIn refreshExpiresIn user { id email roles }"
REGISTER = f"""mutation($email: String!, $password: String!, $displayName: String, $device: String) {{
  register(email: $email, password: $password, displayName: $displayName, device: $device) {{ {PAIR} }} }}"""
LOGIN = f"""mutation($email: String!, $password: String!, $device: String) {{
  login(email: $email, password: $password, device: $device) {{ {PAIR} }} }}"""
REFRESH = f"mutation($t: String) {{ refresh(refreshToken: $t) {{ {PAIR} }} }}"
ME = "{ me { id email displayName roles isActive emailVerified createdAt lastLoginAt } }"


def code(body: dict[str, Any]) -> str | None:
    """The contract code of the first error, if any."""
    errors = body.get("errors") or []
    return errors[0].get("extensions", {}).get("code") if errors else None


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
                await _reset_postgres(settings.database_url)
            await db.migrate(settings)
            migrated.append(settings.database_url)
        app = create_app(settings, clock=clock)
        return Api(client=await aiohttp_client(app), app=app)

    return start


@pytest.fixture
async def api(start_api: Callable[..., Awaitable[Api]]) -> AsyncIterator[Api]:
    yield await start_api()


class QueryCounter(logging.Handler):
    """Counts SQL statements Tortoise sends (it logs each one at DEBUG)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.statements: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        # The revocation poll reads `revocations` once a second in the background: not ours.
        if text.lstrip().upper().startswith(("SELECT", "INSERT", "UPDATE", "DELETE")) and (
            '"sessions"' not in text and " sessions " not in text and "revocations" not in text
        ):
            self.statements.append(text)


@pytest.fixture
def sql() -> Iterator[QueryCounter]:
    logger = logging.getLogger("tortoise.db_client")
    counter, level = QueryCounter(), logger.level
    logger.addHandler(counter)
    logger.setLevel(logging.DEBUG)
    yield counter
    logger.removeHandler(counter)
    logger.setLevel(level)
