"""WebSockets on their own limit; a POST claiming `Upgrade: websocket` is an ordinary request;
a socket that never sends connection_init is closed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest

from tests.helpers.api import Api, StartApi
from tests.helpers.graphql import LOGIN, code
from tests.helpers.sockets import PROTOCOL, bearer, closed, open_socket

CREDENTIALS = {"email": "ada@example.com", "password": "correct horse"}


async def test_a_post_claiming_a_websocket_upgrade_counts_against_its_lanes_budget(
    start_api: StartApi,
) -> None:
    api = await start_api(MAX_IN_FLIGHT_SIGN_IN="2")  # a login: the sign-in lane
    await api.register(**CREDENTIALS)
    results = await asyncio.gather(
        *(api.post(LOGIN, CREDENTIALS, Upgrade="websocket") for _ in range(12))
    )
    statuses = [status for status, _, _ in results]
    assert set(statuses) == {200, 503}, statuses
    assert all(code(body) == "SERVICE_UNAVAILABLE" for status, body, _ in results if status == 503)


async def test_open_sockets_do_not_count_against_max_in_flight(start_api: StartApi) -> None:
    api = await start_api(MAX_IN_FLIGHT="1", MAX_IN_FLIGHT_SIGN_IN="1")
    token = (await api.register(**CREDENTIALS))["accessToken"]
    sockets = [await open_socket(api, bearer(token)) for _ in range(3)]
    for ws in sockets:
        assert await ws.receive_json(timeout=2) == {"type": "connection_ack"}
    assert "errors" not in await api.gql(LOGIN, CREDENTIALS)
    for ws in sockets:
        await ws.close()


async def test_sockets_past_max_websockets_are_refused(start_api: StartApi) -> None:
    api = await start_api(MAX_WEBSOCKETS="2")
    token = (await api.register(**CREDENTIALS))["accessToken"]
    sockets = [await open_socket(api, bearer(token)) for _ in range(2)]
    for ws in sockets:
        assert await ws.receive_json(timeout=2) == {"type": "connection_ack"}
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await api.client.ws_connect("/graphql", protocols=[PROTOCOL])
    assert refused.value.status == 503
    assert refused.value.headers is not None and refused.value.headers["Retry-After"] == "1"
    await sockets[0].close()
    # The closed socket's slot comes back (once the server has seen the close).
    for _ in range(100):
        try:
            ws = await api.client.ws_connect("/graphql", protocols=[PROTOCOL])
            break
        except aiohttp.WSServerHandshakeError:
            await asyncio.sleep(0.02)
    else:
        raise AssertionError("the closed socket's slot never came back")
    await ws.close()
    await sockets[1].close()


async def test_a_socket_that_never_says_connection_init_is_closed(start_api: StartApi) -> None:
    api = await start_api(WS_INIT_TIMEOUT="0.2")
    ws = await api.client.ws_connect("/graphql", protocols=[PROTOCOL])
    # graphql-transport-ws: 4408 "Connection initialisation timeout".
    assert (await closed(ws, within=5))[0] == 4408


async def _held_request(api: Api, release: asyncio.Event) -> int:
    """A POST whose body arrives only once `release` is set: it holds an in-flight slot."""

    async def body() -> AsyncIterator[bytes]:
        yield b'{"query": '  # the client sends the headers with the first chunk
        await release.wait()
        yield b'"{ __typename }"}'

    resp = await api.client.post(
        "/graphql", data=body(), headers={"Content-Type": "application/json"}
    )
    return resp.status


@pytest.mark.parametrize(
    ("key", "version"),
    [("x", "13"), ("dGhlIHNhbXBsZSBub25jZQ==", "99")],
    ids=["bad-key", "bad-version"],
)
async def test_a_get_with_a_fake_handshake_counts_against_max_in_flight(
    start_api: StartApi, key: str, version: str
) -> None:
    """Headers naming a WebSocket that aiohttp would refuse make an ordinary GET query."""
    api = await start_api(MAX_IN_FLIGHT="1")
    release = asyncio.Event()
    held = asyncio.create_task(_held_request(api, release))
    headers = {
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": key,
        "Sec-WebSocket-Version": version,
    }
    for _ in range(100):  # until the held POST has reached the server and taken the slot
        resp = await api.client.get("/graphql", params={"query": "{ __typename }"}, headers=headers)
        status = resp.status
        if status == 503:
            break
        await asyncio.sleep(0.02)
    release.set()
    assert await held == 200
    assert status == 503, await resp.text()


async def test_one_user_holds_at_most_max_websockets_per_user(start_api: StartApi) -> None:
    api = await start_api(MAX_WEBSOCKETS_PER_USER="2")
    ada = (await api.register(**CREDENTIALS))["accessToken"]
    eve = (await api.register("eve@example.com", "eve password"))["accessToken"]
    sockets = [await open_socket(api, bearer(ada)) for _ in range(2)]
    for ws in sockets:
        assert await ws.receive_json(timeout=2) == {"type": "connection_ack"}
    third = await open_socket(api, bearer(ada))
    assert await closed(third) == (4429, "RATE_LIMITED")
    other = await open_socket(api, bearer(eve))  # another user is not affected
    assert await other.receive_json(timeout=2) == {"type": "connection_ack"}
    await sockets[0].close()
    # The closed socket's count comes back (once the server has seen the close).
    for _ in range(100):
        again = await open_socket(api, bearer(ada))
        message = await again.receive(timeout=2)
        if message.type is aiohttp.WSMsgType.TEXT:
            assert message.json() == {"type": "connection_ack"}
            break
        await asyncio.sleep(0.02)
    else:
        raise AssertionError("the closed socket's count never came back")
    for ws in (again, other, sockets[1]):
        await ws.close()


async def test_one_address_opens_at_most_max_websockets_per_ip(start_api: StartApi) -> None:
    api = await start_api(MAX_WEBSOCKETS_PER_IP="2", TRUSTED_PROXIES="127.0.0.1")
    one = {"X-Forwarded-For": "203.0.113.9"}
    sockets = [
        await api.client.ws_connect("/graphql", protocols=[PROTOCOL], headers=one) for _ in range(2)
    ]
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await api.client.ws_connect("/graphql", protocols=[PROTOCOL], headers=one)
    assert refused.value.status == 429
    assert refused.value.headers is not None and refused.value.headers["Retry-After"] == "1"
    other = {"X-Forwarded-For": "198.51.100.7"}  # another client behind the same proxy
    ws = await api.client.ws_connect("/graphql", protocols=[PROTOCOL], headers=other)
    for socket in (ws, *sockets):
        await socket.close()
