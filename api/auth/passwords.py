"""Password hashing: passlib's CryptContext (argon2id), off the event loop."""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from passlib.context import CryptContext

from api.errors import BadUserInputError, ServiceUnavailableError

MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 1024

# OWASP Password Storage minimum for argon2id (m=19 MiB, t=2, p=1); bcrypt only verifies
# old hashes, which `verify_and_update` upgrades to argon2id on the next login.
_CONTEXT = CryptContext(
    schemes=["argon2", "bcrypt"],
    deprecated=["bcrypt"],
    argon2__type="ID",
    argon2__memory_cost=19 * 1024,
    argon2__time_cost=2,
    argon2__parallelism=1,
)


def check_password(password: str, field: str = "password") -> None:
    """Refuse passwords outside 8..1024 characters; they are never truncated."""
    if not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
        raise BadUserInputError(
            field,
            f"'{field}' must have {MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters.",
        )


BACKLOG_MEMORY = 5.0  # seconds a queue for the hashing threads counts as "busy" afterwards


def lower_thread_priority(nice: int) -> None:
    """Give the calling thread `nice` more niceness than it has (Linux: a per-thread value).

    A hash is ~20 ms of CPU at a stretch; at the loop's own priority it takes the core for
    that long and every request waiting on the loop waits with it. Niced, the scheduler lets
    the loop run first and hashes fill the rest of the CPU: a login storm slows logins, not
    guarded queries."""
    if nice <= 0 or not hasattr(os, "setpriority"):
        return
    tid = threading.get_native_id()
    with contextlib.suppress(OSError):  # raising niceness needs no privilege; be safe anyway
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + nice))


class PasswordHasher:
    """Hashes and verifies in a bounded thread pool; argon2 releases the GIL.

    A flood is refused at once (SERVICE_UNAVAILABLE) rather than queued without bound: when
    `queue_limit` hashes already wait, or when a new one could not start within `max_wait`
    seconds at the pace hashing actually runs now (a busy CPU makes it slower)."""

    def __init__(
        self, threads: int = 2, queue_limit: int = 128, max_wait: float = 2.0, nice: int = 5
    ) -> None:
        self._pool = ThreadPoolExecutor(
            max_workers=threads,
            thread_name_prefix="password",
            initializer=lower_thread_priority,
            initargs=(nice,),
        )
        self._slots = asyncio.Semaphore(threads + queue_limit)
        self._threads = threads
        self._max_wait = max_wait
        self._pending = 0  # submitted and not finished: running plus waiting
        self._seconds_per_hash = 0.0  # learned from each hash (moving average); 0: not yet
        self._queued_at = -BACKLOG_MEMORY  # when a hash last had to wait for a thread

    @property
    def backlogged(self) -> bool:
        """A hash had to queue for a thread within the last BACKLOG_MEMORY seconds: a sign-in
        that ran too long was most likely waiting its turn (the server is short of CPU)."""
        return time.monotonic() - self._queued_at < BACKLOG_MEMORY

    @property
    def queued(self) -> bool:
        """A hash is waiting for a thread right now: hashing is short of CPU at this moment."""
        return self._pending > self._threads

    async def _run(self, fn: Callable[..., object], *args: object) -> object:
        expected_wait = self._pending * self._seconds_per_hash / self._threads
        if self._slots.locked() or expected_wait > self._max_wait:
            raise ServiceUnavailableError("Too many sign-ins at once; retry in a moment.")
        if self._pending >= self._threads:  # every thread busy: this one waits
            self._queued_at = time.monotonic()
        self._pending += 1
        try:
            async with self._slots:
                loop = asyncio.get_running_loop()
                return await loop.run_in_executor(self._pool, self._timed, fn, *args)
        finally:
            self._pending -= 1

    def _timed(self, fn: Callable[..., object], *args: object) -> object:
        started = time.perf_counter()
        try:
            return fn(*args)
        finally:
            took = time.perf_counter() - started
            previous = self._seconds_per_hash or took
            self._seconds_per_hash = 0.8 * previous + 0.2 * took

    async def hash(self, password: str) -> str:
        result = await self._run(_CONTEXT.hash, password)
        assert isinstance(result, str)
        return result

    async def verify(self, password: str, stored_hash: str) -> tuple[bool, str | None]:
        """(matches, new hash when the stored one should be upgraded)."""
        try:
            result = await self._run(_CONTEXT.verify_and_update, password, stored_hash)
        except ValueError:
            # A malformed stored hash, or bcrypt refusing > 72 bytes: a mismatch, not a crash.
            return False, None
        assert isinstance(result, tuple)
        return bool(result[0]), result[1]

    async def dummy_verify(self) -> None:
        """Spend the time of a real verification (unknown email = wrong password)."""
        await self._run(_CONTEXT.dummy_verify)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
