"""Replicas started together all migrate one empty PostgreSQL database without failing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

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
