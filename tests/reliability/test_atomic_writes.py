"""Writes are atomic: racing registrations, and a server killed (-9) in a burst of refreshes."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import jwt
import pytest

from api.auth.tokens import hash_jti
from api.db.models import AuditEvent, Session, User
from tests.helpers.api import Api
from tests.helpers.graphql import REFRESH, REGISTER, code
from tests.helpers.live import LiveServer, post


async def test_concurrent_registrations_of_one_email_make_exactly_one_account(
    start_api: Callable[..., Awaitable[Api]],
) -> None:
    # About atomicity, not capacity: let every one of the 100 hashes wait its turn.
    api = await start_api(
        PASSWORD_HASH_MAX_WAIT="60", MAX_IN_FLIGHT_SIGN_IN="100", EXECUTION_TIMEOUT="120"
    )
    emails = ["ada@example.com", " Ada@Example.COM "]  # one address once normalised
    bodies = await asyncio.gather(
        *(
            api.gql(REGISTER, {"email": emails[n % 2], "password": "correct horse"})
            for n in range(100)
        )
    )
    codes = [code(body) for body in bodies]
    assert codes.count(None) == 1, codes
    assert codes.count("EMAIL_TAKEN") == 99, codes
    # The losers left nothing behind: no second user, session or audit event.
    assert await User.filter(email="ada@example.com").count() == 1
    assert await Session.all().count() == 1
    assert await AuditEvent.filter(kind="register").count() == 1


async def test_logout_all_ends_sessions_and_audits_in_one_write(api: Api) -> None:
    pair = await api.register()
    await api.login()
    body = await api.gql("mutation { logoutAll }", token=pair["accessToken"])
    assert body["data"] == {"logoutAll": 2}
    assert await Session.filter(ended_at__isnull=True).count() == 0
    assert await AuditEvent.filter(kind="logout_all", user_id=pair["user"]["id"]).count() == 1


def _jti(token: str) -> str:
    return str(jwt.decode(token, options={"verify_signature": False})["jti"])


async def _rows(database_url: str, sql: str) -> list[dict[str, Any]]:
    if database_url.startswith("sqlite://"):
        with contextlib.closing(sqlite3.connect(database_url[len("sqlite://") :])) as conn:
            conn.row_factory = sqlite3.Row
            return [dict(row) for row in conn.execute(sql)]
    conn = await asyncpg.connect(database_url.replace("postgres://", "postgresql://", 1))
    try:
        return [dict(row) for row in await conn.fetch(sql)]
    finally:
        await conn.close()


class Chain:
    """One session refreshed over and over, one request at a time, as a client would."""

    def __init__(self, pair: dict[str, Any]) -> None:
        self.user_id = pair["user"]["id"]
        self.tokens = [pair["refreshToken"]]
        self.refreshed = 0

    async def run(self, session: aiohttp.ClientSession, url: str) -> None:
        while True:
            try:
                body = await post(session, url, REFRESH, {"t": self.tokens[-1]})
            except (aiohttp.ClientError, AssertionError):
                return  # the server died under us
            assert "errors" not in body, body
            self.tokens.append(body["data"]["refresh"]["refreshToken"])
            self.refreshed += 1


@pytest.mark.live
@pytest.mark.parametrize("engine", ["sqlite", "postgres"])
async def test_kill_9_during_refreshes_leaves_sessions_consistent(
    engine: str, request: pytest.FixtureRequest, serve: Callable[..., LiveServer], tmp_path: Path
) -> None:
    database_url = (
        f"sqlite://{tmp_path}/kill.sqlite3"
        if engine == "sqlite"
        else request.getfixturevalue("pg_url")
    )
    server = serve(DATABASE_URL=database_url).wait_ready()
    async with aiohttp.ClientSession() as session:
        pairs = await asyncio.gather(
            *(
                post(
                    session,
                    server.url,
                    REGISTER,
                    {"email": f"u{n}@example.com", "password": "correct horse"},
                )
                for n in range(16)
            )
        )
        chains = [Chain(body["data"]["register"]) for body in pairs]
        burst = asyncio.gather(*(chain.run(session, server.url) for chain in chains))
        deadline = time.monotonic() + 20
        while sum(chain.refreshed for chain in chains) < 60 and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        server.kill()  # SIGKILL: no drain, no rollback by the process, mid-transaction
        await burst
    assert sum(chain.refreshed for chain in chains) >= 60  # the kill hit a real burst

    sessions = {
        str(row["user_id"]): row for row in await _rows(database_url, "SELECT * FROM sessions")
    }
    audits = await _rows(
        database_url,
        "SELECT user_id, COUNT(*) AS n FROM audit_events WHERE kind = 'refresh' GROUP BY user_id",
    )
    refresh_events = {str(row["user_id"]): row["n"] for row in audits}
    assert len(sessions) == len(chains)
    for chain in chains:
        row = sessions[chain.user_id]
        assert row["ended_at"] is None and row["end_reason"] is None
        last = hash_jti(_jti(chain.tokens[-1]))
        # Either the last answer the client saw is current, or one more rotation committed
        # whose answer was lost in the kill: then the client's last token is the previous one.
        lost_commit = row["current_jti_hash"] != last
        if lost_commit:
            assert row["previous_jti_hash"] == last
        assert len(row["current_jti_hash"]) == 64
        assert (row["previous_jti_hash"] is None) == (row["rotated_at"] is None)
        # The audit event commits with its rotation, never without it.
        assert refresh_events.get(chain.user_id, 0) == chain.refreshed + lost_commit

    # After a restart, no refresh token is accepted twice.
    server = serve(DATABASE_URL=database_url).wait_ready()
    async with aiohttp.ClientSession() as session:
        for chain in chains:
            lost_commit = sessions[chain.user_id]["current_jti_hash"] != hash_jti(
                _jti(chain.tokens[-1])
            )
            first = await post(session, server.url, REFRESH, {"t": chain.tokens[-1]})
            assert code(first) == ("REFRESH_TOKEN_REUSED" if lost_commit else None), first
            again = await post(session, server.url, REFRESH, {"t": chain.tokens[-1]})
            assert code(again) in ("REFRESH_TOKEN_REUSED", "TOKEN_REVOKED"), again
            if len(chain.tokens) > 1:
                spent = await post(session, server.url, REFRESH, {"t": chain.tokens[-2]})
                assert code(spent) in ("REFRESH_TOKEN_REUSED", "TOKEN_REVOKED"), spent
