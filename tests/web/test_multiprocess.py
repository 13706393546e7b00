"""Real server processes (python -m api serve) sharing one database, with and without Redis."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import (
    BASE_ENV,
    LOGIN,
    ME,
    POSTGRES_URL,
    REDIS_URL,
    REGISTER,
    _reset_postgres,
    reachable,
)
from tests.live import free_port, post

ROOT = Path(__file__).resolve().parent.parent


class Servers:
    def __init__(self, tmp_path: Path, env: dict[str, str]) -> None:
        self.tmp_path = tmp_path
        self.env = {**os.environ, **BASE_ENV, "DATA_DIR": str(tmp_path / "data"), **env}
        # Run this checkout's code, not whatever copy is installed in the environment.
        self.env["PYTHONPATH"] = str(ROOT)
        self.procs: list[subprocess.Popen[bytes]] = []

    def run(self, *args: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [sys.executable, "-m", "api", *args],
            env=self.env,
            cwd=self.tmp_path,
            capture_output=True,
            timeout=60,
            check=True,
        )

    def start(self, *args: str) -> str:
        port = free_port()
        log = open(self.tmp_path / f"server-{port}.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen(
            [sys.executable, "-m", "api", "serve", "--port", str(port), *args],
            env=self.env,
            cwd=self.tmp_path,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.procs.append(proc)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    return url
            except OSError:
                if proc.poll() is not None:
                    raise RuntimeError((self.tmp_path / f"server-{port}.log").read_text()) from None
                time.sleep(0.1)
        raise TimeoutError(f"server on {port} did not start")

    def stop(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[Any]:
    made: list[Servers] = []

    def make(**env: str) -> Servers:
        made.append(Servers(tmp_path, env))
        return made[-1]

    yield make
    for s in made:
        s.stop()


def code(body: dict[str, Any]) -> str | None:
    return (body.get("errors") or [{}])[0].get("extensions", {}).get("code")


async def test_logout_through_one_server_is_refused_by_the_other_with_redis(servers: Any) -> None:
    if not reachable(POSTGRES_URL):
        pytest.skip(f"PostgreSQL not reachable at {POSTGRES_URL}")
    if not reachable(REDIS_URL):
        pytest.skip(f"Redis not reachable at {REDIS_URL}")
    await _reset_postgres(POSTGRES_URL)
    group = servers(DATABASE_URL=POSTGRES_URL, REDIS_URL=REDIS_URL)
    group.run("migrate")
    one, two = group.start(), group.start()
    await asyncio.sleep(1.0)  # both subscribed to the revocation feed
    async with aiohttp.ClientSession() as session:
        for attempt in range(5):
            email = f"ada{attempt}@example.com"
            await post(session, one, REGISTER, {"email": email, "password": "correct horse"})
            pair = (await post(session, two, LOGIN, {"email": email, "password": "correct horse"}))[
                "data"
            ]["login"]
            assert "errors" not in await post(session, two, ME, token=pair["accessToken"])
            assert (await post(session, one, "mutation { logout }", token=pair["accessToken"]))[
                "data"
            ]["logout"]
            assert code(await post(session, two, ME, token=pair["accessToken"])) == "TOKEN_REVOKED"
    await _reset_postgres(POSTGRES_URL)


async def test_workers_share_one_port_and_revocations_without_redis(servers: Any) -> None:
    group = servers()
    group.env.pop("DATABASE_URL", None)  # the embedded SQLite default
    group.env.pop("REDIS_URL", None)
    url = group.start("--workers", "2")
    async with aiohttp.ClientSession() as session:
        pair = (
            await post(
                session, url, REGISTER, {"email": "ada@example.com", "password": "correct horse"}
            )
        )["data"]["register"]
        await post(session, url, "mutation { logout }", token=pair["accessToken"])
        # Without Redis, other workers learn of it from the database within a second.
        await asyncio.sleep(1.5)
        for _ in range(10):  # new connections: the kernel spreads them over both workers
            async with aiohttp.ClientSession() as fresh:
                assert (
                    code(await post(fresh, url, ME, token=pair["accessToken"])) == "TOKEN_REVOKED"
                )
