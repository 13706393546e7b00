"""Admission by lane: sign-ins, refreshes and sign-outs have budgets of their own, ordinary
operations are shed first (503, `Retry-After`), and naming a lane buys nothing.

Requests are held in progress with gates (no timing): a login waits in its password check,
a request with a bearer token waits in its token check.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from api.auth import passwords
from api.web.appkeys import ADMISSION_LAG_KEY, SERVICES_KEY
from api.web.overload import LoopLag
from tests.helpers.api import Api, StartApi
from tests.helpers.graphql import LOGIN, code
from tests.helpers.metrics import scrape, value

CREDENTIALS = {"email": "ada@example.com", "password": "correct horse"}
READ = "{ me { id roles } }"
SPOOFS = [
    # (body, why it is not a sign-in)
    ({"query": "# mutation login\n{ me { id roles } }", "operationName": "login"}, "a comment"),
    ({"query": "query login { me { id roles } }", "operationName": "login"}, "a query"),
    (
        {
            "query": 'mutation { login(email: "a", password: "b") { accessToken } '
            'createNote(title: "t", body: "b") { id } }'
        },
        "a sign-in beside another field",
    ),
    (  # over the classified size: not read before admission
        {"query": LOGIN, "variables": {**CREDENTIALS, "device": "x" * 5000}},
        "a body over the classified size",
    ),
]


@dataclass
class Gate:
    """Holds the calls of a coroutine method that `hold` says to hold, until opened."""

    hold: Any
    opened: asyncio.Event = field(default_factory=asyncio.Event)
    held: int = 0
    calls: int = 0
    arrived: asyncio.Condition = field(default_factory=asyncio.Condition)

    def wrap(self, method: Any) -> Any:
        async def gated(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            if self.hold(*args):
                async with self.arrived:
                    self.held += 1
                    self.arrived.notify_all()
                await self.opened.wait()
            return await method(*args, **kwargs)

        return gated

    async def wait_held(self, count: int) -> None:
        async with self.arrived:
            await self.arrived.wait_for(lambda: self.held >= count)


@pytest.fixture(autouse=True)
def steady_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    """The lag signals stay where a test puts them (no sampling task): a busy test machine
    must not shed the reads a test expects to pass."""

    async def idle(self: LoopLag) -> None:
        await asyncio.Event().wait()

    monkeypatch.setattr(LoopLag, "watch", idle)


@dataclass
class Held:
    api: Api
    token: str
    refresh_token: str
    logins: Gate
    reads: Gate


async def _held(start_api: StartApi, **settings: str) -> Held:
    api = await start_api(**settings)
    pair = await api.register(**CREDENTIALS)
    services = api.app[SERVICES_KEY]
    logins = Gate(hold=lambda *args: True)
    reads = Gate(hold=lambda authorization=None, *rest: authorization is not None)
    services.hasher.verify = logins.wrap(services.hasher.verify)  # type: ignore[method-assign]
    services.bearer.authenticate = reads.wrap(  # type: ignore[method-assign]
        services.bearer.authenticate
    )
    return Held(api, pair["accessToken"], pair["refreshToken"], logins, reads)


@pytest.fixture
async def tasks() -> AsyncIterator[list[asyncio.Task[Any]]]:
    started: list[asyncio.Task[Any]] = []
    yield started
    for task in started:
        task.cancel()
    await asyncio.gather(*started, return_exceptions=True)


def _refused(status: int, body: dict[str, Any], headers: Any) -> bool:
    return (
        status == 503
        and code(body) == "SERVICE_UNAVAILABLE"
        and headers["Retry-After"] == "1"
        and headers["Content-Type"].startswith("application/json")
    )


async def test_a_full_other_lane_still_admits_sign_ins_refreshes_and_sign_outs(
    start_api: StartApi, tasks: list[asyncio.Task[Any]]
) -> None:
    held = await _held(start_api, MAX_IN_FLIGHT="2")
    api = held.api
    held.logins.opened.set()
    tasks += [asyncio.create_task(api.post(READ, token=held.token)) for _ in range(2)]
    await held.reads.wait_held(2)

    assert _refused(*await api.post(READ, token=held.token))  # the third read
    status, body, _ = await api.post(LOGIN, CREDENTIALS)
    assert status == 200 and body["data"]["login"]["accessToken"], body
    answer = await api.refresh(held.refresh_token)
    assert answer["data"]["refresh"]["accessToken"], answer

    held.reads.opened.set()  # the held reads finish; reads are admitted again
    for status, body, _ in await asyncio.gather(*tasks):
        assert status == 200 and body["data"]["me"]["roles"], body
    tasks.clear()
    status, body, _ = await api.post(READ, token=held.token)
    assert status == 200 and "errors" not in body


@pytest.mark.parametrize(("spoof", "why"), SPOOFS, ids=[why for _, why in SPOOFS])
async def test_naming_a_sign_in_does_not_get_past_a_full_other_lane(
    start_api: StartApi, tasks: list[asyncio.Task[Any]], spoof: dict[str, Any], why: str
) -> None:
    """Refused at the door like any read: the view never runs for it (no token check)."""
    held = await _held(start_api, MAX_IN_FLIGHT="1")
    api = held.api
    held.logins.opened.set()
    tasks.append(asyncio.create_task(api.post(READ, token=held.token)))
    await held.reads.wait_held(1)
    calls = held.reads.calls
    resp = await api.client.post("/graphql", json=spoof)
    assert _refused(resp.status, await resp.json(), resp.headers), why
    assert held.reads.calls == calls  # refused before the view: no token check, no parse
    status, body, _ = await api.post(LOGIN, CREDENTIALS)  # the real one gets in
    assert status == 200 and "errors" not in body


async def test_each_priority_lane_has_its_own_budget(
    start_api: StartApi, tasks: list[asyncio.Task[Any]]
) -> None:
    held = await _held(start_api, MAX_IN_FLIGHT_SIGN_IN="1")
    api = held.api
    held.reads.opened.set()
    tasks.append(asyncio.create_task(api.post(LOGIN, CREDENTIALS)))
    await held.logins.wait_held(1)

    assert _refused(*await api.post(LOGIN, CREDENTIALS))  # the sign-in lane is full
    status, body, _ = await api.post(READ, token=held.token)
    assert status == 200 and "errors" not in body  # other lanes are not
    answer = await api.refresh(held.refresh_token)
    assert answer["data"]["refresh"]["accessToken"], answer

    held.logins.opened.set()
    ((status, body, _),) = await asyncio.gather(*tasks)
    tasks.clear()
    assert status == 200 and body["data"]["login"]["accessToken"], body


async def test_ordinary_operations_give_way_while_a_sign_in_waits_on_a_lagging_worker(
    start_api: StartApi, tasks: list[asyncio.Task[Any]]
) -> None:
    """Past SHED_LOOP_LAG, reads are shed while a sign-in (or refresh, sign-out) is in
    progress: they are what would make its turns of the loop long. Past MAX_LOOP_LAG they
    are shed at any time, so that a sign-in arriving meets a short queue."""
    held = await _held(start_api, SHED_LOOP_LAG="0.05", MAX_LOOP_LAG="0.3")
    api = held.api
    held.reads.opened.set()
    lag = api.app[ADMISSION_LAG_KEY]

    lag.sustained = 0.2  # lagging, but nothing of higher priority waits: reads are served
    status, body, _ = await api.post(READ, token=held.token)
    assert status == 200 and "errors" not in body
    lag.sustained = 0.5  # past MAX_LOOP_LAG: shed whatever waits
    assert _refused(*await api.post(READ, token=held.token))
    lag.sustained = 0.2

    tasks.append(asyncio.create_task(api.post(LOGIN, CREDENTIALS)))
    await held.logins.wait_held(1)
    assert _refused(*await api.post(READ, token=held.token))
    answer = await api.refresh(held.refresh_token)  # priority lanes are not shed by lag
    assert answer["data"]["refresh"]["accessToken"], answer

    lag.sustained = 0.01  # under SHED_LOOP_LAG: reads pass even while the sign-in waits
    status, body, _ = await api.post(READ, token=held.token)
    assert status == 200 and "errors" not in body

    held.logins.opened.set()
    ((status, body, _),) = await asyncio.gather(*tasks)
    tasks.clear()
    assert status == 200 and body["data"]["login"]["accessToken"], body


async def test_refusals_are_counted_not_logged_one_by_one(
    start_api: StartApi, tasks: list[asyncio.Task[Any]], caplog: pytest.LogCaptureFixture
) -> None:
    held = await _held(start_api, MAX_IN_FLIGHT="1")
    api = held.api
    held.logins.opened.set()
    tasks.append(asyncio.create_task(api.post(READ, token=held.token)))
    await held.reads.wait_held(1)
    caplog.clear()
    with caplog.at_level(logging.INFO):
        for _ in range(3):
            assert _refused(*await api.post(READ, token=held.token))
    access = [r for r in caplog.records if r.name == "graphgate.access"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert access == []
    assert warnings == ["overload: 1 other requests in progress; refusing new ones"]
    samples = await scrape(api)
    assert (
        value(
            samples, "graphgate_http_requests_total", method="POST", route="/graphql", status="503"
        )
        == 3
    )


async def test_hashes_waiting_for_a_thread_do_not_refuse_other_requests(
    start_api: StartApi, tasks: list[asyncio.Task[Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A few concurrent logins (wrong passwords too) must not refuse everyone else's
    requests: only the loop's lag sheds (above), not a hash waiting for a thread."""
    held = await _held(start_api, PASSWORD_HASH_THREADS="1", PASSWORD_HASH_MAX_WAIT="60")
    api = held.api
    held.reads.opened.set()
    held.logins.opened.set()
    hasher = api.app[SERVICES_KEY].hasher
    release = threading.Event()
    verify = passwords._CONTEXT.verify_and_update

    def slow_verify(*args: Any) -> Any:  # runs on the one hashing thread
        release.wait(timeout=60)
        return verify(*args)

    monkeypatch.setattr(passwords._CONTEXT, "verify_and_update", slow_verify)
    tasks += [asyncio.create_task(api.post(LOGIN, CREDENTIALS)) for _ in range(2)]
    for _ in range(500):  # until the second hash waits behind the first (bounded)
        if hasher.queued:
            break
        await asyncio.sleep(0.01)
    assert hasher.queued

    status, body, _ = await api.post(READ, token=held.token)
    assert status == 200 and "errors" not in body, body
    release.set()
    for status, body, _ in await asyncio.gather(*tasks):
        assert status == 200 and body["data"]["login"]["accessToken"], body
    tasks.clear()
    status, body, _ = await api.post(READ, token=held.token)
    assert status == 200 and "errors" not in body


async def test_a_login_sent_as_a_trusted_document_keeps_its_lane(
    start_api: StartApi, tasks: list[asyncio.Task[Any]], tmp_path: Path
) -> None:
    """An app that ships its login in the manifest sends only its id: the lane comes from the
    manifest's text, and a read sent by id is shed like any read."""
    login = (
        "mutation SignIn($email: String!, $password: String!) "
        "{ login(email: $email, password: $password) { accessToken } }"
    )
    read = "query Me { me { id roles } }"
    manifest = {hashlib.sha256(text.encode()).hexdigest(): text for text in (login, read)}
    path = tmp_path / "persisted-documents.json"
    path.write_text(json.dumps(manifest))
    held = await _held(start_api, MAX_IN_FLIGHT="1", TRUSTED_DOCUMENTS=str(path))
    api = held.api
    held.logins.opened.set()
    tasks.append(asyncio.create_task(api.post(READ, token=held.token)))
    await held.reads.wait_held(1)
    ids = {text: f"sha256:{digest}" for digest, text in manifest.items()}
    resp = await api.client.post(
        "/graphql",
        json={"documentId": ids[read]},
        headers={"Authorization": f"Bearer {held.token}"},
    )
    assert _refused(resp.status, await resp.json(), resp.headers)
    resp = await api.client.post(
        "/graphql", json={"documentId": ids[login], "variables": CREDENTIALS}
    )
    body = await resp.json()
    assert resp.status == 200 and body["data"]["login"]["accessToken"], body
    apq = {"persistedQuery": {"version": 1, "sha256Hash": ids[login].removeprefix("sha256:")}}
    resp = await api.client.post("/graphql", json={"extensions": apq, "variables": CREDENTIALS})
    body = await resp.json()
    assert resp.status == 200 and body["data"]["login"]["accessToken"], body


async def test_a_refused_connection_is_not_read_again_until_its_retry_after(
    start_api: StartApi,
) -> None:
    """A flood's connections send again as soon as they are answered: a connection whose
    request was shed is not read again until its `Retry-After` (a second), so the loop is not
    spent refusing it again and again; another connection is read at once."""
    held = await _held(start_api, SHED_LOOP_LAG="0.05", MAX_LOOP_LAG="0.3")
    api = held.api
    held.reads.opened.set()
    lag = api.app[ADMISSION_LAG_KEY]
    url = api.client.make_url("/graphql")
    request = {"json": {"query": READ}, "headers": {"Authorization": f"Bearer {held.token}"}}
    loop = asyncio.get_running_loop()

    async def post(session: aiohttp.ClientSession) -> tuple[int, float]:
        async with session.post(url, **request) as response:
            await response.read()
            return response.status, loop.time()

    one_connection = aiohttp.TCPConnector(limit=1)
    async with (
        aiohttp.ClientSession(connector=one_connection) as shed,
        aiohttp.ClientSession() as other,
    ):
        lag.sustained = 0.5  # past MAX_LOOP_LAG: reads are shed
        status, _ = await post(shed)
        assert status == 503
        lag.sustained = 0.0
        started = loop.time()
        again, elsewhere = await asyncio.gather(post(shed), post(other))
    assert again[0] == elsewhere[0] == 200
    assert elsewhere[1] < again[1]  # the new connection was answered first
    assert again[1] - started >= 0.9  # the refused one was read after its Retry-After


def _raw_post(body: dict[str, Any]) -> bytes:
    data = json.dumps(body).encode()
    head = (
        "POST /graphql HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(data)}\r\n\r\n"
    )
    return head.encode() + data


async def test_a_held_off_connection_keeps_aiohttps_own_read_limits(
    start_api: StartApi, tasks: list[asyncio.Task[Any]]
) -> None:
    """aiohttp stops reading a connection whose pipelined requests it cannot queue (and a body
    or WebSocket it cannot buffer) until they drain: the hold-off's end must not resume
    reading under it, or one connection's bytes pile up in the worker without bound."""
    held = await _held(start_api, MAX_IN_FLIGHT="1")
    api = held.api
    # One ordinary request in progress: the lane is full, the next ordinary one is refused.
    tasks.append(asyncio.create_task(api.post(READ, token=held.token)))
    await held.reads.wait_held(1)
    reader, writer = await asyncio.open_connection(api.client.host, api.client.port)
    try:
        # Refused (held off), then a sign-in that stays in progress, then more than aiohttp
        # queues behind it: it stops reading until they drain.
        refused, sign_in = (
            _raw_post({"query": READ}),
            _raw_post({"query": LOGIN, "variables": CREDENTIALS}),
        )
        filler = _raw_post({"query": READ}) * 2000
        writer.write(refused + sign_in + filler)
        await writer.drain()
        await held.logins.wait_held(1)
        await asyncio.sleep(1.5)  # past the hold-off
        sent, chunk, budget = 0, b" " * (1 << 20), 32 << 20
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 3
        while sent < budget and loop.time() < deadline:
            writer.write(chunk)
            try:
                await asyncio.wait_for(writer.drain(), deadline - loop.time())
            except TimeoutError:
                break
            sent += len(chunk)
        # Kernel buffers take a few MiB; a worker reading on takes it all.
        assert sent < budget // 2, f"{sent >> 20} MiB read from a connection aiohttp paused"
    finally:
        writer.transport.abort()
        held.logins.opened.set()
        held.reads.opened.set()


async def test_a_trusted_proxys_connection_is_not_held_off(start_api: StartApi) -> None:
    """A proxy's connection to the worker carries many clients' requests, one after another
    (HAProxy's `http-reuse`, nginx's upstream keepalive): held off after a flood's request was
    refused on it, it would delay the next client's sign-in by a second."""
    held = await _held(
        start_api, SHED_LOOP_LAG="0.05", MAX_LOOP_LAG="0.3", TRUSTED_PROXIES="127.0.0.1"
    )
    api = held.api
    held.reads.opened.set()
    held.logins.opened.set()
    lag = api.app[ADMISSION_LAG_KEY]
    url = api.client.make_url("/graphql")
    loop = asyncio.get_running_loop()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1)) as proxy:
        lag.sustained = 0.5  # past MAX_LOOP_LAG: reads are shed
        flood = {"query": READ}
        async with proxy.post(url, json=flood, headers={"X-Forwarded-For": "192.0.2.1"}) as shed:
            assert shed.status == 503
        started = loop.time()
        sign_in = {"query": LOGIN, "variables": CREDENTIALS}
        async with proxy.post(url, json=sign_in, headers={"X-Forwarded-For": "192.0.2.2"}) as ok:
            body = await ok.json()
    assert body["data"]["login"]["accessToken"], body
    assert loop.time() - started < 0.9  # read at once, not after the flood's Retry-After
