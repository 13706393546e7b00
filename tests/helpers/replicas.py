"""The replica rig: two `python -m api serve` processes (1 or 2 workers each) on their own
ports, one PostgreSQL database, one Redis, and HAProxy in front with the project's own
configuration (deploy/haproxy/haproxy.cfg, the one docker-compose.yml's `replicas` profile runs).

Clients talk to the proxy only, each from an address of its own on the loopback network
(127.0.0.N, N >= 2), while the proxy reaches the replicas from 127.0.0.1, which is all
TRUSTED_PROXIES names: the replicas must find the client's address in the proxy's
X-Forwarded-For line. With PROXY_REPLICA_HEADER set, the proxy names the replica that
answered in `X-Replica` (`api1`, `api2`), and its stats page says which ones it counts as up.
"""

from __future__ import annotations

import csv
import io
import itertools
import os
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.helpers.env import ROOT
from tests.helpers.live import LiveServer, free_port, wait_for_port

HAPROXY_CONFIG = ROOT / "deploy" / "haproxy" / "haproxy.cfg"
NAMES = ("api1", "api2")
_client_addresses = (f"127.0.0.{n}" for n in itertools.cycle(range(2, 255)))


def haproxy_or_skip() -> str:
    """The haproxy binary; skips the test, with the reason, where it is not installed."""
    found = shutil.which("haproxy") or next(
        (path for path in ("/usr/sbin/haproxy",) if os.access(path, os.X_OK)), None
    )
    if found is None:
        pytest.skip("HAProxy is not installed (CI installs Debian's package: .ci/setup-proxy)")
    return found


def client_address() -> str:
    """A loopback address no other client of this run uses (its own per-IP limits)."""
    return next(_client_addresses)


class Proxy:
    """HAProxy in the foreground with deploy/haproxy/haproxy.cfg, in front of `ports`."""

    def __init__(self, binary: str, cwd: Path, ports: list[int]) -> None:
        self.port, self.stats_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {
            **os.environ,
            "PROXY_BIND": f"127.0.0.1:{self.port}",
            "STATS_BIND": f"127.0.0.1:{self.stats_port}",
            "PROXY_REPLICA_HEADER": "1",
            **{
                f"{name.upper()}_ADDR": f"127.0.0.1:{port}"
                for name, port in zip(NAMES, ports, strict=True)
            },
        }
        self.log_path = cwd / "haproxy.log"
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [binary, "-db", "-f", str(HAPROXY_CONFIG)],
                env=env,
                cwd=cwd,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_for_port(self.port, 10, self.proc)

    def states(self) -> dict[str, str]:
        """Each replica's state as the proxy sees it: `UP`, `DOWN`, `UP 1/2` (going down)..."""
        url = f"http://127.0.0.1:{self.stats_port}/stats;csv"
        with urllib.request.urlopen(url, timeout=2) as resp:
            text = resp.read().decode().lstrip("# ")
        rows = csv.DictReader(io.StringIO(text))
        return {row["svname"]: row["status"] for row in rows if row["svname"] in NAMES}

    def wait_state(self, name: str, state: str, timeout: float = 20) -> float:
        """Until the proxy counts `name` as `state`; the seconds it took."""
        started = time.monotonic()
        while (seen := self.states().get(name)) != state:
            if time.monotonic() - started > timeout:
                raise TimeoutError(f"{name} is {seen}, not {state}, after {timeout} s")
            time.sleep(0.05)
        return time.monotonic() - started

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


@dataclass
class Answer:
    """One answer through the proxy: its body and the replica that gave it."""

    body: dict[str, Any]
    replica: str


@dataclass
class Client:
    """An HTTP client of the proxy from one loopback address of its own."""

    url: str
    ip: str
    http: aiohttp.ClientSession

    async def call(
        self,
        query: str,
        variables: dict[str, Any] | None = None,
        token: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        """One POST /graphql, which must get a 200 JSON answer."""
        headers = {**(headers or {}), **({"Authorization": f"Bearer {token}"} if token else {})}
        body = {"query": query, "variables": variables or {}}
        async with self.http.post(f"{self.url}/graphql", json=body, headers=headers) as resp:
            assert resp.status == 200, f"{resp.status} {await resp.text()}"
            return Answer(await resp.json(), resp.headers.get("X-Replica", "?"))

    async def gql(
        self, query: str, variables: dict[str, Any] | None = None, token: str | None = None
    ) -> dict[str, Any]:
        """The body of one POST /graphql."""
        return (await self.call(query, variables, token)).body


@dataclass(frozen=True)
class Roll:
    """What one replica's restart looked like (seconds from its SIGTERM)."""

    name: str
    out_of_rotation_after: float
    still_running_when_out: bool
    exit_status: int
    exited_after: float
    back_in_rotation_after: float


@dataclass
class Rig:
    """Two replicas behind the proxy; `restart` replaces one on its own port."""

    root: Path
    env: dict[str, str]
    workers: int
    replicas: list[LiveServer] = field(default_factory=list)
    ports: list[int] = field(default_factory=list)
    proxy: Proxy | None = None
    _generation: Iterator[int] = field(default_factory=itertools.count)

    @property
    def url(self) -> str:
        assert self.proxy is not None
        return self.proxy.url

    def spawn(self, index: int) -> LiveServer:
        """Start replica `index` (not yet ready) on its port."""
        cwd = self.root / f"{NAMES[index]}-{next(self._generation)}"
        cwd.mkdir()
        args = ("--workers", str(self.workers))
        return LiveServer(self.env, cwd, *args, port=self.ports[index])

    def start(self, haproxy: str) -> Rig:
        self.ports = [free_port() for _ in NAMES]
        # Both at once: they migrate the empty database together (one waits for the other).
        self.replicas = [self.spawn(index) for index in range(len(NAMES))]
        for replica in self.replicas:
            replica.wait_ready(60).wait_for_log("started", count=self.workers)
        self.proxy = Proxy(haproxy, self.root, self.ports)
        for name in NAMES:
            self.proxy.wait_state(name, "UP")
        return self

    def roll(self, index: int) -> Roll:
        """Restart replica `index` as an orchestrator would: SIGTERM; the proxy must count it
        out while it still runs (readiness before the port closes); it must exit 0; a new
        one starts on the same port and the proxy counts it in again."""
        assert self.proxy is not None
        name, old = NAMES[index], self.replicas[index]
        started = time.monotonic()
        old.terminate()
        out_after = self.proxy.wait_state(name, "DOWN")
        still_running = old.proc.poll() is None
        status = old.wait(60)
        exited_after = time.monotonic() - started
        new = self.replicas[index] = self.spawn(index)
        new.wait_ready(60).wait_for_log("started", count=self.workers)
        self.proxy.wait_state(name, "UP")
        back_after = time.monotonic() - started
        return Roll(name, out_after, still_running, status, exited_after, back_after)

    def stop(self) -> None:
        """Everything down; the replicas at once (a second SIGTERM skips SHUTDOWN_DELAY)."""
        if self.proxy is not None:
            self.proxy.stop()
        running = [replica for replica in self.replicas if replica.proc.poll() is None]
        for replica in running:
            replica.terminate()
        time.sleep(0.5)  # the first SIGTERM handled: the second one means "now"
        for replica in running:
            if replica.proc.poll() is None:
                replica.terminate()
        for replica in running:
            replica.stop()

    def client(self, http: aiohttp.ClientSession, ip: str) -> Client:
        return Client(self.url, ip, http)


def client_session(ip: str, **kwargs: Any) -> aiohttp.ClientSession:
    """An aiohttp session whose connections leave from `ip` (a loopback address)."""
    connector = aiohttp.TCPConnector(local_addr=(ip, 0), limit=0)
    return aiohttp.ClientSession(connector=connector, **kwargs)
