"""graphql-transport-ws from the client side: open, subscribe, read events and close codes."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp

from api.web.appkeys import SERVICES_KEY
from tests.helpers.api import Api

PROTOCOL = "graphql-transport-ws"
EVENTS = "subscription { noteEvents { kind note { id title body owner { id email } } } }"


async def open_socket(api: Api, payload: dict[str, Any] | None) -> aiohttp.ClientWebSocketResponse:
    """A socket to /graphql that has sent connection_init with `payload`."""
    ws = await api.client.ws_connect("/graphql", protocols=[PROTOCOL])
    await ws.send_json({"type": "connection_init", "payload": payload or {}})
    return ws


def bearer(token: str) -> dict[str, str]:
    """A connection_init payload carrying an access token."""
    return {"Authorization": f"Bearer {token}"}


async def subscribe(api: Api, token: str) -> aiohttp.ClientWebSocketResponse:
    """An acknowledged socket with a live noteEvents subscription (id "1")."""
    ws = await open_socket(api, bearer(token))
    assert await ws.receive_json(timeout=2) == {"type": "connection_ack"}
    before = api.app[SERVICES_KEY].events.subscriber_count()
    await ws.send_json({"id": "1", "type": "subscribe", "payload": {"query": EVENTS}})
    # Wait until the subscription listens, so no event is published before it does.
    for _ in range(200):
        if api.app[SERVICES_KEY].events.subscriber_count() > before:
            return ws
        await asyncio.sleep(0.01)
    raise AssertionError("the subscription never started")


async def next_event(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    """The next noteEvents payload, which must be an event and not an error."""
    message = await ws.receive_json(timeout=2)
    assert message["type"] == "next", message
    assert "errors" not in message["payload"], message
    return message["payload"]["data"]["noteEvents"]  # type: ignore[no-any-return]


async def closed(ws: aiohttp.ClientWebSocketResponse, within: float = 2.0) -> tuple[int, str]:
    """Wait for the server to close the socket; its close code and reason."""
    message = await ws.receive(timeout=within)
    assert message.type is aiohttp.WSMsgType.CLOSE, message
    return int(message.data), message.extra or ""  # the code in the server's close frame
