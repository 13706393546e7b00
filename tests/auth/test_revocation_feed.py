"""Without Redis, every worker learns of a revocation whose commit was slow.

The session's `ended_at` is taken before its transaction commits. A feed that polled by that
timestamp with a short overlap skipped, for good, a logout whose commit took longer than the
overlap. Here the test itself holds the commit back for 3 s, then checks that both workers of
a 2-worker server refuse the token. On PostgreSQL a row lock taken by the test makes the
server's UPDATE wait. On SQLite nothing outside can make only a writer wait (in WAL mode its
UPDATE after a read fails at once on a held lock), so a hook loaded into the server processes
makes every commit wait while a flag file exists, as a stalled disk or a busy worker would.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from tests.helpers.env import POSTGRES_URL, ROOT, reachable, reset_postgres
from tests.helpers.graphql import ME, REGISTER, code
from tests.helpers.live import live_server, post

# Seconds the commit is held back: past the old 1 s overlap, under the 5 s statement timeout.
pytestmark = pytest.mark.live  # starts real server processes (see pyproject markers)

HOLD = 3.0
CONNECTIONS = 16  # fresh connections per check: the kernel spreads them over both workers

# Loaded by every server process (sitecustomize on PYTHONPATH): commits wait on the flag file.
HOOK = """
import asyncio, os
from tortoise.backends.sqlite.client import SqliteTransactionWrapper

_commit = SqliteTransactionWrapper.commit
_flag = os.environ["TEST_HOLD_COMMITS"]


async def commit(self):
    for _ in range(100):  # 10 s at most
        if not os.path.exists(_flag):
            break
        await asyncio.sleep(0.1)
    await _commit(self)


SqliteTransactionWrapper.commit = commit
"""


@contextlib.asynccontextmanager
async def commits_held(database_url: str, flag: Path) -> AsyncIterator[None]:
    """Hold back the commit of the server's next write to `sessions` until the block is left."""
    if database_url.startswith("sqlite"):
        flag.touch()
        try:
            yield
        finally:
            flag.unlink()
        return
    pg = await asyncpg.connect(database_url.replace("postgres://", "postgresql://", 1))
    try:
        async with pg.transaction():
            await pg.execute("SELECT 1 FROM sessions FOR UPDATE")  # the server's UPDATE waits
            yield
    finally:
        await pg.close()


async def all_refuse(url: str, token: str) -> bool:
    for _ in range(CONNECTIONS):
        async with aiohttp.ClientSession() as fresh:
            if code(await post(fresh, url, ME, token=token)) != "TOKEN_REVOKED":
                return False
    return True


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_a_logout_whose_commit_was_slow_is_refused_by_every_worker(
    backend: str, tmp_path: Path
) -> None:
    flag = tmp_path / "hold-commits"
    env: dict[str, Any] = {}
    if backend == "postgres":
        if not reachable(POSTGRES_URL):
            pytest.skip(f"PostgreSQL not reachable at {POSTGRES_URL}")
        await reset_postgres(POSTGRES_URL)
        env["DATABASE_URL"] = POSTGRES_URL
    else:
        (tmp_path / "hook").mkdir()
        (tmp_path / "hook" / "sitecustomize.py").write_text(HOOK)
        env["PYTHONPATH"] = os.pathsep.join([str(tmp_path / "hook"), str(ROOT)])
        env["TEST_HOLD_COMMITS"] = str(flag)
    database_url = env.get("DATABASE_URL", f"sqlite://{tmp_path}/live.sqlite3")
    with live_server(tmp_path, "--workers", "2", **env) as server:
        async with aiohttp.ClientSession() as session:
            credentials = {"email": "ada@example.com", "password": "correct horse"}
            pair = (await post(session, server.url, REGISTER, credentials))["data"]["register"]
            token = pair["accessToken"]
            async with commits_held(database_url, flag):
                logout = asyncio.create_task(
                    post(session, server.url, "mutation { logout }", token=token)
                )
                await asyncio.sleep(HOLD)
                assert not logout.done()  # the commit is really held back
            assert (await logout)["data"]["logout"] is True
            # Other workers poll each second; the old feed had skipped it for good by now.
            await asyncio.sleep(2.5)
            assert await all_refuse(server.url, token)
            await asyncio.sleep(2.0)  # and still: nothing forgets it
            assert await all_refuse(server.url, token)
    if backend == "postgres":
        await reset_postgres(POSTGRES_URL)
