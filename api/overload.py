"""Load shedding: at most MAX_IN_FLIGHT GraphQL requests in progress per worker.

Tortoise hands out pooled connections with no limit on the wait, and every waiting request
holds memory: past the bound, a new request is answered at once with 503, the contract code
SERVICE_UNAVAILABLE and `Retry-After`, so a flood costs quick refusals, not growing latency.
WebSockets (long-lived) and the health endpoints are not counted.

LoopLag tells a saturated worker from a slow operation: an operation cut by EXECUTION_TIMEOUT
while the worker is saturated is answered SERVICE_UNAVAILABLE ("retry later"), not
QUERY_TOO_COMPLEX ("change your query").
"""

from __future__ import annotations

import asyncio
import json
import logging

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from api.errors import ServiceUnavailableError

log = logging.getLogger(__name__)

_BODY = json.dumps(
    {
        "errors": [
            {
                "message": "Too many requests in progress; retry in a moment.",
                "extensions": {"code": ServiceUnavailableError.code},
            }
        ]
    }
)


def in_flight_limit(limit: int, path: str = "/graphql") -> Middleware:
    """A middleware refusing requests to `path` while `limit` of them are in progress."""
    in_flight = 0
    shedding = False

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        nonlocal in_flight, shedding
        if request.path != path or request.headers.get("Upgrade", "").lower() == "websocket":
            return await handler(request)
        if in_flight >= limit:
            if not shedding:  # once per episode, not once per refused request
                shedding = True
                log.warning("overload: %d requests in progress; refusing new ones", in_flight)
            return web.Response(
                text=_BODY,
                status=503,
                content_type="application/json",
                headers={"Retry-After": "1"},
            )
        if shedding and in_flight < limit // 2:
            shedding = False
            log.info("overload: over; %d requests in progress", in_flight)
        in_flight += 1
        try:
            return await handler(request)
        finally:
            in_flight -= 1

    return middleware


class LoopLag:
    """How late the event loop wakes a task that asked to sleep: the saturation signal.

    A healthy worker wakes it within milliseconds; a worker whose CPU is saturated by a flood
    runs every step of every request in turn, and the lag grows to the length of one turn."""

    SATURATED = 0.1  # seconds of lag past which the worker counts as saturated (healthy: ms)

    def __init__(self, interval: float = 0.1) -> None:
        self._interval = interval
        self.seconds = 0.0

    @property
    def saturated(self) -> bool:
        return self.seconds > self.SATURATED

    async def watch(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + self._interval
            await asyncio.sleep(self._interval)
            late = max(0.0, loop.time() - due)
            # Rises at once, decays over about a second: one quick tick does not clear it.
            self.seconds = max(late, self.seconds * 0.8)
