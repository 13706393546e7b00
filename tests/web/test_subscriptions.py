"""noteEvents over graphql-transport-ws: the token in connection_init, close codes, events."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import aiohttp
import pytest

from api.clock import FrozenClock
from api.web.appkeys import SERVICES_KEY
from tests.helpers.api import Api, StartApi, make_admin
from tests.helpers.notes import CREATE, DELETE, UPDATE, create_note
from tests.helpers.sockets import (
    EVENTS,
    PROTOCOL,
    bearer,
    closed,
    next_event,
    open_socket,
    subscribe,
)


async def test_events_on_own_notes_only(api: Api) -> None:
    ada = await api.register()
    eve = await api.register("eve@example.com", "eve password")
    admin = await make_admin(api)
    ada_ws = await subscribe(api, ada["accessToken"])
    eve_ws = await subscribe(api, eve["accessToken"])

    await create_note(api, eve["accessToken"], "eve's")
    note_id = await create_note(api, ada["accessToken"], "ada's")
    created = await next_event(ada_ws)  # eve's note never reached ada: this is the first
    assert created["kind"] == "created"
    assert created["note"]["title"] == "ada's"
    assert created["note"]["owner"] == {"id": ada["user"]["id"], "email": "ada@example.com"}
    assert (await next_event(eve_ws))["note"]["title"] == "eve's"

    await api.gql(UPDATE, {"id": note_id, "b": "changed"}, token=ada["accessToken"])
    updated = await next_event(ada_ws)
    assert (updated["kind"], updated["note"]["body"]) == ("updated", "changed")
    await api.gql(DELETE, {"id": note_id}, token=ada["accessToken"])
    deleted = await next_event(ada_ws)
    assert (deleted["kind"], deleted["note"]["id"]) == ("deleted", note_id)
    assert deleted["note"]["body"] == "changed"  # the note as it was

    # An admin deleting ada's note: ada hears of it; nobody else's socket does.
    other_id = await create_note(api, ada["accessToken"], "second")
    assert (await next_event(ada_ws))["kind"] == "created"
    await api.gql(DELETE, {"id": other_id}, token=admin["accessToken"])
    assert (await next_event(ada_ws))["kind"] == "deleted"
    with pytest.raises(asyncio.TimeoutError):
        await eve_ws.receive_json(timeout=0.3)

    await ada_ws.close()
    await eve_ws.close()
    for _ in range(100):
        if api.app[SERVICES_KEY].events.subscriber_count() == 0:
            break
        await asyncio.sleep(0.01)
    assert api.app[SERVICES_KEY].events.subscriber_count() == 0


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ({}, "UNAUTHENTICATED"),
        ({"Authorization": ""}, "UNAUTHENTICATED"),
        ({"Authorization": "Bearer not.a.token"}, "INVALID_TOKEN"),
        ({"Authorization": "Basic YWRhOnB3"}, "INVALID_TOKEN"),
        ({"Authorization": 42}, "INVALID_TOKEN"),
    ],
    ids=["no-token", "empty", "garbage", "not-bearer", "not-a-string"],
)
async def test_bad_connection_init_is_refused_with_4403(
    api: Api, payload: dict[str, Any], reason: str
) -> None:
    ws = await open_socket(api, payload)
    assert await closed(ws) == (4403, reason)


async def test_expired_token_is_refused_at_connect(start_api: StartApi, clock: FrozenClock) -> None:
    api = await start_api(clock=clock, ACCESS_TOKEN_TTL="60", JWT_LEEWAY="0")
    pair = await api.register()
    clock.advance(61)
    ws = await open_socket(api, bearer(pair["accessToken"]))
    assert await closed(ws) == (4403, "TOKEN_EXPIRED")


async def test_revoked_token_is_refused_at_connect(api: Api) -> None:
    pair = await api.register()
    await api.gql("mutation { logout }", token=pair["accessToken"])
    ws = await open_socket(api, {"authorization": f"Bearer {pair['accessToken']}"})
    assert await closed(ws) == (4403, "TOKEN_REVOKED")


async def test_open_socket_closes_with_4401_when_the_token_expires(
    start_api: StartApi, clock: FrozenClock
) -> None:
    api = await start_api(clock=clock, ACCESS_TOKEN_TTL="60", JWT_LEEWAY="0")
    pair = await api.register()
    ws = await subscribe(api, pair["accessToken"])
    clock.advance(59)
    with pytest.raises(asyncio.TimeoutError):  # still good: nothing happens
        await ws.receive(timeout=1.0)
    clock.advance(1)
    started = time.monotonic()
    assert await closed(ws) == (4401, "TOKEN_EXPIRED")
    assert time.monotonic() - started < 2


async def test_open_socket_closes_with_4401_after_logout(api: Api) -> None:
    pair = await api.register()
    ws = await subscribe(api, pair["accessToken"])
    started = time.monotonic()
    assert (await api.gql("mutation { logout }", token=pair["accessToken"]))["data"]["logout"]
    assert await closed(ws) == (4401, "TOKEN_REVOKED")
    assert time.monotonic() - started < 2


async def test_deactivation_closes_the_users_sockets(api: Api) -> None:
    admin = await make_admin(api)
    pair = await api.register()
    ws = await subscribe(api, pair["accessToken"])
    await api.gql(
        "mutation($u: ID!) { setUserActive(userId: $u, active: false) { id } }",
        {"u": pair["user"]["id"]},
        token=admin["accessToken"],
    )
    assert await closed(ws) == (4401, "TOKEN_REVOKED")


async def test_subscribe_before_connection_init_is_refused(api: Api) -> None:
    ws = await api.client.ws_connect("/graphql", protocols=[PROTOCOL])
    await ws.send_json({"id": "1", "type": "subscribe", "payload": {"query": EVENTS}})
    assert (await closed(ws))[0] == 4401  # the protocol's own "Unauthorized"


@pytest.mark.parametrize("payload", [{"query": None}, {"query": 5}, {"query": ["x"]}, "x"])
async def test_a_subscribe_without_a_document_is_an_invalid_message(
    api: Api, payload: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """No text and no named document: the protocol's 4400, not a traceback in the log and an
    INTERNAL_SERVER_ERROR (or a silent `complete`) per message."""
    token = (await api.register())["accessToken"]
    ws = await open_socket(api, bearer(token))
    assert await ws.receive_json(timeout=2) == {"type": "connection_ack"}
    with caplog.at_level(logging.ERROR):
        await ws.send_json({"id": "1", "type": "subscribe", "payload": payload})
        assert (await closed(ws))[0] == 4400
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_only_graphql_transport_ws_is_spoken(api: Api) -> None:
    ws = await api.client.ws_connect("/graphql", protocols=["graphql-ws"])
    assert (await closed(ws))[0] == 4406


async def test_other_operations_over_the_socket_use_its_viewer(api: Api) -> None:
    pair = await api.register()
    ws = await open_socket(api, bearer(pair["accessToken"]))
    assert await ws.receive_json(timeout=2) == {"type": "connection_ack"}
    await ws.send_json({"id": "q", "type": "subscribe", "payload": {"query": "{ me { email } }"}})
    message = await ws.receive_json(timeout=2)
    assert message["payload"]["data"] == {"me": {"email": "ada@example.com"}}
    assert (await ws.receive_json(timeout=2))["type"] == "complete"
    await ws.send_json(
        {
            "id": "c",
            "type": "subscribe",
            "payload": {"query": CREATE, "variables": {"t": "over ws", "b": ""}},
        }
    )
    created = await ws.receive_json(timeout=2)
    assert created["payload"]["data"]["createNote"]["owner"]["email"] == "ada@example.com"
    await ws.close()


async def test_websocket_origins_follow_cors_origins(start_api: StartApi) -> None:
    api = await start_api(CORS_ORIGINS="https://app.example.com")
    pair = await api.register()
    allowed = await api.client.ws_connect(
        "/graphql", protocols=[PROTOCOL], headers={"Origin": "https://app.example.com"}
    )
    await allowed.send_json({"type": "connection_init", "payload": bearer(pair["accessToken"])})
    assert await allowed.receive_json(timeout=2) == {"type": "connection_ack"}
    await allowed.close()
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await api.client.ws_connect(
            "/graphql", protocols=[PROTOCOL], headers={"Origin": "https://evil.example"}
        )
    assert refused.value.status == 403


async def test_shutdown_says_goodbye_to_open_sockets(api: Api) -> None:
    pair = await api.register()
    ws = await subscribe(api, pair["accessToken"])
    started = time.monotonic()
    await api.client.server.close()
    assert await closed(ws) == (1001, "Server shutting down")
    assert time.monotonic() - started < 2
