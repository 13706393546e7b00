"""Apollo Client 4 with its persisted-queries link, from node, against a live server.

examples/apollo-persisted is a small client project: its operations in src/, its manifest
written by @apollo/generate-persisted-query-manifest, its links in client.mjs. demo.mjs runs a
scenario and prints what went over the wire and what came back; these tests read that.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.env import ROOT
from tests.helpers.live import LiveServer, live_server, node_or_skip_reason

pytestmark = pytest.mark.live  # starts real server processes (see pyproject markers)

PROJECT = ROOT / "examples" / "apollo-persisted"
MANIFEST = PROJECT / "persisted-query-manifest.json"


def skip_without_node() -> None:
    reason = node_or_skip_reason(PROJECT)
    if reason:
        pytest.skip(reason)


async def demo(server: LiveServer, scenario: str, *args: str) -> dict[str, Any]:
    proc = await asyncio.create_subprocess_exec(
        "node",
        str(PROJECT / "demo.mjs"),
        scenario,
        server.graphql,
        *args,
        cwd=PROJECT,
        env={**os.environ},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert out, f"demo.mjs printed nothing: {err.decode()}"
    result: dict[str, Any] = json.loads(out)
    assert proc.returncode == 0 and "failed" not in result, (result, err.decode())
    return result


async def test_apq_first_request_registers_then_only_hashes_are_sent(tmp_path: Path) -> None:
    skip_without_node()
    with live_server(tmp_path, GET_QUERIES="on") as server:
        result = await demo(server, "apq", "apq@example.com")
    assert result["me"] == ["apq@example.com", "apq@example.com"]
    me = [sent for sent in result["wire"] if sent["operation"] == "Me"]
    # first: the hash alone (GET, the CDN-cacheable form), refused as not found; then the
    # text with the hash (POST) registers it; then the hash alone is enough
    assert [(s["method"], s["query"], s["status"]) for s in me] == [
        ("GET", False, 404),  # Apollo Client 4 asks for application/graphql-response+json
        ("POST", True, 200),
        ("GET", False, 200),
    ]
    assert len({s["hash"] for s in me}) == 1
    register = [sent for sent in result["wire"] if sent["operation"] == "Register"]
    assert all(s["method"] == "POST" for s in register)  # never a mutation over GET


async def test_manifest_client_works_in_only_mode_and_a_hand_written_query_is_refused(
    tmp_path: Path,
) -> None:
    skip_without_node()
    with live_server(
        tmp_path, TRUSTED_DOCUMENTS=str(MANIFEST), TRUSTED_DOCUMENTS_MODE="only"
    ) as server:
        result = await demo(server, "trusted", "trusted@example.com")
    assert result["me"] == "trusted@example.com"
    assert result["wire"] and all(not sent["query"] for sent in result["wire"])
    assert all(sent["status"] == 200 for sent in result["wire"])
    refused = result["handWritten"]
    assert refused["status"] == 403
    assert refused["body"]["errors"][0]["extensions"]["code"] == "DOCUMENT_NOT_TRUSTED"


async def test_concurrent_expired_requests_share_one_refresh(tmp_path: Path) -> None:
    skip_without_node()
    n = 5
    # Tokens live 3 s with no leeway; the demo waits past that before sending n requests.
    with live_server(
        tmp_path,
        TRUSTED_DOCUMENTS=str(MANIFEST),
        TRUSTED_DOCUMENTS_MODE="only",
        ACCESS_TOKEN_TTL="3",
        JWT_LEEWAY="0",
    ) as server:
        result = await demo(server, "refresh", "refresh@example.com", str(n), "4.2")
    assert result["results"] == ["refresh@example.com"] * n
    assert result["refreshes"] == 1 and result["rotated"] is True
    refreshes = [sent for sent in result["wire"] if sent["operation"] == "Refresh"]
    assert len(refreshes) == 1  # one rotation on the wire: no REFRESH_TOKEN_REUSED race
    assert sum(sent["operation"] == "Me" for sent in result["wire"]) == 2 * n


def test_the_example_manifest_passes_documents_check(tmp_path: Path) -> None:
    """The committed manifest is what the example's client ships: it must stay valid."""
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DATA_DIR": str(tmp_path / "data"),
        "APP_ENV": "development",
    }
    result = subprocess.run(
        [sys.executable, "-m", "api", "documents", "check", str(MANIFEST)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "4 document(s), all valid" in result.stdout


def test_the_committed_manifest_is_what_the_generator_writes(tmp_path: Path) -> None:
    """src/ and persisted-query-manifest.json move together (`npm run manifest`)."""
    skip_without_node()
    out = tmp_path / "manifest.json"
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"documents": ["src/**/*.graphql"], "output": str(out)}))
    subprocess.run(
        ["npx", "--no-install", "generate-persisted-query-manifest", "--config", str(config)],
        cwd=PROJECT,
        check=True,
        capture_output=True,
        timeout=120,
    )
    assert json.loads(out.read_text()) == json.loads(MANIFEST.read_text())
