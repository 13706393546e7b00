"""What must hold across replicas, seen from a client of the proxy: revocation, rotation,
rate limits, subscription events and the client's recorded address."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import aiohttp
import pytest

from tests.helpers.graphql import LOGIN, REFRESH, REGISTER, SESSIONS, code
from tests.helpers.live import LIVE, unique_email
from tests.helpers.notes import CREATE
from tests.helpers.replicas import NAMES, Client, Rig, client_address, client_session
from tests.helpers.sockets import EVENTS, PROTOCOL

pytestmark = [pytest.mark.live, pytest.mark.slow]

PASSWORD = "correct horse battery"
LOGOUT = "mutation { logout }"


async def register(client: Client) -> dict[str, Any]:
    body = await client.gql(REGISTER, {"email": unique_email(), "password": PASSWORD})
    assert "errors" not in body, body
    return body["data"]["register"]  # type: ignore[no-any-return]


async def test_a_logout_on_one_replica_is_refused_on_the_other_from_the_next_request(
    rig: Rig,
) -> None:
    ip = client_address()
    async with client_session(ip) as http:
        client = rig.client(http, ip)
        pair = await register(client)
        served = {(await client.call(LIVE, token=pair["accessToken"])).replica for _ in NAMES}
        assert served == set(NAMES)  # the token works on both before
        logout = await client.call(LOGOUT, token=pair["accessToken"])
        assert logout.body == {"data": {"logout": True}}
        after = [await client.call(LIVE, token=pair["accessToken"]) for _ in range(4)]
    assert after[0].replica != logout.replica  # round robin: the very next one is the other
    assert [code(answer.body) for answer in after] == ["TOKEN_REVOKED"] * 4
    assert {answer.replica for answer in after} == set(NAMES)


async def test_concurrent_refreshes_over_both_replicas_have_one_winner_and_end_the_session(
    rig: Rig,
) -> None:
    ip = client_address()
    async with client_session(ip) as http:
        client = rig.client(http, ip)
        pair = await register(client)
        answers = await asyncio.gather(
            *(client.call(REFRESH, {"t": pair["refreshToken"]}) for _ in range(12))
        )
        winners = [answer for answer in answers if "errors" not in answer.body]
        won = winners[0].body["data"]["refresh"] if len(winners) == 1 else {}
        after_access = await client.gql(LIVE, token=won.get("accessToken"))
        after_refresh = await client.gql(REFRESH, {"t": won.get("refreshToken")})
    assert {answer.replica for answer in answers} == set(NAMES)
    assert len(winners) == 1
    losers = Counter(code(answer.body) for answer in answers if "errors" in answer.body)
    # A loser that arrives once reuse detection has ended the session finds it ended.
    assert losers["REFRESH_TOKEN_REUSED"] >= 1
    assert losers["REFRESH_TOKEN_REUSED"] + losers["TOKEN_REVOKED"] == 11
    # Reuse detection ended the session: the winner's pair is refused too, on any replica.
    assert code(after_access) == "TOKEN_REVOKED"
    assert code(after_refresh) == "TOKEN_REVOKED"


def outcomes(answers: list[Any]) -> Counter[str | None]:
    return Counter(code(answer.body) for answer in answers)


async def test_the_per_email_limit_holds_in_total_not_per_replica(rig: Rig) -> None:
    """5 failures per email (RATE_LIMIT_PER_EMAIL): 12 wrong passwords spread over both
    replicas get 5 password checks between them, not 5 each."""
    ip = client_address()
    async with client_session(ip) as http:
        client = rig.client(http, ip)
        email = unique_email()
        body = await client.gql(REGISTER, {"email": email, "password": PASSWORD})
        assert "errors" not in body, body
    guesser = client_address()  # not an address the owner signed in from
    async with client_session(guesser) as http:
        client = rig.client(http, guesser)
        wrong = {"email": email, "password": "wrong password"}
        answers = await asyncio.gather(*(client.call(LOGIN, wrong) for _ in range(12)))
    assert {answer.replica for answer in answers} == set(NAMES)
    assert outcomes(answers) == {"INVALID_CREDENTIALS": 5, "RATE_LIMITED": 7}


async def test_the_per_ip_limit_holds_in_total_not_per_replica(rig: Rig) -> None:
    """20 calls per IP (RATE_LIMIT_PER_IP): 26 logins from one address, each for another
    email, spread over both replicas: 20 are answered, 6 refused."""
    ip = client_address()
    async with client_session(ip) as http:
        client = rig.client(http, ip)
        answers = await asyncio.gather(
            *(
                client.call(LOGIN, {"email": unique_email(), "password": "wrong password"})
                for _ in range(26)
            )
        )
    assert {answer.replica for answer in answers} == set(NAMES)
    assert outcomes(answers) == {"INVALID_CREDENTIALS": 20, "RATE_LIMITED": 6}


async def _next_note_event(ws: aiohttp.ClientWebSocketResponse, timeout: float) -> str:
    message = await ws.receive_json(timeout=timeout)
    assert message["type"] == "next", message
    return message["payload"]["data"]["noteEvents"]["note"]["id"]  # type: ignore[no-any-return]


async def test_a_subscription_on_one_replica_receives_events_made_on_the_other(rig: Rig) -> None:
    ip = client_address()
    async with client_session(ip) as http:
        client = rig.client(http, ip)
        token = (await register(client))["accessToken"]
        ws = await http.ws_connect(f"{rig.url}/graphql", protocols=[PROTOCOL])
        try:
            init = {"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}}
            await ws.send_json(init)
            assert await ws.receive_json(timeout=5) == {"type": "connection_ack"}
            await ws.send_json({"id": "1", "type": "subscribe", "payload": {"query": EVENTS}})
            # Until the subscription listens (no server-side count to watch from here): make
            # notes until one event arrives.
            for _ in range(40):
                await client.call(CREATE, {"t": "warm-up", "b": "."}, token=token)
                try:
                    await _next_note_event(ws, 0.25)
                    break
                except TimeoutError:
                    continue
            else:
                raise AssertionError("the subscription never delivered an event")
            made: dict[str, str] = {}  # note id -> the replica that made it
            while set(made.values()) != set(NAMES):
                answer = await client.call(CREATE, {"t": "shared", "b": "."}, token=token)
                assert "errors" not in answer.body, answer.body
                made[answer.body["data"]["createNote"]["id"]] = answer.replica
            seen: set[str] = set()
            while not set(made) <= seen:
                seen.add(await _next_note_event(ws, 5))  # warm-up stragglers may come first
        finally:
            await ws.close()


async def test_sessions_record_the_clients_address_not_the_proxys(rig: Rig) -> None:
    """The proxy appends the address it saw to X-Forwarded-For; TRUSTED_PROXIES names the
    proxy, so the replicas record the client, and ignore what the client wrote there."""
    ip = client_address()
    forged = {"X-Forwarded-For": "203.0.113.9"}
    async with client_session(ip) as http:
        client = rig.client(http, ip)
        email = unique_email()
        credentials = {"email": email, "password": PASSWORD}
        answers = [await client.call(REGISTER, credentials, headers=forged)]
        answers.append(await client.call(LOGIN, credentials, headers=forged))
        token = answers[-1].body["data"]["login"]["accessToken"]
        sessions = (await client.gql(SESSIONS, token=token))["data"]["mySessions"]
    assert {answer.replica for answer in answers} == set(NAMES)  # one session made on each
    assert [session["ip"] for session in sessions] == [ip, ip]
