"""Replicas started together all migrate one empty PostgreSQL database without failing."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest

from api.db.connection import MIGRATION_LOCK
from tests.helpers.env import postgres_or_skip, reset_postgres
from tests.helpers.live import server_env

pytestmark = pytest.mark.live  # real `python -m api migrate` processes


async def test_concurrent_migrations_on_postgres_all_succeed(tmp_path: Path) -> None:
    """Without the advisory lock, all but one fail on a duplicate table (the `users` type)."""
    url = postgres_or_skip()
    await reset_postgres(url)
    # Pool size 1: the lock's connection and the migration's must not wait for each other.
    env = server_env(tmp_path, DATABASE_URL=url, DATABASE_POOL_SIZE="1")
    try:
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "api", "migrate"],
                env=env,
                cwd=tmp_path,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
            for _ in range(3)
        ]
        outputs = [proc.communicate(timeout=60)[0].decode() for proc in procs]
        assert [proc.returncode for proc in procs] == [0, 0, 0], outputs
    finally:
        await reset_postgres(url)


async def test_a_process_waits_out_a_migration_longer_than_the_statement_timeout(
    tmp_path: Path,
) -> None:
    """Another process's migration may take longer than DATABASE_STATEMENT_TIMEOUT (a big
    index): waiting for its lock is no statement to cut off, or every replica started meanwhile
    fails its start. And a migrator that dies lets the lock go with its connection."""
    url = postgres_or_skip()
    await reset_postgres(url)
    env = server_env(tmp_path, DATABASE_URL=url, DATABASE_STATEMENT_TIMEOUT="1")
    holder = await asyncpg.connect(url.replace("postgres://", "postgresql://", 1))
    try:
        await holder.execute(f"SELECT pg_advisory_lock({MIGRATION_LOCK})")
        proc = subprocess.Popen(
            [sys.executable, "-m", "api", "migrate"],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        await asyncio.sleep(3)  # three statement timeouts
        assert proc.poll() is None, proc.communicate()[0].decode()
        holder.terminate()  # the holder dies: its session, and the lock, end
        output = proc.communicate(timeout=60)[0].decode()
        assert proc.returncode == 0, output
    finally:
        if not holder.is_closed():
            await holder.close()
        await reset_postgres(url)
