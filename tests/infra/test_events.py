"""The event bus behind subscriptions: local fan-out, Redis across workers, and fallback."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from api.infra.events import Event, EventBus
from tests.helpers.env import REDIS_URL, reachable
from tests.helpers.graphql import REGISTER
from tests.helpers.live import live_server, post
from tests.helpers.notes import CREATE
from tests.helpers.sockets import EVENTS, PROTOCOL

needs_redis = pytest.mark.skipif(
    not reachable(REDIS_URL), reason=f"Redis not reachable at {REDIS_URL} (set TEST_REDIS_URL)"
)


def event(owner: str = "u1", kind: str = "created", **data: Any) -> Event:
    return Event("notes", owner, kind, {"title": "t", **data})


async def until(predicate: Any, seconds: float = 5.0) -> None:
    for _ in range(int(seconds / 0.02)):
        if predicate():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not met in time")


async def test_local_fan_out_by_topic_and_owner() -> None:
    bus = EventBus()
    async with (
        bus.running(None),
        bus.subscribe("notes", "u1") as mine,
        bus.subscribe("notes", "u2") as theirs,
    ):
        bus.publish(event("u2", title="theirs"))
        bus.publish(event("u1", title="mine"))
        assert (await anext(mine)).data["title"] == "mine"
        assert (await anext(theirs)).data["title"] == "theirs"
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.1):
                await anext(mine)
    assert bus.subscriber_count() == 0


async def test_a_subscriber_that_stops_reading_loses_events_not_memory(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bus = EventBus(queue_size=2)
    async with bus.subscribe("notes", "u1") as events:
        for n in range(5):
            bus.publish(event(title=str(n)))
        assert [(await anext(events)).data["title"] for _ in range(2)] == ["0", "1"]
    assert sum("not keeping up" in r.getMessage() for r in caplog.records) == 1


@needs_redis
async def test_events_cross_buses_through_redis_once_each() -> None:
    one, two = EventBus(), EventBus()
    async with one.running(REDIS_URL), two.running(REDIS_URL):
        await until(lambda: one.shared and two.shared)
        async with one.subscribe("notes", "u1") as here, two.subscribe("notes", "u1") as there:
            one.publish(event(title="hello"))
            assert (await anext(there)).data["title"] == "hello"
            assert (await anext(here)).data["title"] == "hello"
            with pytest.raises(TimeoutError):  # our own message coming back is not repeated
                async with asyncio.timeout(0.3):
                    await anext(here)


async def test_without_redis_events_stay_local_and_the_change_is_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="api.infra.events")
    bus = EventBus()
    async with bus.running("redis://127.0.0.1:1/0"), bus.subscribe("notes", "u1") as events:
        await until(lambda: bus.shared is False)
        await asyncio.sleep(1.5)  # at least one more failed reconnect
        bus.publish(event(title="still here"))
        assert (await anext(events)).data["title"] == "still here"
    unreachable = [r for r in caplog.records if "Redis unreachable" in r.getMessage()]
    assert len(unreachable) == 1


@pytest.mark.live
@needs_redis
async def test_note_events_cross_two_server_processes(tmp_path: Path) -> None:
    env = {
        "DATABASE_URL": f"sqlite://{tmp_path}/shared.sqlite3",
        "REDIS_URL": REDIS_URL,
    }
    # The first server migrates the shared file; the second finds nothing to do.
    with live_server(tmp_path, **env) as one_server, live_server(tmp_path, **env) as two_server:
        one, two = one_server.url, two_server.url
        async with aiohttp.ClientSession() as session:
            variables = {"email": "ada@example.com", "password": "correct horse"}
            pair = (await post(session, one, REGISTER, variables))["data"]["register"]
            token = pair["accessToken"]
            async with session.ws_connect(f"{two}/graphql", protocols=[PROTOCOL]) as ws:
                init = {"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}}
                await ws.send_json(init)
                assert (await ws.receive_json(timeout=5))["type"] == "connection_ack"
                await ws.send_json({"id": "1", "type": "subscribe", "payload": {"query": EVENTS}})
                # Server two may still be joining the channel: publish until an event arrives.
                received = None
                for attempt in range(10):
                    title = f"from server one #{attempt}"
                    await post(session, one, CREATE, {"t": title, "b": ""}, token=token)
                    with contextlib.suppress(TimeoutError):
                        received = await ws.receive_json(timeout=1)
                        break
                assert received is not None, "no event crossed from server one to server two"
                note = received["payload"]["data"]["noteEvents"]
                assert note["kind"] == "created"
                assert note["note"]["title"].startswith("from server one")
                assert note["note"]["owner"]["email"] == "ada@example.com"
