"""A real server process (`python -m api serve`) for tests that drive it with outside programs.

The server runs from this checkout (PYTHONPATH points here, whatever is installed), on an
embedded SQLite file in the test's tmp folder, with explicit secrets, on a free port.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from tests.conftest import BASE_ENV

ROOT = Path(__file__).resolve().parent.parent


async def post(
    session: aiohttp.ClientSession,
    url: str,
    query: str,
    variables: dict[str, Any] | None = None,
    token: str | None = None,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """POST one operation to a live server; asserts a 200 JSON answer and returns its body."""
    headers = {**(headers or {}), **({"Authorization": f"Bearer {token}"} if token else {})}
    body = {"query": query, "variables": variables or {}}
    async with session.post(f"{url}/graphql", json=body, headers=headers) as resp:
        assert resp.status == 200, await resp.text()
        return await resp.json()  # type: ignore[no-any-return]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LiveServer:
    url: str  # http://127.0.0.1:PORT
    log_path: Path
    env: dict[str, str]
    pid: int = 0

    @property
    def graphql(self) -> str:
        return f"{self.url}/graphql"

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def gql(
        self, query: str, variables: dict[str, Any] | None = None, token: str | None = None
    ) -> dict[str, Any]:
        """One POST /graphql from outside (blocking: for set-up steps of a test)."""
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        request = urllib.request.Request(self.graphql, data=body, headers=headers)
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())  # type: ignore[no-any-return]


@contextmanager
def live_server(tmp_path: Path, *args: str, **env: str) -> Iterator[LiveServer]:
    """Start `python -m api serve [args]` with `env`; stop it (SIGTERM, wait) at the end."""
    port = free_port()
    pythonpath = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    full_env = {
        **os.environ,
        **BASE_ENV,
        "DATA_DIR": str(tmp_path / "data"),
        "DATABASE_URL": f"sqlite://{tmp_path}/live.sqlite3",
        "PYTHONPATH": pythonpath,
        **env,
    }
    if "REDIS_URL" not in env:
        full_env.pop("REDIS_URL", None)  # one process needs no shared revocation feed
    log_path = tmp_path / f"server-{port}.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "api", "serve", "--port", str(port), *args],
            env=full_env,
            cwd=tmp_path,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = LiveServer(f"http://127.0.0.1:{port}", log_path, full_env, proc.pid)
    try:
        _wait_until_healthy(server, proc)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _wait_until_healthy(server: LiveServer, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{server.log()}")
        try:
            with urllib.request.urlopen(f"{server.url}/healthz", timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"server did not become healthy:\n{server.log()}")


def node_or_skip_reason(*packages: Path) -> str | None:
    """Why a test that runs node cannot run here, or None when it can."""
    if shutil.which("node") is None:
        return "node is not installed (CI installs it; see .ci/setup-node)"
    for folder in packages:
        if not (folder / "node_modules").is_dir():
            rel = folder.relative_to(ROOT)
            return f"npm packages missing: run `npm ci --prefix {rel}` (.ci/setup-node does)"
    return None
