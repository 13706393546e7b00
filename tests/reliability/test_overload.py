"""Overload: a flood turns into quick SERVICE_UNAVAILABLE answers, not unbounded waiting."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from api.web.appkeys import SERVICES_KEY
from tests.helpers.api import Api
from tests.helpers.graphql import LOGIN, code

CREDENTIALS = {"email": "ada@example.com", "password": "correct horse"}


async def _timed_login(api: Api) -> tuple[int, dict[str, Any], Any, float]:
    started = time.monotonic()
    status, body, headers = await api.post(LOGIN, CREDENTIALS)
    return status, body, headers, time.monotonic() - started


async def test_requests_past_their_lanes_budget_get_503_at_once(
    start_api: Callable[..., Awaitable[Api]],
) -> None:
    api = await start_api(MAX_IN_FLIGHT_SIGN_IN="2")
    await api.register(**CREDENTIALS)
    results = await asyncio.gather(*(_timed_login(api) for _ in range(12)))
    served = [r for r in results if r[0] == 200]
    refused = [r for r in results if r[0] == 503]
    assert len(served) + len(refused) == 12
    assert len(served) >= 2 and refused
    assert all("errors" not in body for _, body, _, _ in served)
    slowest_served = max(elapsed for *_, elapsed in served)
    for _, body, headers, elapsed in refused:
        assert code(body) == "SERVICE_UNAVAILABLE"
        assert headers["Retry-After"] == "1"
        assert headers["Content-Type"].startswith("application/json")
        assert elapsed < slowest_served  # refused without waiting its turn
    # Health checks are never shed, and the limit frees up once the flood is over.
    assert (await api.client.get("/healthz")).status == 200
    assert "errors" not in (await api.gql(LOGIN, CREDENTIALS))


async def test_a_login_flood_past_the_hashing_queue_is_refused_quickly(
    start_api: Callable[..., Awaitable[Api]],
) -> None:
    api = await start_api(PASSWORD_HASH_THREADS="1", PASSWORD_HASH_QUEUE="3")
    await api.register(**CREDENTIALS)
    results = await asyncio.gather(*(_timed_login(api) for _ in range(30)))
    codes = [code(body) for _, body, _, _ in results]
    assert set(codes) <= {None, "SERVICE_UNAVAILABLE"}, codes
    assert codes.count(None) >= 4  # one hashing + three waiting, at least
    assert codes.count("SERVICE_UNAVAILABLE") >= 10
    slowest_served = max(r[3] for r in results if code(r[1]) is None)
    assert all(r[3] < slowest_served for r in results if code(r[1]) is not None)


async def test_logins_that_could_not_start_within_the_max_wait_are_refused_at_once(
    start_api: Callable[..., Awaitable[Api]],
) -> None:
    """The queue follows the pace hashing really has: at most PASSWORD_HASH_MAX_WAIT of it."""
    api = await start_api(PASSWORD_HASH_THREADS="1", PASSWORD_HASH_MAX_WAIT="0.3")
    await api.register(**CREDENTIALS)
    await api.login(**CREDENTIALS)  # the hasher has now measured a real hash
    results = await asyncio.gather(*(_timed_login(api) for _ in range(40)))
    codes = [code(body) for _, body, _, _ in results]
    assert set(codes) <= {None, "SERVICE_UNAVAILABLE"}, codes
    assert codes.count(None) >= 3
    assert codes.count("SERVICE_UNAVAILABLE") >= 20  # 40 hashes would take ~1 s on one thread
    slowest_served = max(r[3] for r in results if code(r[1]) is None)
    assert all(r[3] < slowest_served for r in results if code(r[1]) is not None)


async def _with_busy_loop(operation: Awaitable[dict[str, Any]]) -> dict[str, Any]:
    """Run `operation` while the event loop is hogged 0.3 s at a time, as a flood would."""
    stop = asyncio.Event()

    async def hog() -> None:
        while not stop.is_set():
            time.sleep(0.3)  # blocking on purpose: this is what saturation looks like
            await asyncio.sleep(0)

    task = asyncio.create_task(hog())
    try:
        return await operation
    finally:
        stop.set()
        await task


async def test_an_operation_cut_short_on_a_saturated_worker_is_service_unavailable(
    start_api: Callable[..., Awaitable[Api]],
) -> None:
    api = await start_api(EXECUTION_TIMEOUT="1")
    await api.register(**CREDENTIALS)
    body = await _with_busy_loop(api.gql(LOGIN, CREDENTIALS))
    assert code(body) == "SERVICE_UNAVAILABLE", body  # "retry later", not "change your query"
    assert "errors" not in await api.gql(LOGIN, CREDENTIALS)  # and it recovers


async def test_an_operation_cut_short_on_an_idle_worker_is_query_too_complex(
    start_api: Callable[..., Awaitable[Api]],
) -> None:
    """The loop is free, the operation itself is slow: that is the operation's cost."""
    api = await start_api(EXECUTION_TIMEOUT="1", PASSWORD_HASH_THREADS="1")
    await api.register(**CREDENTIALS)

    def slow_hash(*_: object) -> object:
        time.sleep(1.5)  # in the hashing thread: the event loop stays free
        return (True, None)

    api.app[SERVICES_KEY].hasher._timed = slow_hash  # type: ignore[method-assign]
    body = await api.gql(LOGIN, CREDENTIALS)
    assert code(body) == "QUERY_TOO_COMPLEX", body


async def test_sign_ins_cut_short_while_hashes_queue_are_service_unavailable(
    start_api: Callable[..., Awaitable[Api]],
) -> None:
    """Waiting for a hashing thread is the server being short of CPU: "retry later"."""
    api = await start_api(
        EXECUTION_TIMEOUT="1", PASSWORD_HASH_THREADS="1", PASSWORD_HASH_MAX_WAIT="30"
    )
    await api.register(**CREDENTIALS)

    def slow_hash(*_: object) -> object:
        time.sleep(0.8)  # in the hashing thread: the event loop stays free
        return (True, None)

    api.app[SERVICES_KEY].hasher._timed = slow_hash  # type: ignore[method-assign]
    bodies = await asyncio.gather(*(api.gql(LOGIN, CREDENTIALS) for _ in range(3)))
    codes = sorted(str(code(body)) for body in bodies)
    # The first hash ends in time; the others waited behind it and were cut.
    assert codes[-1] == "SERVICE_UNAVAILABLE", codes
    assert "QUERY_TOO_COMPLEX" not in codes, codes
