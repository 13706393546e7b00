"""Live deployments for race tests: `python -m api serve` with N workers on a chosen database,
with or without Redis, and a client that speaks to it over fresh connections.

Built on tests/live.py (`live_server`); `serve` applies the migrations itself before forking,
after the PostgreSQL tables of the previous test are dropped here.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import (
    LOGIN,
    POSTGRES_URL,
    REDIS_URL,
    REFRESH,
    REGISTER,
    _reset_postgres,
    reachable,
)
from tests.live import LiveServer, live_server, post

DATABASES = ("sqlite", "postgres")
LIVE = "{ mySessions { id } }"  # claims-only: answers for any accepted token, active user or not


@dataclass(frozen=True)
class Topology:
    """How many workers serve, and whether they share Redis."""

    workers: int
    redis: bool

    @property
    def id(self) -> str:
        return f"{self.workers}-worker{'s' if self.workers > 1 else ''}" + (
            "-redis" if self.redis else ""
        )


ONE_WORKER = Topology(1, redis=False)
TWO_WORKERS_REDIS = Topology(2, redis=True)


def database_url(kind: str, tmp_path: Path) -> str:
    """The database of one test (`sqlite` or `postgres`); skips when PostgreSQL is away."""
    if kind == "sqlite":
        return f"sqlite://{tmp_path}/race.sqlite3"
    if not reachable(POSTGRES_URL):
        pytest.skip(f"PostgreSQL not reachable at {POSTGRES_URL} (set TEST_POSTGRES_URL)")
    return POSTGRES_URL


def unique_email(name: str = "ada") -> str:
    """A fresh address: rate-limit counters in a shared Redis outlive a test."""
    return f"{name}-{uuid.uuid4().hex[:10]}@example.com"


def code(body: dict[str, Any]) -> str | None:
    errors = body.get("errors") or []
    return errors[0].get("extensions", {}).get("code") if errors else None


@dataclass
class Deployment:
    """A running deployment and an HTTP client for it (a new connection per request, so the
    kernel spreads requests over the workers)."""

    server: LiveServer
    http: aiohttp.ClientSession

    async def gql(
        self,
        query: str,
        variables: dict[str, Any] | None = None,
        token: str | None = None,
        ip: str | None = None,
    ) -> dict[str, Any]:
        """One POST /graphql; `ip` is sent as X-Forwarded-For (honoured with TRUSTED_PROXIES)."""
        headers = {"X-Forwarded-For": ip} if ip else None
        return await post(self.http, self.server.url, query, variables, token, headers)

    async def register(self, email: str, password: str, ip: str | None = None) -> dict[str, Any]:
        body = await self.gql(REGISTER, {"email": email, "password": password}, ip=ip)
        assert "errors" not in body, body
        return body["data"]["register"]  # type: ignore[no-any-return]

    async def login(self, email: str, password: str, ip: str | None = None) -> dict[str, Any]:
        """The whole answer of `login` (data or errors)."""
        return await self.gql(LOGIN, {"email": email, "password": password}, ip=ip)

    async def refresh(self, refresh_token: str) -> dict[str, Any]:
        return await self.gql(REFRESH, {"t": refresh_token})

    async def live(self, access_token: str) -> bool:
        """Whether the server still accepts this access token for anything."""
        return "errors" not in await self.gql(LIVE, token=access_token)

    def create_user(self, email: str, password: str, *roles: str) -> str:
        """A user made as an operator makes one (`create-user`); returns its id."""
        flags = [arg for role in roles for arg in ("--role", role)]
        done = subprocess.run(
            [sys.executable, "-m", "api", "create-user", email, *flags, "--password-stdin"],
            input=f"{password}\n".encode(),
            env=self.server.env,
            cwd=self.server.log_path.parent,
            capture_output=True,
            timeout=60,
            check=True,
        )
        return done.stdout.decode().strip().splitlines()[-1]


@asynccontextmanager
async def deployment(
    tmp_path: Path, database: str, topology: Topology, **env: str
) -> AsyncIterator[Deployment]:
    """Start a deployment on an emptied `database` (`sqlite` or `postgres`); skips, with the
    reason, when PostgreSQL or (for a Redis topology) Redis does not answer."""
    url = database_url(database, tmp_path)
    if topology.redis:
        if not reachable(REDIS_URL):
            pytest.skip(f"Redis not reachable at {REDIS_URL} (set TEST_REDIS_URL)")
        env = {"REDIS_URL": REDIS_URL, **env}
    if url.startswith("postgres"):
        await _reset_postgres(url)
    with live_server(
        tmp_path, "--workers", str(topology.workers), DATABASE_URL=url, **env
    ) as server:
        connector = aiohttp.TCPConnector(force_close=True, limit=0)
        async with aiohttp.ClientSession(connector=connector) as http:
            if topology.redis and topology.workers > 1:
                await asyncio.sleep(1.0)  # every worker subscribed to the revocation feed
            yield Deployment(server, http)
