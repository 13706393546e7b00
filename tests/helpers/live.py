"""Real server processes (`python -m api serve`) for tests that drive the app from outside.

One harness: `LiveServer` is a started process (its URL, log, env and signals); `live_server`
starts one and waits until it is healthy; `deployment` adds a database choice, Redis and a
client. Servers run this checkout's code (PYTHONPATH points here, whatever is installed), with
the test secrets, on a free loopback port, by default on an SQLite file in the test's folder.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from tests.helpers.env import BASE_ENV, ROOT, postgres_or_skip, redis_or_skip, reset_postgres
from tests.helpers.graphql import LOGIN, REFRESH, REGISTER


def free_port() -> int:
    """A loopback port nothing listens on (at the moment of asking)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float, alive: subprocess.Popen[bytes] | None = None) -> None:
    """Until something accepts connections on `port`; fails early if `alive` has exited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            if alive is not None and alive.poll() is not None:
                raise RuntimeError(f"process exited with {alive.returncode}") from None
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {port} after {timeout} s")


async def post(
    session: aiohttp.ClientSession,
    url: str,
    query: str,
    variables: dict[str, Any] | None = None,
    token: str | None = None,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """POST one operation to a live server; asserts a 200 JSON answer and returns its body."""
    headers = {**(headers or {}), **({"Authorization": f"Bearer {token}"} if token else {})}
    body = {"query": query, "variables": variables or {}}
    async with session.post(f"{url}/graphql", json=body, headers=headers) as resp:
        assert resp.status == 200, await resp.text()
        return await resp.json()  # type: ignore[no-any-return]


def server_env(tmp_path: Path, **env: str | None) -> dict[str, str]:
    """The environment of a server or CLI run: test secrets, a data folder and an SQLite file in
    `tmp_path`, no Redis unless given; a None value removes the variable (the app's default)."""
    pythonpath = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    full: dict[str, str | None] = {
        **os.environ,
        **BASE_ENV,
        "DATA_DIR": str(tmp_path / "data"),
        "DATABASE_URL": f"sqlite://{tmp_path}/live.sqlite3",
        "PYTHONPATH": pythonpath,
        "REDIS_URL": None,  # one process needs no shared revocation feed
        **env,
    }
    return {name: value for name, value in full.items() if value is not None}


def run_cli(
    env: dict[str, str], cwd: Path, *args: str, stdin: str = ""
) -> subprocess.CompletedProcess[bytes]:
    """`python -m api ARGS` to completion (raises when it fails)."""
    return subprocess.run(
        [sys.executable, "-m", "api", *args],
        input=stdin.encode(),
        env=env,
        cwd=cwd,
        capture_output=True,
        timeout=60,
        check=True,
    )


class LiveServer:
    """One `python -m api serve` process, its log kept in a file beside the test's data."""

    def __init__(self, env: dict[str, str], cwd: Path, *args: str, port: int = 0) -> None:
        """`port` 0: a free one (a restarted replica passes its old one)."""
        self.env = env
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = cwd / f"server-{self.port}.log"
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "api", "serve", "--port", str(self.port), *args],
                env=env,
                cwd=cwd,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.pid = self.proc.pid

    @property
    def graphql(self) -> str:
        """The URL of the GraphQL endpoint."""
        return f"{self.url}/graphql"

    def wait_ready(self, timeout: float = 30) -> LiveServer:
        """Until /healthz answers (the app has finished its start-up)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log()}")
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=1) as resp:
                    if resp.status == 200:
                        return self
            except OSError:
                time.sleep(0.05)
        raise TimeoutError(f"server did not become healthy:\n{self.log()}")

    def log(self) -> str:
        """Everything the server has written so far."""
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def wait_for_log(self, text: str, timeout: float = 10, count: int = 1) -> None:
        """Until `text` has appeared `count` times in the log."""
        deadline = time.monotonic() + timeout
        while self.log().count(text) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{text!r} not logged ({count}x):\n{self.log()}")
            time.sleep(0.05)

    def gql(
        self, query: str, variables: dict[str, Any] | None = None, token: str | None = None
    ) -> dict[str, Any]:
        """One POST /graphql from outside (blocking: for set-up steps of a test)."""
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        request = urllib.request.Request(self.graphql, data=body, headers=headers)
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())  # type: ignore[no-any-return]

    def terminate(self) -> None:
        """SIGTERM: the graceful shutdown."""
        self.proc.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL, and reap it."""
        self.proc.kill()
        self.proc.wait(timeout=10)

    def wait(self, timeout: float = 30) -> int:
        """Its exit status, once it has exited."""
        return self.proc.wait(timeout=timeout)

    def stop(self) -> None:
        """SIGTERM and wait; SIGKILL if it does not exit in 15 s."""
        if self.proc.poll() is None:
            self.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()


@contextmanager
def live_server(tmp_path: Path, *args: str, **env: str | None) -> Iterator[LiveServer]:
    """Start `python -m api serve [args]` with `env` (see `server_env`), healthy; stop it at the
    end."""
    server = LiveServer(server_env(tmp_path, **env), tmp_path, *args)
    try:
        yield server.wait_ready()
    finally:
        server.stop()


def node_or_skip_reason(*packages: Path) -> str | None:
    """Why a test that runs node cannot run here, or None when it can."""
    if shutil.which("node") is None:
        return "node is not installed (CI installs it; see .ci/setup-node)"
    for folder in packages:
        if not (folder / "node_modules").is_dir():
            rel = folder.relative_to(ROOT)
            return f"npm packages missing: run `npm ci --prefix {rel}` (.ci/setup-node does)"
    return None


# Deployments: N workers on a chosen database, with or without Redis, and a client.

DATABASES = ("sqlite", "postgres")
LIVE = "{ mySessions { id } }"  # claims-only: answers for any accepted token, active user or not


@dataclass(frozen=True)
class Topology:
    """How many workers serve, and whether they share Redis."""

    workers: int
    redis: bool

    @property
    def id(self) -> str:
        """A readable test id (`2-workers-redis`)."""
        return f"{self.workers}-worker{'s' if self.workers > 1 else ''}" + (
            "-redis" if self.redis else ""
        )


ONE_WORKER = Topology(1, redis=False)
TWO_WORKERS_REDIS = Topology(2, redis=True)


def database_url(kind: str, tmp_path: Path) -> str:
    """The database of one test (`sqlite` or `postgres`); skips when PostgreSQL is away."""
    if kind == "sqlite":
        return f"sqlite://{tmp_path}/race.sqlite3"
    return postgres_or_skip()


def unique_email(name: str = "ada") -> str:
    """A fresh address: rate-limit counters in a shared Redis outlive a test."""
    return f"{name}-{uuid.uuid4().hex[:10]}@example.com"


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
        """A new account that must be made: the token pair."""
        body = await self.gql(REGISTER, {"email": email, "password": password}, ip=ip)
        assert "errors" not in body, body
        return body["data"]["register"]  # type: ignore[no-any-return]

    async def login(self, email: str, password: str, ip: str | None = None) -> dict[str, Any]:
        """The whole answer of `login` (data or errors)."""
        return await self.gql(LOGIN, {"email": email, "password": password}, ip=ip)

    async def refresh(self, refresh_token: str) -> dict[str, Any]:
        """The whole answer of `refresh` (data or errors)."""
        return await self.gql(REFRESH, {"t": refresh_token})

    async def live(self, access_token: str) -> bool:
        """Whether the server still accepts this access token for anything."""
        return "errors" not in await self.gql(LIVE, token=access_token)

    def create_user(self, email: str, password: str, *roles: str) -> str:
        """A user made as an operator makes one (`create-user`); returns its id."""
        flags = [arg for role in roles for arg in ("--role", role)]
        args = ("create-user", email, *flags, "--password-stdin")
        done = run_cli(self.server.env, self.server.log_path.parent, *args, stdin=f"{password}\n")
        return done.stdout.decode().strip().splitlines()[-1]


@asynccontextmanager
async def deployment(
    tmp_path: Path, database: str, topology: Topology, **env: str
) -> AsyncIterator[Deployment]:
    """Start a deployment on an emptied `database` (`sqlite` or `postgres`); skips, with the
    reason, when PostgreSQL or (for a Redis topology) Redis does not answer."""
    url = database_url(database, tmp_path)
    if topology.redis:
        env = {"REDIS_URL": redis_or_skip(), **env}
    if url.startswith("postgres"):
        await reset_postgres(url)
    with live_server(
        tmp_path, "--workers", str(topology.workers), DATABASE_URL=url, **env
    ) as server:
        connector = aiohttp.TCPConnector(force_close=True, limit=0)
        async with aiohttp.ClientSession(connector=connector) as http:
            if topology.redis and topology.workers > 1:
                await asyncio.sleep(1.0)  # every worker subscribed to the revocation feed
            yield Deployment(server, http)
