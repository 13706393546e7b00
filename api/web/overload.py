"""Load shedding: GraphQL requests in progress per worker are bounded per admission lane
(schema/admission.py: sign-in, refresh, sign-out, other), and MAX_WEBSOCKETS sockets.

Tortoise hands out pooled connections with no limit on the wait, and every waiting request
holds memory: past its lane's bound, a new request is answered at once with 503, the contract
code SERVICE_UNAVAILABLE and `Retry-After`, so a flood costs quick refusals, not growing
latency. Each lane has its own budget, so a flood of ordinary operations is shed while
sign-ins, refreshes and sign-outs still get in (api/web/admission.py reads the lane).
WebSockets live long, so they count on their own limit, and at most MAX_WEBSOCKETS_PER_IP
come from one client address (an IPv6 client's /64); only a handshake aiohttp would accept
is a socket. The health endpoints are not counted.

LoopLag tells a saturated worker from a slow operation: an operation cut by EXECUTION_TIMEOUT
while the worker is saturated is answered SERVICE_UNAVAILABLE ("retry later"), not
QUERY_TOO_COMPLEX ("change your query").
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from api.errors import ServiceUnavailableError
from schema.admission import Lane

log = logging.getLogger(__name__)

# Set on this middleware's 503s: counted in the metrics, not written to the access log one by
# one (api/web/telemetry.py); a flood must not become as many log lines.
REFUSED_KEY: web.ResponseKey[bool] = web.ResponseKey("graphgate_refused", bool)

_BODY = json.dumps(
    ServiceUnavailableError("Too many requests in progress; retry in a moment.").response_body()
)

_BODY_BYTES = _BODY.encode()
RETRY_AFTER = 1  # seconds, in every refusal's Retry-After
_RETRY_LATER = {"Retry-After": str(RETRY_AFTER)}

_PER_IP_BODY = json.dumps(
    {
        "errors": [
            {
                "message": "Too many WebSockets open from this address.",
                "extensions": {"code": "RATE_LIMITED", "retryAfter": 1},
            }
        ]
    }
)


def _refused() -> web.Response:
    response = web.Response(
        body=_BODY_BYTES, status=503, content_type="application/json", headers=_RETRY_LATER
    )
    response[REFUSED_KEY] = True
    return response


def _too_many_from() -> web.Response:
    return web.Response(
        text=_PER_IP_BODY,
        status=429,
        content_type="application/json",
        headers={"Retry-After": "1"},
    )


def hold_off(request: web.Request, seconds: float) -> None:
    """Read nothing more from this connection for `seconds` (what Retry-After asked for).

    A refusal is cheap but not free, and a flood's connections send again as soon as they
    are answered: every turn of the loop would read and refuse each of them again, and the
    sign-ins the worker admits would wait behind all of that, one long turn per await. Held
    off, a connection's next request waits in the kernel's buffer, costing nothing, and the
    turns stay short. The answer itself is still written at once."""
    transport = request.transport
    if transport is None or transport.is_closing():
        return
    try:
        transport.pause_reading()
    except (AttributeError, NotImplementedError, RuntimeError):  # not a socket we can pause
        return
    asyncio.get_running_loop().call_later(seconds, _resume_reading, transport)


def _resume_reading(transport: asyncio.BaseTransport) -> None:
    if transport.is_closing() or not isinstance(transport, asyncio.ReadTransport):
        return
    # aiohttp pauses the same transport while its own buffers are full (pipelined requests
    # it cannot queue, a body or WebSocket frames not read yet) and resumes it when they
    # drain: resuming under it would let one connection's bytes pile up without bound.
    protocol = transport.get_protocol()
    if getattr(protocol, "_reading_paused", False) or getattr(protocol, "_buffer_paused", False):
        return
    with contextlib.suppress(RuntimeError):  # closed meanwhile
        transport.resume_reading()


def is_websocket_handshake(request: web.Request, protocols: Sequence[str] = ()) -> bool:
    """A WebSocket opening handshake aiohttp would accept: GET, Upgrade and Connection, a
    16-byte key and a version it speaks. A fake one (a bad key, version 99) is an ordinary
    request, counted against MAX_IN_FLIGHT."""
    if request.method != "GET" or "Upgrade" not in request.headers:
        return False
    return web.WebSocketResponse(protocols=protocols).can_prepare(request).ok


def in_flight_limit(
    budgets: Mapping[Lane, int],
    sockets_limit: int,
    *,
    lane_of: Callable[[web.Request], Awaitable[Lane]],
    busy: Callable[[bool], bool] = lambda priority_waiting: False,
    sockets_per_client: int,
    client_key: Callable[[web.Request], str],
    shared: Callable[[web.Request], bool] = lambda request: False,
    protocols: Sequence[str] = (),
    path: str = "/graphql",
) -> Middleware:
    """A middleware refusing requests to `path` while `budgets[lane]` of their lane
    (`lane_of`) are in progress, or, in the `other` lane, while the worker is `busy` (told
    whether a request of a priority lane is in progress); and
    WebSocket handshakes while `sockets_limit` sockets are open (503) or while the client
    (`client_key`) has `sockets_per_client` open (429). A refused `other` request's
    connection is held off, unless it is `shared` (a proxy's, carrying other clients' next
    requests: holding it off would delay their sign-ins)."""
    in_flight: Counter[Lane] = Counter()
    shedding: set[Lane] = set()  # lanes warned about once per episode
    sockets = 0
    per_client: Counter[str] = Counter()
    full_clients: set[str] = set()  # warned about once until one of their sockets closes
    sockets_full = False

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        nonlocal sockets, sockets_full
        if request.path != path:
            return await handler(request)
        # Only a real handshake is exempt from MAX_IN_FLIGHT: any other request claiming
        # `Upgrade: websocket` (a POST) is an ordinary request.
        if is_websocket_handshake(request, protocols):
            if sockets >= sockets_limit:
                if not sockets_full:
                    sockets_full = True
                    log.warning("overload: %d WebSockets open; refusing new ones", sockets)
                return _refused()
            key = client_key(request)
            if per_client[key] >= sockets_per_client:
                if key not in full_clients:
                    full_clients.add(key)
                    log.warning("%d WebSockets open from %s; refusing more", per_client[key], key)
                return _too_many_from()
            sockets_full = False
            sockets += 1
            per_client[key] += 1
            try:  # the handler returns when the socket closes
                return await handler(request)
            finally:
                sockets -= 1
                per_client[key] -= 1
                full_clients.discard(key)
                if per_client[key] <= 0:
                    del per_client[key]
        lane = await lane_of(request)
        limit = budgets[lane]
        # A request that completes in one turn of the loop is never "in progress" when the
        # next one arrives: past the worker's CPU, the queue is the loop itself (and the
        # sockets behind it), which only its lag shows. Ordinary operations give way first.
        if in_flight[lane] >= limit or (
            lane is Lane.OTHER and busy(in_flight.total() > in_flight[Lane.OTHER])
        ):
            if lane not in shedding:  # once per episode, not once per refused request
                shedding.add(lane)
                log.warning(
                    "overload: %d %s requests in progress; refusing new ones", in_flight[lane], lane
                )
            if lane is Lane.OTHER and not shared(request):
                hold_off(request, RETRY_AFTER)
            return _refused()
        if lane in shedding and in_flight[lane] < limit // 2:
            shedding.discard(lane)
            log.info("overload: over; %d %s requests in progress", in_flight[lane], lane)
        in_flight[lane] += 1
        try:
            return await handler(request)
        finally:
            in_flight[lane] -= 1

    return middleware


class LoopLag:
    """How late the event loop wakes a task that asked to sleep: the saturation signal.

    A healthy worker wakes it within milliseconds; a worker whose CPU is saturated by a flood
    runs every step of every request in turn, and the lag grows to the length of one turn."""

    SATURATED = 0.1  # seconds of lag past which the worker counts as saturated (healthy: ms)

    def __init__(self, interval: float = 0.1, decay: float = 0.8) -> None:
        self._interval = interval
        self._decay = decay
        self.seconds = 0.0
        # The smaller of the last two samples: late twice in a row is saturation, not one
        # long step (a first-sight document, a collection).
        self.sustained = 0.0
        self._last = 0.0
        self._due = float("inf")  # when the sampler should wake next

    def late_now(self) -> float:
        """How late the sampler is at this moment: a turn of the loop that is already long
        shows here before it ends (the samples only show it afterwards)."""
        return max(0.0, asyncio.get_running_loop().time() - self._due)

    @property
    def saturated(self) -> bool:
        return self.seconds > self.SATURATED

    async def watch(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = self._due = loop.time() + self._interval
            await asyncio.sleep(self._interval)
            late = max(0.0, loop.time() - due)
            # Rises at once, decays over about a second (by default): one quick tick does
            # not clear it.
            self.seconds = max(late, self.seconds * self._decay)
            self.sustained, self._last = min(late, self._last), late
