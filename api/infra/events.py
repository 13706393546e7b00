"""Live events for subscriptions: in-process fan-out, and Redis pub/sub across workers.

A publisher hands an Event to `publish` (never blocks: a mutation does not wait on
Redis). Subscribers of the same (topic, owner) in this process get it at once. With a
Redis URL, it is also sent on one channel, and every other worker delivers it to its own
subscribers. While Redis is unreachable, events stay in the worker that made them (the
mode change is logged once each way) and the bus keeps reconnecting.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from api.infra.logs import ModeLog
from api.infra.pubsub import follow_channel, publish, redis_options
from api.infra.tasks import cancel_all

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Event:
    """Something that happened to an object of `owner_id`; `data` is JSON-able."""

    topic: str
    owner_id: str
    kind: str
    data: dict[str, Any]


class _Subscriber:
    def __init__(self, size: int) -> None:
        self.queue: asyncio.Queue[Event] = asyncio.Queue(maxsize=size)
        self.warned = False

    def offer(self, event: Event) -> None:
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            # A client that stops reading must not grow memory without bound.
            if not self.warned:
                log.warning("events: a subscriber is not keeping up; dropping its events")
                self.warned = True


class EventBus:
    """Topic/owner fan-out to asyncio queues, mirrored over Redis when configured."""

    CHANNEL = "graphgate:events"

    def __init__(self, queue_size: int = 256) -> None:
        self._queue_size = queue_size
        self._origin = uuid.uuid4().hex  # our own messages come back from Redis: skip them
        self._subscribers: dict[tuple[str, str], set[_Subscriber]] = defaultdict(set)
        self._redis: Redis | None = None
        self._outbox: asyncio.Queue[bytes] = asyncio.Queue(maxsize=10_000)
        self.shared = False  # True while Redis carries events to the other workers
        self._mode = ModeLog(
            log,
            "events: Redis connected; subscription events reach every worker",
            "events: Redis unreachable; subscription events stay in this worker",
        )

    def publish(self, event: Event) -> None:
        """Deliver to this worker's subscribers now, and queue it for the other workers."""
        self._deliver(event)
        if self.shared:
            message = {
                "o": self._origin,
                "t": event.topic,
                "u": event.owner_id,
                "k": event.kind,
                "d": event.data,
            }
            with contextlib.suppress(asyncio.QueueFull):
                self._outbox.put_nowait(json.dumps(message).encode())

    def _deliver(self, event: Event) -> None:
        for subscriber in list(self._subscribers.get((event.topic, event.owner_id), ())):
            subscriber.offer(event)

    @contextlib.asynccontextmanager
    async def subscribe(self, topic: str, owner_id: str) -> AsyncIterator[AsyncIterator[Event]]:
        """`async with bus.subscribe(topic, owner) as events: async for event in events: ...`"""
        key = (topic, owner_id)
        subscriber = _Subscriber(self._queue_size)
        self._subscribers[key].add(subscriber)

        async def stream() -> AsyncIterator[Event]:
            while True:
                yield await subscriber.queue.get()

        try:
            yield stream()
        finally:
            self._subscribers[key].discard(subscriber)
            if not self._subscribers[key]:
                del self._subscribers[key]

    def subscriber_count(self) -> int:
        return sum(len(group) for group in self._subscribers.values())

    @contextlib.asynccontextmanager
    async def running(self, redis_url: str | None) -> AsyncIterator[None]:
        """The bus's lifetime: with a Redis URL, follow and feed the shared channel."""
        if not redis_url:
            yield
            return
        self._redis = Redis.from_url(redis_url, **redis_options(socket_timeout=2))
        tasks = [asyncio.create_task(self._follow()), asyncio.create_task(self._send())]
        try:
            yield
        finally:
            await cancel_all(tasks)
            await self._redis.aclose()
            self._redis = None
            self.shared = False

    def _set_shared(self, shared: bool) -> None:
        self.shared = shared
        self._mode.note(shared)

    async def _follow(self) -> None:
        assert self._redis is not None

        async def subscribed() -> None:
            self._set_shared(True)

        await follow_channel(
            self._redis, self.CHANNEL, self._receive, subscribed, lambda: self._set_shared(False)
        )

    async def _send(self) -> None:
        assert self._redis is not None
        while True:
            message = await self._outbox.get()
            try:
                await publish(self._redis, self.CHANNEL, message)
            except (RedisError, OSError):
                log.warning("events: an event could not be sent to Redis; other workers miss it")

    def _receive(self, raw: bytes) -> None:
        try:
            message = json.loads(raw)
            if message["o"] == self._origin:
                return
            event = Event(str(message["t"]), str(message["u"]), str(message["k"]), message["d"])
        except (ValueError, TypeError, KeyError):
            log.warning("events: ignored a malformed message")
            return
        if not isinstance(event.data, dict):
            log.warning("events: ignored a malformed message")
            return
        self._deliver(event)
