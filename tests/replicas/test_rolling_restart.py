"""A rolling restart under a bounded client load: no request fails, no write is lost.

Each replica in turn gets SIGTERM, leaves the proxy's rotation while it still serves
(SHUTDOWN_DELAY: /readyz answers 503 first), drains, exits 0 and is started again on its port;
meanwhile four clients of the proxy create notes and read through it. Every request must be
answered without an error, and the database must hold exactly the notes acknowledged.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter

import aiohttp
import asyncpg
import pytest

from tests.helpers.live import LIVE, unique_email
from tests.helpers.notes import CREATE
from tests.helpers.replicas import NAMES, Client, Rig, client_address, client_session

pytestmark = [pytest.mark.live, pytest.mark.slow]

CLIENTS = 4
PAUSE = 0.02  # seconds each client waits between two requests: a bounded load (< 200/s)


async def test_a_rolling_restart_under_load_fails_no_request_and_loses_no_write(
    rig: Rig,
) -> None:
    ip = client_address()
    answered: Counter[str] = Counter()  # per replica
    failures: list[str] = []
    acknowledged: list[str] = []  # note ids the clients were told about
    stop = asyncio.Event()
    run = uuid.uuid4().hex[:8]  # this test's notes (the rig's database holds others)

    async def load(client: Client, token: str, n: int) -> None:
        sent = 0
        while not stop.is_set():
            for query, variables in ((CREATE, {"t": f"{run}-{n}-{sent}", "b": "."}), (LIVE, None)):
                sent += 1
                try:
                    answer = await client.call(query, variables, token=token)
                except (aiohttp.ClientError, AssertionError, TimeoutError) as exc:
                    failures.append(repr(exc)[:300])
                    continue
                if "errors" in answer.body:
                    failures.append(json.dumps(answer.body)[:300])
                    continue
                answered[answer.replica] += 1
                if query is CREATE:
                    acknowledged.append(answer.body["data"]["createNote"]["id"])
            await asyncio.sleep(PAUSE)

    timeout = aiohttp.ClientTimeout(total=30)
    async with client_session(ip, timeout=timeout) as http:
        client = rig.client(http, ip)
        body = await client.gql(
            "mutation($e: String!, $p: String!) { register(email: $e, password: $p) "
            "{ accessToken } }",
            {"e": unique_email(), "p": "correct horse battery"},
        )
        token = body["data"]["register"]["accessToken"]
        tasks = [asyncio.create_task(load(client, token, n)) for n in range(CLIENTS)]
        try:
            await asyncio.sleep(1.0)  # load running on both replicas first
            before = dict(answered)
            rolls = [await asyncio.to_thread(rig.roll, index) for index in range(len(NAMES))]
            await asyncio.sleep(1.0)  # and on both again afterwards
        finally:
            stop.set()
            await asyncio.gather(*tasks)

    conn = await asyncpg.connect(rig.env["DATABASE_URL"].replace("postgres", "postgresql", 1))
    try:
        rows = await conn.fetch("SELECT id FROM notes WHERE title LIKE $1", f"{run}-%")
        stored = {str(row["id"]) for row in rows}
    finally:
        await conn.close()

    print(  # the figures docs/scaling.md quotes (pytest -s shows them)
        f"\nrolling restart, {rig.workers} worker(s) per replica: "
        f"{sum(answered.values())} requests answered {dict(answered)}, "
        f"{len(failures)} failed, {len(acknowledged)} writes acknowledged, "
        f"{len(stored)} stored"
    )
    for roll in rolls:
        print(f"  {roll}")
    assert failures == []
    assert set(before) == set(NAMES)  # the load did reach both before the restarts
    for roll in rolls:
        assert roll.still_running_when_out, roll  # out of rotation before its port closed
        assert roll.exit_status == 0, roll
    assert sorted(stored) == sorted(acknowledged)  # nothing lost, nothing unacknowledged
