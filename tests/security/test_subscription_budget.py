"""One socket runs at most MAX_SUBSCRIPTIONS_PER_SOCKET subscriptions: with the sockets a user
may hold, that bounds how many events (and bytes) one note change fans out."""

from __future__ import annotations

from tests.helpers.api import StartApi
from tests.helpers.sockets import EVENTS, subscribe


async def test_a_socket_runs_a_bounded_number_of_subscriptions(start_api: StartApi) -> None:
    api = await start_api(MAX_SUBSCRIPTIONS_PER_SOCKET="3")
    pair = await api.register()
    ws = await subscribe(api, pair["accessToken"])  # subscription "1"
    for n in (2, 3):
        await ws.send_json({"id": str(n), "type": "subscribe", "payload": {"query": EVENTS}})
    await ws.send_json({"id": "4", "type": "subscribe", "payload": {"query": EVENTS}})
    answer = await ws.receive_json(timeout=2)
    assert answer["type"] == "error" and answer["id"] == "4", answer
    assert "limit" in answer["payload"][0]["message"].lower(), answer
    await ws.close()
