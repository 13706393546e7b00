"""Real server processes (python -m api serve) sharing one database, with and without Redis."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest

from tests.helpers.env import postgres_or_skip, redis_or_skip, reset_postgres
from tests.helpers.graphql import LOGIN, ME, REGISTER, code
from tests.helpers.live import live_server, post

pytestmark = pytest.mark.live  # starts real server processes (see pyproject markers)


async def test_logout_through_one_server_is_refused_by_the_other_with_redis(
    tmp_path: Path,
) -> None:
    env = {"DATABASE_URL": postgres_or_skip(), "REDIS_URL": redis_or_skip()}
    await reset_postgres(env["DATABASE_URL"])
    # The first server migrates; the second finds nothing to do.
    with live_server(tmp_path, **env) as first, live_server(tmp_path, **env) as second:
        one, two = first.url, second.url
        await asyncio.sleep(1.0)  # both subscribed to the revocation feed
        async with aiohttp.ClientSession() as session:
            for attempt in range(5):
                email = f"ada{attempt}@example.com"
                await post(session, one, REGISTER, {"email": email, "password": "correct horse"})
                login = await post(
                    session, two, LOGIN, {"email": email, "password": "correct horse"}
                )
                pair = login["data"]["login"]
                assert "errors" not in await post(session, two, ME, token=pair["accessToken"])
                logout = await post(session, one, "mutation { logout }", token=pair["accessToken"])
                assert logout["data"]["logout"]
                me = await post(session, two, ME, token=pair["accessToken"])
                assert code(me) == "TOKEN_REVOKED"
    await reset_postgres(env["DATABASE_URL"])


async def test_workers_share_one_port_and_revocations_without_redis(tmp_path: Path) -> None:
    # DATABASE_URL unset: the embedded SQLite default in the data folder.
    with live_server(tmp_path, "--workers", "2", DATABASE_URL=None) as server:
        async with aiohttp.ClientSession() as session:
            variables = {"email": "ada@example.com", "password": "correct horse"}
            pair = (await post(session, server.url, REGISTER, variables))["data"]["register"]
            await post(session, server.url, "mutation { logout }", token=pair["accessToken"])
        # Without Redis, other workers learn of it from the database within a second.
        await asyncio.sleep(1.5)
        for _ in range(10):  # new connections: the kernel spreads them over both workers
            async with aiohttp.ClientSession() as fresh:
                me = await post(fresh, server.url, ME, token=pair["accessToken"])
                assert code(me) == "TOKEN_REVOKED"
