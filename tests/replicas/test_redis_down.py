"""Redis down under two replicas: what still holds, what degrades, and recovery without a
restart. The rig's Redis is killed (a throwaway redis-server, never the machine's), then
started again on the same port, empty, as a crashed Redis without persistence comes back.

Holds: a logout on one replica is refused on the other (each check reads the session row
meanwhile); the replicas stay in rotation (READY_WITHOUT_REDIS) and answer.
Degrades: rate limits count in each worker process (up to processes x the limit);
subscription events reach only sockets held by the worker that made them.
Recovers: the feed resubscribes and catches up, limits are shared again, with no restart.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from tests.helpers.graphql import LOGIN, REGISTER, code
from tests.helpers.live import LIVE, unique_email
from tests.helpers.notes import CREATE
from tests.helpers.replicas import NAMES, Client, Rig, client_address, client_session
from tests.helpers.sockets import EVENTS, PROTOCOL
from tests.reliability.processes import RedisServer

pytestmark = [pytest.mark.live, pytest.mark.slow]

PASSWORD = "correct horse battery"
LIMIT = 5  # RATE_LIMIT_PER_EMAIL of the rig
UNREACHABLE = "revocation feed: Redis unreachable"
CONNECTED = "revocation feed: Redis connected"
EVENTS_CONNECTED = "events: Redis connected"


async def logout_is_refused_everywhere(client: Client) -> None:
    body = await client.gql(REGISTER, {"email": unique_email(), "password": PASSWORD})
    token = body["data"]["register"]["accessToken"]
    assert (await client.gql("mutation { logout }", token=token)) == {"data": {"logout": True}}
    after = [await client.call(LIVE, token=token) for _ in range(4)]
    assert [code(answer.body) for answer in after] == ["TOKEN_REVOKED"] * 4
    assert {answer.replica for answer in after} == set(NAMES)


async def password_checks_allowed(rig: Rig, attempts: int) -> int:
    """Wrong passwords for one new account, all at once from a new address: how many were
    checked (INVALID_CREDENTIALS) before RATE_LIMITED."""
    email = unique_email()
    owner = client_address()
    async with client_session(owner) as http:
        body = await rig.client(http, owner).gql(REGISTER, {"email": email, "password": PASSWORD})
        assert "errors" not in body, body
    guesser = client_address()
    async with client_session(guesser) as http:
        client = rig.client(http, guesser)
        wrong = {"email": email, "password": "wrong password"}
        answers = await asyncio.gather(*(client.call(LOGIN, wrong) for _ in range(attempts)))
    outcomes = Counter(code(answer.body) for answer in answers)
    assert set(outcomes) <= {"INVALID_CREDENTIALS", "RATE_LIMITED"}, outcomes
    return outcomes["INVALID_CREDENTIALS"]


async def subscribe(rig: Rig, http: aiohttp.ClientSession, client: Client) -> Subscriber:
    """A socket of a new user, subscribed through the proxy and known to listen: notes are
    made until one event arrives (while Redis is up, from whichever replica)."""
    body = await client.gql(REGISTER, {"email": unique_email(), "password": PASSWORD})
    token = body["data"]["register"]["accessToken"]
    ws = await http.ws_connect(f"{rig.url}/graphql", protocols=[PROTOCOL])
    await ws.send_json({"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}})
    assert await ws.receive_json(timeout=5) == {"type": "connection_ack"}
    await ws.send_json({"id": "1", "type": "subscribe", "payload": {"query": EVENTS}})
    for _ in range(40):
        await client.call(CREATE, {"t": "warm-up", "b": "."}, token=token)
        try:
            message = await ws.receive_json(timeout=0.25)
        except TimeoutError:
            continue
        assert message["type"] == "next", message
        return Subscriber(ws, client, token)
    raise AssertionError("the subscription never delivered an event")


@dataclass
class Subscriber:
    ws: aiohttp.ClientWebSocketResponse
    client: Client
    token: str

    async def events_of_new_notes(self, made: int = 8) -> int:
        """Notes made through the proxy (so on both replicas): how many of their events this
        socket receives (warm-up stragglers are not counted)."""
        ids = set()
        for n in range(made):
            answer = await self.client.call(CREATE, {"t": f"n{n}", "b": "."}, token=self.token)
            assert "errors" not in answer.body, answer.body
            ids.add(answer.body["data"]["createNote"]["id"])
        received = 0
        while True:
            try:
                message: dict[str, Any] = await self.ws.receive_json(timeout=1.0)
            except TimeoutError:
                return received
            assert message["type"] == "next", message
            received += message["payload"]["data"]["noteEvents"]["note"]["id"] in ids


async def test_redis_down_under_two_replicas(rig: Rig, rig_redis: RedisServer) -> None:
    processes = len(NAMES) * rig.workers
    ip = client_address()
    async with client_session(ip) as http:
        client = rig.client(http, ip)
        shared_before = await password_checks_allowed(rig, 12)
        subscriber = await subscribe(rig, http, client)  # held through the outage
        events_before = await subscriber.events_of_new_notes()

        rig_redis.kill()
        killed = time.monotonic()
        for replica in rig.replicas:
            await asyncio.to_thread(replica.wait_for_log, UNREACHABLE, 15, rig.workers)
        noticed_after = time.monotonic() - killed
        assert rig.proxy is not None and rig.proxy.states() == {"api1": "UP", "api2": "UP"}

        await logout_is_refused_everywhere(client)
        per_process = await password_checks_allowed(rig, 4 * LIMIT)
        events_down = await subscriber.events_of_new_notes()

        rig_redis.start()  # same port, empty
        started = time.monotonic()
        for replica in rig.replicas:
            for line in (CONNECTED, EVENTS_CONNECTED):
                await asyncio.to_thread(replica.wait_for_log, line, 15, 2 * rig.workers)
        recovered_after = time.monotonic() - started
        await logout_is_refused_everywhere(client)
        await asyncio.sleep(1.1)  # rate limits try Redis again at most once a second
        shared_after = await password_checks_allowed(rig, 12)
        events_after = await subscriber.events_of_new_notes()
        await subscriber.ws.close()

    print(  # the figures docs/scaling.md quotes (pytest -s shows them)
        f"\nRedis down, 2 replicas x {rig.workers} worker(s): noticed by every worker within "
        f"{noticed_after:.1f} s; back {recovered_after:.1f} s after Redis; password checks "
        f"per email (limit {LIMIT}): {shared_before} before, {per_process} down "
        f"(of {4 * LIMIT} tried), {shared_after} after; subscription events received "
        f"of 8 notes made on both replicas: {events_before}, {events_down}, {events_after}"
    )
    assert shared_before == LIMIT
    # Down: each worker process counts on its own, so more than the limit but never more
    # than the limit in each process. (Round robin gives each replica half the attempts.)
    assert LIMIT < per_process <= LIMIT * processes
    assert events_before == 8
    # Down: only the events made by the socket's own worker (all those made on its replica
    # when it has one worker; round robin makes half of them there).
    assert events_down == 4 if rig.workers == 1 else events_down < 8
    assert shared_after == LIMIT
    assert events_after == 8
