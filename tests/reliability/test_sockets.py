"""WebSockets on their own limit; a POST claiming `Upgrade: websocket` is an ordinary request;
a socket that never sends connection_init is closed."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import aiohttp
import pytest

from tests.conftest import LOGIN, Api, code
from tests.test_subscriptions import PROTOCOL, bearer, closed, open_socket

StartApi = Callable[..., Awaitable[Api]]
CREDENTIALS = {"email": "ada@example.com", "password": "correct horse"}


async def test_a_post_claiming_a_websocket_upgrade_counts_against_max_in_flight(
    start_api: StartApi,
) -> None:
    api = await start_api(MAX_IN_FLIGHT="2")
    await api.register(**CREDENTIALS)
    results = await asyncio.gather(
        *(api.post(LOGIN, CREDENTIALS, Upgrade="websocket") for _ in range(12))
    )
    statuses = [status for status, _, _ in results]
    assert set(statuses) == {200, 503}, statuses
    assert all(code(body) == "SERVICE_UNAVAILABLE" for status, body, _ in results if status == 503)


async def test_open_sockets_do_not_count_against_max_in_flight(start_api: StartApi) -> None:
    api = await start_api(MAX_IN_FLIGHT="1")
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
