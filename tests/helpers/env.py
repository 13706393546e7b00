"""Where the tests find things: the checkout, the test databases, the environment every app gets."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from urllib.parse import urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[2]
POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
TABLES = (
    "action_tokens",
    "notes",
    "audit_events",
    "revocations",
    "sessions",
    "recovery_codes",
    "mfa_challenges",
    "passkeys",
    "passkey_challenges",
    "users",
    "tortoise_migrations",
)

BASE_ENV = {
    "APP_ENV": "development",
    "JWT_SECRET": "test-access-secret-0123456789-abcdefghijkl",
    "JWT_REFRESH_SECRET": "test-refresh-secret-0123456789-abcdefghij",
    "RATE_LIMIT_PER_EMAIL": "",
    "RATE_LIMIT_PER_IP": "",
    # Shedding for event-loop lag depends on how busy the test machine is: off, except where
    # a test sets it (tests/reliability/test_admission.py, with the lag held still).
    "SHED_LOOP_LAG": "3600",
    "MAX_LOOP_LAG": "3600",
}
# What APP_ENV=production refuses to start without (besides the secrets above).
PRODUCTION_NEEDS = {
    "PUBLIC_URL": "http://127.0.0.1:8000",
    "METRICS_TOKEN": "test-metrics-token-0123456789abcdef",
}


def reachable(url: str) -> bool:
    """Whether something accepts TCP connections at the host and port of `url`."""
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 0), timeout=1):
            return True
    except OSError:
        return False


def postgres_or_skip() -> str:
    """The test PostgreSQL URL; skips the test, with the reason, when it does not answer."""
    if not reachable(POSTGRES_URL):
        pytest.skip(f"PostgreSQL not reachable at {POSTGRES_URL} (set TEST_POSTGRES_URL)")
    return POSTGRES_URL


def redis_or_skip() -> str:
    """The test Redis URL; skips the test, with the reason, when it does not answer."""
    if not reachable(REDIS_URL):
        pytest.skip(f"Redis not reachable at {REDIS_URL} (set TEST_REDIS_URL)")
    return REDIS_URL


async def reset_postgres(url: str) -> None:
    """Drop the app's tables, so the next migration starts from nothing."""
    import asyncpg

    conn = await asyncpg.connect(url.replace("postgres://", "postgresql://", 1))
    try:
        await conn.execute(f"DROP TABLE IF EXISTS {', '.join(TABLES)} CASCADE")
    finally:
        await conn.close()
