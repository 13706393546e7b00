"""Redis as every part of the app uses it: the client options, and following one pub/sub
channel (shared by the revocation feed and the event bus)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

# After Redis restarts, the first command on each pooled connection finds it dead: one
# immediate retry opens a new one. Without it, a revocation published then was lost to the
# other replicas (subscribed again, they trusted memory until their next database poll), and
# a rate-limit hit fell back to this process's memory for another second. Timeouts are not
# retried: that would double the wait on a Redis that hangs.


def redis_options(socket_timeout: float, *, retry_once: bool = False) -> dict[str, Any]:
    """Keyword options for a Redis client: a second to connect, `socket_timeout` per reply,
    and with `retry_once` one immediate retry of a command that met a dead connection. Not
    for a client that subscribes: its subscription would then reconnect silently, and the
    messages of the gap be lost without `follow_channel` noticing and catching up."""
    options: dict[str, Any] = {"socket_connect_timeout": 1, "socket_timeout": socket_timeout}
    if retry_once:
        options["retry"] = Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,))
    return options


async def publish(redis: Redis, channel: str, message: str | bytes) -> None:
    """PUBLISH, tried a second time at once if the connection was dead."""
    try:
        await redis.publish(channel, message)
    except (RedisConnectionError, OSError):
        await redis.publish(channel, message)  # a second failure is the caller's to handle


async def follow_channel(
    redis: Redis,
    channel: str,
    on_message: Callable[[bytes], None],
    on_subscribed: Callable[[], Awaitable[None]],
    on_lost: Callable[[], None],
) -> None:
    """Deliver the channel's messages forever; reconnect each second while Redis is away."""
    while True:
        try:
            async with redis.pubsub() as pubsub:
                await pubsub.subscribe(channel)
                await on_subscribed()
                while True:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if message is None:
                        await pubsub.ping()  # notices a dead connection within a second
                    elif message["type"] == "message":
                        on_message(message["data"])
        except (RedisError, OSError):
            on_lost()
            await asyncio.sleep(1)
