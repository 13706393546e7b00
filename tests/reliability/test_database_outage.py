"""PostgreSQL goes away under a running server: fast honest answers, then recovery by itself."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import asyncpg
import pytest
from tortoise.exceptions import IntegrityError, OperationalError

from api.db import connection as db
from tests.helpers.graphql import LOGIN, REGISTER, code
from tests.helpers.live import LiveServer, post
from tests.reliability.processes import PostgresCluster

CREDENTIALS = {"email": "ada@example.com", "password": "correct horse"}
TIMEOUT = aiohttp.ClientTimeout(total=20)
POLL_DOWN = "revocation poll failed"
POLL_UP = "revocation poll: the database answers again"


async def _timed(
    session: aiohttp.ClientSession, url: str, query: str, variables: Any = None, token: Any = None
) -> tuple[dict[str, Any], float]:
    started = time.monotonic()
    body = await post(session, url, query, variables, token)
    return body, time.monotonic() - started


def _unavailable(body: dict[str, Any]) -> None:
    """SERVICE_UNAVAILABLE, masked: no stack trace, no driver message."""
    assert code(body) == "SERVICE_UNAVAILABLE", body
    assert body.get("data") is None
    text = json.dumps(body)
    assert "Traceback" not in text
    assert "connect" not in text.lower()  # e.g. "Connection refused" stays in the log


@pytest.mark.live
async def test_postgres_down_answers_fast_then_recovers_without_restart(
    pg_cluster: PostgresCluster, pg_url: str, serve: Callable[..., LiveServer]
) -> None:
    server = serve(DATABASE_URL=pg_url).wait_ready()
    url = server.url
    async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
        pair = (await post(session, url, REGISTER, CREDENTIALS))["data"]["register"]
        token = pair["accessToken"]

        pg_cluster.stop("fast")
        try:
            started = time.monotonic()
            async with session.get(f"{url}/readyz") as resp:
                assert resp.status == 503
                assert (await resp.json())["database"] == "down"
            assert time.monotonic() - started < 1.5

            other = {"email": "bob@example.com", "password": "correct horse"}
            for query, variables, bearer in (
                (LOGIN, CREDENTIALS, None),
                (REGISTER, other, None),
                ("{ mySessions { id } }", None, token),
                ("mutation { logout }", None, token),
            ):
                body, elapsed = await _timed(session, url, query, variables, bearer)
                _unavailable(body)
                assert elapsed < 5, (query, elapsed)

            # The token alone answers these; liveness does not depend on the database.
            body = await post(session, url, "{ me { id roles } }", token=token)
            assert body == {"data": {"me": {"id": pair["user"]["id"], "roles": ["user"]}}}
            async with session.get(f"{url}/healthz") as resp:
                assert resp.status == 200
            # The revocation poll (each second) fails too: logged once, not once a second.
            await asyncio.to_thread(server.wait_for_log, POLL_DOWN, 5)
            await asyncio.sleep(2.2)
            assert server.log().count(POLL_DOWN) == 1
        finally:
            pg_cluster.start()
        await asyncio.to_thread(server.wait_for_log, POLL_UP, 5)

        # No restart: the pool reconnects; the first query after the restart already works.
        body, elapsed = await _timed(session, url, LOGIN, CREDENTIALS)
        assert "errors" not in body, body
        assert elapsed < 5
        async with session.get(f"{url}/readyz") as resp:
            assert resp.status == 200
        # The session started before the outage is still there, and logout works again.
        sessions = await post(session, url, "{ mySessions { id } }", token=token)
        assert len(sessions["data"]["mySessions"]) == 2
    log = server.log()
    assert "unexpected error" not in log  # outages are warnings, not bugs
    assert "dependency unavailable in ['login']" in log
    assert log.count(POLL_UP) == 1


@pytest.mark.live
async def test_postgres_crash_and_restart_first_request_works(
    pg_cluster: PostgresCluster, pg_url: str, serve: Callable[..., LiveServer]
) -> None:
    """A crash (pg_ctl -m immediate, then recovery) while the pool holds idle connections."""
    server = serve(DATABASE_URL=pg_url, DATABASE_POOL_SIZE="3").wait_ready()
    async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
        await post(session, server.url, REGISTER, CREDENTIALS)
        for _ in range(3):  # several pooled connections now sit idle
            assert "errors" not in await post(session, server.url, LOGIN, CREDENTIALS)
        pg_cluster.stop("immediate")
        pg_cluster.start()
        body = await post(session, server.url, LOGIN, CREDENTIALS)
        assert "errors" not in body, body


@pytest.mark.live
async def test_hung_database_statement_times_out(
    pg_url: str, serve: Callable[..., LiveServer]
) -> None:
    """A statement blocked on a lock ends at DATABASE_STATEMENT_TIMEOUT with SERVICE_UNAVAILABLE."""
    server = serve(DATABASE_URL=pg_url, DATABASE_STATEMENT_TIMEOUT="1").wait_ready()
    async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
        await post(session, server.url, REGISTER, CREDENTIALS)
        locker = await asyncpg.connect(pg_url.replace("postgres://", "postgresql://", 1))
        try:
            async with locker.transaction():
                await locker.execute("LOCK TABLE users IN ACCESS EXCLUSIVE MODE")
                body, elapsed = await _timed(session, server.url, LOGIN, CREDENTIALS)
                _unavailable(body)
                assert elapsed < 3
        finally:
            await locker.close()
        body = await post(session, server.url, LOGIN, CREDENTIALS)
        assert "errors" not in body, body


@pytest.mark.live
async def test_statement_cut_by_a_postgres_shutdown_is_service_unavailable(
    pg_cluster: PostgresCluster, pg_url: str, serve: Callable[..., LiveServer]
) -> None:
    """A query in progress when PostgreSQL shuts down (admin_shutdown, class 57) is an outage."""
    server = serve(DATABASE_URL=pg_url).wait_ready()
    async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
        await post(session, server.url, REGISTER, CREDENTIALS)
        locker = await asyncpg.connect(pg_url.replace("postgres://", "postgresql://", 1))
        try:
            async with locker.transaction():
                await locker.execute("LOCK TABLE users IN ACCESS EXCLUSIVE MODE")
                waiting = asyncio.create_task(_timed(session, server.url, LOGIN, CREDENTIALS))
                await asyncio.sleep(0.3)  # the login now waits on the lock, inside PostgreSQL
                await asyncio.to_thread(pg_cluster.stop, "fast")
        except (asyncpg.PostgresError, asyncpg.InterfaceError):
            pass  # the locker is cut off too
        finally:
            await locker.close()
        try:
            body, _ = await waiting
            _unavailable(body)
        finally:
            pg_cluster.start()
        body = await post(session, server.url, LOGIN, CREDENTIALS)
        assert "errors" not in body, body
    assert "unexpected error" not in server.log()


@pytest.mark.parametrize(
    ("error", "outage"),
    [
        (ConnectionRefusedError(111, "refused"), True),
        (TimeoutError(), True),  # connect timeout, asyncpg's command_timeout
        (asyncpg.QueryCanceledError("statement timeout"), True),
        (asyncpg.AdminShutdownError("terminating connection"), True),
        (asyncpg.CannotConnectNowError("the database system is starting up"), True),
        (asyncpg.TooManyConnectionsError("too many clients"), True),
        (asyncpg.ConnectionDoesNotExistError("closed in the middle of operation"), True),
        (OperationalError(asyncpg.UndefinedTableError("no such table")), False),  # a bug
        (IntegrityError(asyncpg.UniqueViolationError("duplicate")), False),
        (ValueError("bug"), False),
    ],
)
def test_outage_exceptions_are_told_from_bugs(error: Exception, outage: bool) -> None:
    assert db.is_unavailable(error) is outage
    wrapped = RuntimeError("while resolving")
    wrapped.__cause__ = error
    assert db.is_unavailable(wrapped) is outage
