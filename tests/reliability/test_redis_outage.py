"""Redis goes away under two server processes: revocations and rate limits stay correct,
each change of mode is logged once, and everything recovers when Redis is back."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest

from tests.helpers.graphql import LOGIN, REGISTER, code
from tests.helpers.live import LiveServer, post
from tests.reliability.processes import PostgresCluster, RedisServer

pytestmark = pytest.mark.live  # starts real server processes (see pyproject markers)

FEED_DOWN = "revocation feed: Redis unreachable"
FEED_UP = "revocation feed: Redis connected"
LIMITS_DOWN = "rate limits: Redis unreachable"
LIMITS_UP = "rate limits: Redis is back"
ME = "{ me { id roles } }"


async def _account(session: aiohttp.ClientSession, url: str, email: str) -> str:
    body = await post(session, url, REGISTER, {"email": email, "password": "correct horse"})
    return str(body["data"]["register"]["accessToken"])


async def test_redis_down_revocations_read_the_database_and_limits_count_locally(
    redis_server: RedisServer, serve: Callable[..., LiveServer], tmp_path: Path
) -> None:
    env = {
        "DATABASE_URL": f"sqlite://{tmp_path}/shared.sqlite3",
        "REDIS_URL": redis_server.url,
        "RATE_LIMIT_PER_IP": "10 per minute",
    }
    one = serve(**env).wait_ready()  # migrates first; the second finds nothing to do
    two = serve(**env).wait_ready()
    for server in (one, two):
        server.wait_for_log(FEED_UP)
    async with aiohttp.ClientSession() as session:
        ada = await _account(session, one.url, "ada@example.com")  # 1st counted call (Redis)
        bob = await _account(session, one.url, "bob@example.com")  # 2nd

        redis_server.kill()
        for server in (one, two):
            server.wait_for_log(FEED_DOWN, timeout=5)
        async with session.get(f"{two.url}/readyz") as resp:
            assert resp.status == 503
            assert (await resp.json())["redis"] == "down"

        # Logout through one; two learns it from the database on the very next request.
        assert "errors" not in await post(session, two.url, ME, token=ada)
        await post(session, one.url, "mutation { logout }", token=ada)
        assert code(await post(session, two.url, ME, token=ada)) == "TOKEN_REVOKED"
        assert "errors" not in await post(session, two.url, ME, token=bob)

        # Rate limits count in this process meanwhile: 10 calls pass, the 11th is refused.
        wrong = {"email": "ada@example.com", "password": "wrong password"}
        for _ in range(10):
            assert code(await post(session, two.url, LOGIN, wrong)) == "INVALID_CREDENTIALS"
        body = await post(session, two.url, LOGIN, wrong)
        assert code(body) == "RATE_LIMITED"
        assert body["errors"][0]["extensions"]["retryAfter"] >= 1

        redis_server.start()
        for server in (one, two):
            server.wait_for_log(FEED_UP, count=2, timeout=10)
        async with session.get(f"{two.url}/readyz") as resp:
            assert resp.status == 200
        # Back on Redis, where only 2 calls were counted: two's local count no longer decides.
        right = {"email": "bob@example.com", "password": "correct horse"}
        await asyncio.sleep(1.1)  # the limiter retries Redis at most once a second
        pair = (await post(session, two.url, LOGIN, right))["data"]["login"]
        await post(session, two.url, "mutation { logout }", token=pair["accessToken"])
        assert code(await post(session, one.url, ME, token=pair["accessToken"])) == "TOKEN_REVOKED"

    for server in (one, two):
        log = server.log()
        assert log.count(FEED_DOWN) == 1, log
        assert log.count(FEED_UP) == 2, log
    assert two.log().count(LIMITS_DOWN) == 1
    assert two.log().count(LIMITS_UP) == 1


async def test_redis_and_postgres_down_guarded_fields_fail_closed(
    redis_server: RedisServer,
    pg_cluster: PostgresCluster,
    pg_url: str,
    serve: Callable[..., LiveServer],
) -> None:
    """Neither Redis nor the database can say whether a token was revoked: refuse, honestly."""
    server = serve(DATABASE_URL=pg_url, REDIS_URL=redis_server.url).wait_ready()
    server.wait_for_log(FEED_UP)
    async with aiohttp.ClientSession() as session:
        token = await _account(session, server.url, "ada@example.com")
        redis_server.kill()
        server.wait_for_log(FEED_DOWN, timeout=5)
        pg_cluster.stop("fast")
        try:
            async with session.post(
                f"{server.url}/graphql",
                json={"query": ME},
                headers={"Authorization": f"Bearer {token}"},
            ) as resp:
                body = await resp.json()
                assert "WWW-Authenticate" not in resp.headers  # the token itself is fine
            assert code(body) == "SERVICE_UNAVAILABLE", body
            public = await post(session, server.url, "{ __typename }", token=token)
            assert public == {"data": {"__typename": "Query"}}
        finally:
            pg_cluster.start()
        assert "errors" not in await post(session, server.url, ME, token=token)
    assert "unexpected error" not in server.log()
