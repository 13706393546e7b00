"""The parts of bench/run.py that are not scenarios: servers, wrk, the GraphQL client.

Everything here talks to 127.0.0.1 only, and every load run is bounded by wrk's -d.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

BENCH = Path(__file__).resolve().parent
LUA = BENCH / "lua"
HOST = "127.0.0.1"  # loopback only, always
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class BenchError(Exception):
    """The benchmark cannot go on; the message says why."""


def require_tools() -> None:
    """wrk and taskset must exist; nothing is installed from here."""
    missing = [tool for tool in ("wrk", "taskset") if shutil.which(tool) is None]
    if missing:
        raise BenchError(
            f"missing {', '.join(missing)}: install with `apt-get install -y wrk util-linux`"
        )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    """One server process under test, pinned to the server core."""

    name: str
    kind: str  # ceiling | naive | graphgate
    argv: list[str]
    env: dict[str, str]
    cwd: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    # graphgate only: the bench user and their tokens
    email: str = ""
    password: str = ""
    access_token: str = ""

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/graphql"

    @property
    def log_path(self) -> Path:
        return self.cwd / f"{self.name}.log"

    def start(self, cpu: int) -> None:
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(  # taskset execs python: the pid is the worker's
                ["taskset", "-c", str(cpu), *self.argv, "--port", str(self.port)],
                cwd=self.cwd,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    async def wait_ready(self, session: aiohttp.ClientSession, within: float = 60) -> None:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                raise BenchError(f"{self.name} exited; its log:\n{self.log_tail()}")
            try:
                async with session.post(self.url, json={"query": "{ __typename }"}) as resp:
                    await resp.read()
                    return
            except aiohttp.ClientError:
                await asyncio.sleep(0.2)
        raise BenchError(f"{self.name} did not answer within {within:.0f} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def cpu_seconds(self) -> float:
        """User + system CPU time the process has used (all its threads), in seconds."""
        assert self.proc is not None
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime

    def memory(self) -> dict[str, int]:
        """VmRSS and VmHWM (peak) in KiB, from /proc/<pid>/status."""
        assert self.proc is not None
        values: dict[str, int] = {}
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0])
        return values

    def stop(self) -> None:
        """SIGTERM this server (and only it), then SIGKILL if it lingers."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)


async def gql(
    session: aiohttp.ClientSession,
    url: str,
    query: str,
    variables: dict[str, Any] | None = None,
    token: str | None = None,
) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    body: dict[str, Any] = {"query": query}
    if variables:
        body["variables"] = variables
    async with session.post(url, json=body, headers=headers) as resp:
        result: dict[str, Any] = json.loads(await resp.read())
        return result


REGISTER = """mutation Register($email: String!, $password: String!) {
  register(email: $email, password: $password, displayName: "Bench User") { accessToken }
}"""
LOGIN = """mutation Login($email: String!, $password: String!) {
  login(email: $email, password: $password, device: "bench") { accessToken refreshToken }
}"""


async def register(session: aiohttp.ClientSession, server: Server) -> None:
    """A fresh user on this graphgate (unique per run), with an access token."""
    server.email = f"bench-{secrets.token_hex(6)}@example.com"
    server.password = secrets.token_urlsafe(18)
    answer = await gql(
        session, server.url, REGISTER, {"email": server.email, "password": server.password}
    )
    if answer.get("errors"):
        raise BenchError(f"register on {server.name} failed: {answer['errors']}")
    server.access_token = answer["data"]["register"]["accessToken"]


async def login(session: aiohttp.ClientSession, server: Server) -> dict[str, Any]:
    answer = await gql(
        session, server.url, LOGIN, {"email": server.email, "password": server.password}
    )
    if answer.get("errors"):
        raise BenchError(f"login on {server.name} failed: {answer['errors']}")
    pair: dict[str, Any] = answer["data"]["login"]
    return pair


async def refresh_tokens(
    session: aiohttp.ClientSession, server: Server, count: int, parallel: int = 4
) -> list[str]:
    """`count` refresh tokens, each of its own new session (one login each)."""
    gate = asyncio.Semaphore(parallel)

    async def one() -> str:
        async with gate:
            token: str = (await login(session, server))["refreshToken"]
            return token

    return list(await asyncio.gather(*(one() for _ in range(count))))


@dataclass(frozen=True)
class Load:
    """How wrk loads a server: threads, connections, seconds, and on which core."""

    threads: int
    connections: int
    seconds: int
    cpu: int


async def wrk(
    load: Load, server: Server, script: str, *args: str, seconds: int | None = None
) -> dict[str, Any]:
    """One bounded wrk run against `server`: the RESULT line of the Lua script, requests/s,
    and the server's CPU time per request (steadier than requests/s on a shared machine)."""
    duration = seconds if seconds is not None else load.seconds
    argv = [
        "taskset", "-c", str(load.cpu), "wrk",
        "-t", str(load.threads), "-c", str(load.connections), "-d", f"{duration}s",
        "--timeout", "10s", "-s", str(LUA / script), server.url, "--", *args,
    ]  # fmt: skip
    cpu_before = server.cpu_seconds()
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout=duration + 30)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise BenchError(f"wrk did not finish: {' '.join(argv)}") from None
    for line in out.decode().splitlines():
        if line.startswith("RESULT "):
            result: dict[str, Any] = json.loads(line[len("RESULT ") :].replace("\\\n", "\\n"))
            result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
            cpu = server.cpu_seconds() - cpu_before
            result["cpu_us_per_request"] = cpu * 1e6 / max(result["requests"], 1)
            return result
    raise BenchError(f"wrk printed no RESULT ({proc.returncode}): {err.decode()[-500:]}")


def machine() -> dict[str, str]:
    """What the figures were measured on."""
    model = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    wrk_version = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False)
    mem_kib = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal")
    )
    return {
        "nproc": str(os.cpu_count()),
        "cpu": model,
        "memory": f"{mem_kib / 1024 / 1024:.1f} GiB",
        "python": sys.version.split()[0],
        "kernel": os.uname().release,
        "wrk": (wrk_version.stdout + wrk_version.stderr).splitlines()[0].strip(),
    }


def git_revision(root: Path) -> str:
    result = subprocess.run(
        ["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    )
    dirty = subprocess.run(
        ["git", "-C", str(root), "status", "--porcelain", "--", "api", "schema"],
        capture_output=True,
        text=True,
        check=False,
    )
    rev = result.stdout.strip() or "unknown"
    return f"{rev}{' (modified)' if dirty.stdout.strip() else ''}"
