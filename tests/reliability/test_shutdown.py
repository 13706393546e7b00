"""SIGTERM: stop accepting, finish what was accepted, close WebSockets with 1001, exit 0."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from tests.helpers.graphql import LOGIN, REGISTER
from tests.helpers.live import LiveServer, post

pytestmark = pytest.mark.live  # starts real server processes (see pyproject markers)

CREDENTIALS = {"email": "ada@example.com", "password": "correct horse"}


async def _login_on_own_connection(url: str) -> dict[str, Any]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        return await post(session, url, LOGIN, CREDENTIALS)


@pytest.mark.parametrize("workers", ["1", "2"])
async def test_sigterm_finishes_every_accepted_request_and_exits_0(
    workers: str, serve: Callable[..., LiveServer], tmp_path: Path
) -> None:
    server = serve(
        "--workers",
        workers,
        DATABASE_URL=f"sqlite://{tmp_path}/db.sqlite3",
        PASSWORD_HASH_THREADS="1",
        PASSWORD_HASH_MAX_WAIT="60",  # about draining, not capacity: every login waits its turn
    )
    server.wait_ready().wait_for_log("started", count=int(workers))
    async with aiohttp.ClientSession() as session:
        await post(session, server.url, REGISTER, CREDENTIALS)
    # 48 logins hash 48 passwords on one thread per worker: the last ends well after SIGTERM.
    logins = [asyncio.create_task(_login_on_own_connection(server.url)) for _ in range(48)]
    await asyncio.sleep(0.4)  # every connection accepted, every request being served
    assert not all(task.done() for task in logins)
    server.terminate()
    bodies = await asyncio.gather(*logins)
    for body in bodies:
        assert "errors" not in body and body["data"]["login"]["accessToken"], body
    assert await asyncio.to_thread(server.wait, 30) == 0
    assert "Traceback" not in server.log()


async def test_shutdown_is_bounded_by_shutdown_timeout(
    pg_url: str, serve: Callable[..., LiveServer]
) -> None:
    """A request stuck on the database does not hold the process past SHUTDOWN_TIMEOUT."""
    server = serve(DATABASE_URL=pg_url, SHUTDOWN_TIMEOUT="1", DATABASE_STATEMENT_TIMEOUT="30")
    server.wait_ready()
    async with aiohttp.ClientSession() as session:
        await post(session, server.url, REGISTER, CREDENTIALS)
    locker = await asyncpg.connect(pg_url.replace("postgres://", "postgresql://", 1))
    try:
        async with locker.transaction():
            await locker.execute("LOCK TABLE users IN ACCESS EXCLUSIVE MODE")
            stuck = asyncio.create_task(_login_on_own_connection(server.url))
            await asyncio.sleep(0.3)
            started = time.monotonic()
            server.terminate()
            assert await asyncio.to_thread(server.wait, 15) == 0
            assert time.monotonic() - started < 4
            with pytest.raises(aiohttp.ClientError):
                await stuck  # cut off at the deadline: the client sees it and may retry
    finally:
        await locker.close()


async def test_sigterm_closes_websockets_with_1001(
    serve: Callable[..., LiveServer], tmp_path: Path
) -> None:
    server = serve(DATABASE_URL=f"sqlite://{tmp_path}/db.sqlite3").wait_ready()
    async with aiohttp.ClientSession() as session:
        register = 'mutation { register(email: "ws@example.com", password: "correct horse") { accessToken } }'
        async with session.post(f"{server.url}/graphql", json={"query": register}) as resp:
            token = (await resp.json())["data"]["register"]["accessToken"]
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(f"{server.url}/graphql", protocols=["graphql-transport-ws"]) as ws,
    ):
        assert ws.protocol == "graphql-transport-ws"
        await ws.send_json(
            {"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}}
        )
        ack = await ws.receive(timeout=5)
        assert ack.type == aiohttp.WSMsgType.TEXT
        assert json.loads(ack.data)["type"] == "connection_ack"
        server.terminate()
        message = await ws.receive(timeout=5)
        assert message.type == aiohttp.WSMsgType.CLOSE
        assert ws.close_code == aiohttp.WSCloseCode.GOING_AWAY
    assert await asyncio.to_thread(server.wait, 15) == 0


async def test_a_worker_that_dies_takes_the_service_down_for_a_restart(
    serve: Callable[..., LiveServer], tmp_path: Path
) -> None:
    """kill -9 of one worker: the others drain and the parent exits 1 (the orchestrator
    restarts the service) instead of serving on fewer workers unnoticed."""
    server = serve("--workers", "2", DATABASE_URL=f"sqlite://{tmp_path}/db.sqlite3")
    server.wait_ready().wait_for_log("started", count=2)
    pids = [int(pid) for pid in re.findall(r"worker (\d+) started", server.log())]
    os.kill(pids[0], signal.SIGKILL)
    assert await asyncio.to_thread(server.wait, 15) == 1
    assert "exited with -9; stopping the others" in server.log()
    assert f"worker {pids[1]} stopped" in server.log()


async def test_shutdown_delay_keeps_serving_while_readyz_says_draining(
    serve: Callable[..., LiveServer], tmp_path: Path
) -> None:
    """With SHUTDOWN_DELAY, SIGTERM first takes the worker out of rotation (/readyz 503) while
    requests, new connections included, are still answered; then it exits 0."""
    server = serve(DATABASE_URL=f"sqlite://{tmp_path}/db.sqlite3", SHUTDOWN_DELAY="3")
    server.wait_ready().wait_for_log("started")
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session:
        async with session.get(f"{server.url}/readyz") as resp:
            assert resp.status == 200
        server.terminate()
        await asyncio.to_thread(server.wait_for_log, "draining")
        async with session.get(f"{server.url}/readyz") as resp:
            assert (resp.status, await resp.json()) == (503, {"status": "draining"})
        body = await post(session, server.url, REGISTER, CREDENTIALS)  # a new connection
        assert body["data"]["register"]["accessToken"], body
        assert server.proc.poll() is None  # still there: the delay is not over
    assert await asyncio.to_thread(server.wait, 30) == 0
    with pytest.raises(aiohttp.ClientError):  # and then the port is closed
        async with aiohttp.ClientSession() as session:
            await session.get(f"{server.url}/healthz")


async def test_a_second_sigterm_skips_the_rest_of_the_shutdown_delay(
    serve: Callable[..., LiveServer], tmp_path: Path
) -> None:
    server = serve(DATABASE_URL=f"sqlite://{tmp_path}/db.sqlite3", SHUTDOWN_DELAY="60")
    server.wait_ready().wait_for_log("started")
    server.terminate()
    await asyncio.to_thread(server.wait_for_log, "draining")
    server.terminate()
    assert await asyncio.to_thread(server.wait, 20) == 0  # long before the 60 s are over


async def test_a_second_sigterm_during_the_delay_still_drains_every_accepted_request(
    serve: Callable[..., LiveServer], tmp_path: Path
) -> None:
    """The second SIGTERM skips the wait, not the drain: the timer the first one set must not
    fire later into the drain (it raised GracefulExit there and cut the requests off)."""
    server = serve(
        DATABASE_URL=f"sqlite://{tmp_path}/db.sqlite3",
        SHUTDOWN_DELAY="1",
        PASSWORD_HASH_THREADS="1",
        PASSWORD_HASH_MAX_WAIT="60",
        MAX_IN_FLIGHT_SIGN_IN="128",  # every login admitted: this test is about the drain
    )
    server.wait_ready().wait_for_log("started")
    async with aiohttp.ClientSession() as session:
        await post(session, server.url, REGISTER, CREDENTIALS)
    # 64 logins on one hashing thread: the drain lasts well past the first SIGTERM's timer.
    logins = [asyncio.create_task(_login_on_own_connection(server.url)) for _ in range(64)]
    await asyncio.sleep(0.4)
    server.terminate()
    await asyncio.to_thread(server.wait_for_log, "draining")
    server.terminate()
    bodies = await asyncio.gather(*logins, return_exceptions=True)
    for body in bodies:
        assert isinstance(body, dict) and body["data"]["login"]["accessToken"], body
    assert await asyncio.to_thread(server.wait, 60) == 0


async def test_a_sigterm_during_the_drain_does_not_cut_it(
    serve: Callable[..., LiveServer], tmp_path: Path
) -> None:
    """After the delay, the worker drains; another SIGTERM then (systemd's control-group kill
    and the parent both signal a worker) must not cut the accepted requests off."""
    server = serve(
        DATABASE_URL=f"sqlite://{tmp_path}/db.sqlite3",
        SHUTDOWN_DELAY="1",
        PASSWORD_HASH_THREADS="1",
        PASSWORD_HASH_MAX_WAIT="60",
        MAX_IN_FLIGHT_SIGN_IN="128",  # all 96 logins admitted: this test is about the drain
    )
    server.wait_ready().wait_for_log("started")
    async with aiohttp.ClientSession() as session:
        await post(session, server.url, REGISTER, CREDENTIALS)
    logins = [asyncio.create_task(_login_on_own_connection(server.url)) for _ in range(96)]
    await asyncio.sleep(0.4)
    server.terminate()
    await asyncio.to_thread(server.wait_for_log, "draining")
    await asyncio.sleep(1.5)  # past the delay: draining
    assert not all(task.done() for task in logins)
    server.terminate()
    bodies = await asyncio.gather(*logins, return_exceptions=True)
    for body in bodies:
        assert isinstance(body, dict) and body["data"]["login"]["accessToken"], body
    assert await asyncio.to_thread(server.wait, 60) == 0
