"""noteEvents driven by graphql-ws, the reference client of graphql-transport-ws, on a live server.

`.ci/graphql-ws-client/subscribe.mjs` connects with the token in `connectionParams`,
subscribes and prints one JSON line per thing that happens; these tests read those lines.
tests/web/test_subscriptions.py covers the protocol in depth with aiohttp's own client.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.helpers.env import ROOT
from tests.helpers.graphql import REGISTER
from tests.helpers.live import LiveServer, live_server, node_or_skip_reason, post
from tests.helpers.notes import CREATE

pytestmark = pytest.mark.live  # starts real server processes (see pyproject markers)

CLIENT = ROOT / ".ci" / "graphql-ws-client"


class NodeClient:
    """The running subscribe.mjs: its stdout as JSON lines."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.seen: list[dict[str, Any]] = []  # every line so far, for failure messages

    async def line(self, timeout: float = 5.0) -> dict[str, Any]:
        assert self.proc.stdout is not None
        raw = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        if not raw:
            assert self.proc.stderr is not None
            stderr = await asyncio.wait_for(self.proc.stderr.read(), 5)
            raise AssertionError(f"graphql-ws client ended early: {self.seen}\n{stderr.decode()}")
        message: dict[str, Any] = json.loads(raw)
        self.seen.append(message)
        return message

    async def until_closed(self, within: float) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """The `closed` line, and the lines before it, all within `within` seconds."""
        deadline = time.monotonic() + within
        before: list[dict[str, Any]] = []
        while True:
            remaining = deadline - time.monotonic()
            try:
                message = await self.line(timeout=max(remaining, 0.01))
            except TimeoutError:
                raise AssertionError(f"no close within {within} s; lines: {self.seen}") from None
            if "closed" in message:
                return message, before
            before.append(message)


@contextlib.asynccontextmanager
async def graphql_ws(server: LiveServer, token: str) -> AsyncIterator[NodeClient]:
    """Run subscribe.mjs against `server` with `token`; kill it at the end whatever happened."""
    ws_url = server.graphql.replace("http://", "ws://", 1)
    proc = await asyncio.create_subprocess_exec(
        "node",
        str(CLIENT / "subscribe.mjs"),
        ws_url,
        "--timeout=30",
        env={**os.environ, "GRAPHGATE_TOKEN": token},  # not on the command line
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        yield NodeClient(proc)
    finally:
        if proc.returncode is None:
            proc.kill()
        await asyncio.wait_for(proc.wait(), 10)


def skip_without_node() -> None:
    reason = node_or_skip_reason(CLIENT)
    if reason:
        pytest.skip(reason)


async def test_graphql_ws_client_gets_events_then_4401_after_logout(tmp_path: Path) -> None:
    skip_without_node()
    with live_server(tmp_path) as server:
        async with aiohttp.ClientSession() as session:
            variables = {"email": "ada@example.com", "password": "correct horse"}
            token = (await post(session, server.url, REGISTER, variables))["data"]["register"][
                "accessToken"
            ]
            async with graphql_ws(server, token) as client:
                assert await client.line(timeout=10) == {"connected": True}
                # The subscribe message follows the ack, and the server starts listening a
                # moment later: create notes until one is heard.
                heard = None
                for attempt in range(10):
                    title = f"over graphql-ws #{attempt}"
                    await post(session, server.url, CREATE, {"t": title, "b": "hi"}, token=token)
                    with contextlib.suppress(TimeoutError):
                        heard = await client.line(timeout=1)
                        break
                assert heard is not None, f"no event reached the client: {client.seen}"
                assert "errors" not in heard["next"], heard
                event = heard["next"]["data"]["noteEvents"]
                assert event["kind"] == "created"
                assert event["note"]["title"].startswith("over graphql-ws #")
                assert event["note"]["body"] == "hi"
                assert event["note"]["owner"]["email"] == "ada@example.com"

                started = time.monotonic()
                logout = await post(session, server.url, "mutation { logout }", token=token)
                assert logout == {"data": {"logout": True}}
                closed, before = await client.until_closed(within=5)
                assert closed == {"closed": 4401, "reason": "TOKEN_REVOKED"}
                assert time.monotonic() - started < 2  # the contract's bound
                # Only late events of the retries above, or the close as the sink's error.
                assert all(
                    "next" in line or line == {"error": {"code": 4401, "reason": "TOKEN_REVOKED"}}
                    for line in before
                ), before
                assert await asyncio.wait_for(client.proc.wait(), 5) == 0

            # The same token at a new connection is refused at connection_init.
            async with graphql_ws(server, token) as client:
                closed, before = await client.until_closed(within=10)
                assert closed == {"closed": 4403, "reason": "TOKEN_REVOKED"}
                assert {"connected": True} not in before


async def test_graphql_ws_client_with_a_bad_token_is_refused_with_4403(tmp_path: Path) -> None:
    skip_without_node()
    with live_server(tmp_path) as server:
        async with graphql_ws(server, "not.a.token") as client:
            closed, before = await client.until_closed(within=10)
            assert closed == {"closed": 4403, "reason": "INVALID_TOKEN"}
            assert {"connected": True} not in before
            assert not any("next" in line for line in before)
