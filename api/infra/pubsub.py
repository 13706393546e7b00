"""Following one Redis pub/sub channel: shared by the revocation feed and the event bus."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from redis.asyncio import Redis
from redis.exceptions import RedisError


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
