"""Sign-ins under a flood, and how 2 workers scale against 1.

    python bench/flood.py flood [--workers 1 2] [--postgres-url URL] [--seconds 30]
        [--overload 2.0] [--login-rate 20] [--spoof]
    python bench/flood.py scale [--workers 1 2] [--postgres-url URL] [--rounds 3] [--seconds 10]
    python bench/flood.py shed-cost [--seconds 5]

`flood`: for each worker count, `python -m api serve --workers N` in production settings;
its capacity on `{ me { id roles } }` is measured first (wrk, closed loop, 64 connections,
5 s); then an OPEN-LOOP flood of the same guarded query at `--overload` x that capacity
for `--seconds` (a request every 1/rate s whatever the answers; a new connection when none
is idle, at most `--max-connections`), and at the same time `--login-rate` logins/s (open
loop too, a separate process). A login succeeds when it answers a token within 2 s. With
`--spoof` the flood's documents claim to be sign-ins (`operationName: "login"` and a
comment naming `mutation login`) while they are reads.

`scale`: `{ me { id roles } }` (token only) and `{ me { id email displayName } }` (one
database read) with wrk (closed loop, 2 threads, 64 connections), 1 and 2 workers in
interleaved rounds; the servers are not pinned (2 workers need both cores), so wrk shares
the cores: its own CPU time is measured and reported beside the servers'.

`shed-cost`: CPU per request of a 503 at the door against a served `{ me { id roles } }`,
one worker, two wrk runs in the same minute.

Loopback only; every run is bounded in time and in count; every process started is stopped.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import HOST, BenchError, Load, Server, register, require_tools, wrk

ROOT = Path(__file__).resolve().parent.parent
TOKEN_QUERY = "{ me { id roles } }"
DB_QUERY = "{ me { id email displayName } }"
SPOOF_QUERY = "# mutation login(email, password)\n{ me { id roles } }"
LOGIN = (
    "mutation Login($email: String!, $password: String!) "
    '{ login(email: $email, password: $password, device: "flood") { accessToken } }'
)
LOGIN_DEADLINE = 2.0


# ---------------------------------------------------------------- open-loop HTTP generator


class _Conn(asyncio.Protocol):
    """One keep-alive connection: sends a prepared request, reads one response at a time."""

    def __init__(self, gen: OpenLoop) -> None:
        self.gen = gen
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None
        self.sent_at = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def send(self) -> None:
        assert self.transport is not None
        self.sent_at = time.perf_counter()
        self.transport.write(self.gen.request)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self.buf[:end]).lower()
        start = head.find(b"content-length:")
        length = (
            int(head[start + 15 : head.find(b"\r\n", start) % (len(head) + 1)]) if start >= 0 else 0
        )
        if len(self.buf) < end + 4 + length:
            return
        body = bytes(self.buf[end + 4 : end + 4 + length])
        del self.buf[: end + 4 + length]
        self.gen.answered(self, int(head[9:12]), head, body)

    def connection_lost(self, exc: Exception | None) -> None:
        self.gen.lost(self)


class OpenLoop:
    """`rate` requests/s for `seconds`, whatever the answers (open loop), on loopback."""

    def __init__(self, port: int, body: bytes, token: str, max_connections: int) -> None:
        self.port = port
        self.request = (
            f"POST /graphql HTTP/1.1\r\nHost: {HOST}:{port}\r\n"
            f"Content-Type: application/json\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode() + body
        self.max_connections = max_connections
        self.idle: list[_Conn] = []
        self.busy: set[_Conn] = set()
        self.opened = 0
        self.counts = {"sent": 0, "ok": 0, "shed": 0, "bad": 0, "lost": 0, "not_sent": 0}
        self.ok_latency: list[float] = []
        self.bad_sample = b""

    def answered(self, conn: _Conn, status: int, head: bytes, body: bytes) -> None:
        self.busy.discard(conn)
        if status == 200 and b'"errors"' not in body:
            self.counts["ok"] += 1
            self.ok_latency.append(time.perf_counter() - conn.sent_at)
        elif status == 503 and b"retry-after:" in head and b"SERVICE_UNAVAILABLE" in body:
            self.counts["shed"] += 1
        else:
            self.counts["bad"] += 1
            self.bad_sample = self.bad_sample or head[:12] + body[:200]
        self.idle.append(conn)

    def lost(self, conn: _Conn) -> None:
        if conn in self.busy:
            self.counts["lost"] += 1
            self.busy.discard(conn)
        if conn in self.idle:
            self.idle.remove(conn)
        self.opened -= 1

    async def _open_and_send(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            _, conn = await loop.create_connection(lambda: _Conn(self), HOST, self.port)
        except OSError:
            self.counts["lost"] += 1
            self.opened -= 1
            return
        self.busy.add(conn)
        conn.send()

    async def run(self, rate: float, seconds: float) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        total = int(rate * seconds)
        tasks = set()
        cpu0 = time.process_time()
        start = loop.time()
        sent = 0
        while sent < total:
            due = min(total, int((loop.time() - start) * rate) + 1)
            while sent < due:
                sent += 1
                if self.idle:
                    conn = self.idle.pop()
                    self.busy.add(conn)
                    conn.send()
                elif self.opened < self.max_connections:
                    self.opened += 1
                    task = asyncio.create_task(self._open_and_send())
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
                else:  # every connection waits for an answer: this request is not sent
                    self.counts["not_sent"] += 1
            await asyncio.sleep(0.002)
        elapsed = loop.time() - start
        deadline = loop.time() + 10
        while self.busy and loop.time() < deadline:
            await asyncio.sleep(0.05)
        self.counts["lost"] += len(self.busy)
        for conn in [*self.idle, *self.busy]:
            if conn.transport is not None:
                conn.transport.close()
        self.counts["sent"] = sent - self.counts["not_sent"]
        lat = sorted(self.ok_latency) or [0.0]
        return {
            **self.counts,
            "offered_rps": rate,
            "seconds": elapsed,
            "served_rps": self.counts["ok"] / elapsed,
            "ok_p50_ms": statistics.median(lat) * 1000,
            "ok_p99_ms": lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000,
            "connections_opened_peak": self.max_connections if self.counts["not_sent"] else None,
            "generator_cpu_s": time.process_time() - cpu0,
            "bad_sample": self.bad_sample.decode(errors="replace"),
        }


# ---------------------------------------------------------------- open-loop logins


async def logins(
    url: str, email: str, password: str, rate: float, seconds: float
) -> dict[str, Any]:
    """`rate` logins/s for `seconds`, each on its own request, whatever the latency."""
    outcomes: list[tuple[str, float]] = []
    body = {"query": LOGIN, "variables": {"email": email, "password": password}}
    cpu0 = time.process_time()

    async def one(session: aiohttp.ClientSession) -> None:
        started = time.perf_counter()
        try:
            async with session.post(url, json=body) as resp:
                answer = json.loads(await resp.read())
                status = resp.status
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            outcomes.append((type(exc).__name__, time.perf_counter() - started))
            return
        elapsed = time.perf_counter() - started
        if status == 200 and (answer.get("data") or {}).get("login"):
            outcomes.append(("ok", elapsed))
        else:
            errors = answer.get("errors") or [{}]
            outcomes.append((f"{status} {errors[0].get('extensions', {}).get('code')}", elapsed))

    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(
        timeout=timeout, connector=aiohttp.TCPConnector(limit=0)
    ) as session:
        tasks = []
        total = int(rate * seconds)
        start = time.perf_counter()
        while len(tasks) < total:
            due = min(total, int((time.perf_counter() - start) * rate) + 1)
            while len(tasks) < due:
                tasks.append(asyncio.create_task(one(session)))
            await asyncio.sleep(0.005)
        await asyncio.gather(*tasks)
    ok = sorted(t for kind, t in outcomes if kind == "ok")
    codes: dict[str, int] = {}
    for kind, _ in outcomes:
        if kind != "ok":
            codes[kind] = codes.get(kind, 0) + 1
    within = sum(1 for t in ok if t <= LOGIN_DEADLINE)
    return {
        "sent": len(outcomes),
        "ok": len(ok),
        "ok_within_2s": within,
        "share_within_2s": within / max(len(outcomes), 1),
        "p50_ms": statistics.median(ok) * 1000 if ok else None,
        "p99_ms": ok[min(len(ok) - 1, int(len(ok) * 0.99))] * 1000 if ok else None,
        "refused": codes,
        "client_cpu_s": time.process_time() - cpu0,
    }


# ---------------------------------------------------------------- servers


def graphgate(workers: int, workdir: Path, database_url: str, extra_env: list[str]) -> Server:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "PYTHONUNBUFFERED": "1",
        "APP_ENV": "production",
        "JWT_SECRET": secrets.token_urlsafe(48),
        "JWT_REFRESH_SECRET": secrets.token_urlsafe(48),
        "PUBLIC_URL": "http://127.0.0.1:8000",
        "METRICS_TOKEN": secrets.token_urlsafe(32),
        "ACCESS_TOKEN_TTL": "3600",
        "DATABASE_URL": database_url,
        # One client IP sends every request here: limits would measure refusals.
        "RATE_LIMIT_PER_IP": "",
        "RATE_LIMIT_PER_EMAIL": "",
        "WORKERS": str(workers),
    }
    env.pop("REDIS_URL", None)
    for pair in extra_env:
        key, _, value = pair.partition("=")
        env[key] = value
    argv = [sys.executable, "-m", "api", "serve"]
    return Server(f"graphgate-{workers}w", "graphgate", argv, env, workdir)


def worker_pids(server: Server) -> list[int]:
    """The serving processes, as they announce themselves in the log ("worker PID started")."""
    import re

    return [int(pid) for pid in re.findall(r"worker (\d+) started", server.log_path.read_text())]


def cpu_of(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def started(server: Server, session: aiohttp.ClientSession, workers: int) -> None:
    server.start("0-1")  # type: ignore[arg-type]  # both cores: taskset -c 0-1
    await server.wait_ready(session)
    deadline = time.monotonic() + 60
    while len(worker_pids(server)) < workers:
        if time.monotonic() > deadline:
            raise BenchError(f"{server.name}: workers did not start\n{server.log_tail()}")
        await asyncio.sleep(0.2)
    await register(session, server)
    await asyncio.sleep(1)


def body_file(workdir: Path, query: str, name: str | None = None) -> str:
    path = workdir / f"body-{abs(hash((query, name)))}.json"
    payload: dict[str, Any] = {"query": query}
    if name:
        payload["operationName"] = name
    path.write_text(json.dumps(payload))
    return str(path)


async def measured_wrk(
    load: Load, server: Server, body: str, token: str, seconds: int, *extra: str
) -> dict[str, Any]:
    """harness.wrk plus the CPU of wrk itself and of each worker."""
    pids = worker_pids(server)
    before = {pid: cpu_of(pid) for pid in pids}
    children0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = await wrk(load, server, "query.lua", body, token, *extra, seconds=seconds)
    children1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    gen = (children1.ru_utime - children0.ru_utime) + (children1.ru_stime - children0.ru_stime)
    per_worker = [cpu_of(pid) - before[pid] for pid in pids]
    result["wrk_cpu_s"] = gen
    result["worker_cpu_s"] = per_worker
    result["server_cpu_us_per_request"] = sum(per_worker) * 1e6 / max(result["requests"], 1)
    return result


# ---------------------------------------------------------------- the two scenarios


async def flood_one(
    args: argparse.Namespace, workers: int, workdir: Path, database_url: str
) -> dict[str, Any]:
    server = graphgate(workers, workdir, database_url, args.graphgate_env)
    async with aiohttp.ClientSession() as session:
        try:
            await started(server, session, workers)
            token_path = workdir / "token.txt"
            token_path.write_text(server.access_token)
            load = Load(threads=1, connections=64, seconds=5, cpu="0-1")  # type: ignore[arg-type]
            probe = await measured_wrk(
                load, server, body_file(workdir, TOKEN_QUERY), str(token_path), 5
            )
            # Only the answers served count (a loaded machine may already refuse some).
            capacity = probe["rps"] * (probe["requests"] - probe["bad"]) / max(probe["requests"], 1)
            rate = args.rate or capacity * args.overload
            query, name = (SPOOF_QUERY, "login") if args.spoof else (TOKEN_QUERY, None)
            payload: dict[str, Any] = {"query": query}
            if name:
                payload["operationName"] = name
            gen = OpenLoop(
                server.port, json.dumps(payload).encode(), server.access_token, args.max_connections
            )
            pids = worker_pids(server)
            cpu_before = {pid: cpu_of(pid) for pid in pids}
            login_proc = await asyncio.create_subprocess_exec(
                sys.executable, __file__, "_logins", server.url, server.email, server.password,
                str(args.login_rate), str(args.seconds), stdout=asyncio.subprocess.PIPE,
            )  # fmt: skip
            flood = await gen.run(rate, args.seconds)
            out, _ = await asyncio.wait_for(login_proc.communicate(), timeout=args.seconds + 60)
            login = json.loads(out)
            cpu = {pid: cpu_of(pid) - cpu_before[pid] for pid in pids}
            rss = {pid: rss_mib(pid) for pid in pids}
            return {
                "workers": workers,
                "capacity_rps": capacity,
                "flood": flood,
                "logins": login,
                "worker_cpu_s": list(cpu.values()),
                "worker_rss_mib": list(rss.values()),
            }
        finally:
            server.stop()


async def scale(args: argparse.Namespace, workdir: Path, database_url: str) -> dict[str, Any]:
    runs: dict[str, list[dict[str, Any]]] = {}
    servers = {w: graphgate(w, workdir, database_url, args.graphgate_env) for w in args.workers}
    load = Load(threads=2, connections=64, seconds=args.seconds, cpu="0-1")  # type: ignore[arg-type]
    async with aiohttp.ClientSession() as session:
        try:
            for workers, server in servers.items():
                await started(server, session, workers)
                server.stop()  # one server at a time under load; start again per round
            for round_ in range(args.rounds):
                order = list(servers.items())
                if round_ % 2:
                    order.reverse()
                for workers, server in order:
                    await started(server, session, workers)
                    token = workdir / f"token-{workers}.txt"
                    token.write_text(server.access_token)
                    for label, query in (("token", TOKEN_QUERY), ("database", DB_QUERY)):
                        body = body_file(workdir, query)
                        await wrk(load, server, "query.lua", body, str(token), seconds=2)  # warm-up
                        result = await measured_wrk(load, server, body, str(token), args.seconds)
                        result["rss_mib"] = [rss_mib(p) for p in worker_pids(server)]
                        runs.setdefault(f"{label}/{workers}", []).append(result)
                        print(
                            f"round {round_ + 1} {label:8} {workers} worker(s): "
                            f"{result['rps']:7.0f} req/s bad={result['bad']} "
                            f"server {result['server_cpu_us_per_request']:.0f} us/req, "
                            f"per worker CPU {[round(c, 1) for c in result['worker_cpu_s']]} s, "
                            f"wrk CPU {result['wrk_cpu_s']:.1f} s of {args.seconds} s",
                            flush=True,
                        )
                    server.stop()
        finally:
            for server in servers.values():
                server.stop()
    summary: dict[str, Any] = {}
    for label in ("token", "database"):
        one, two = runs.get(f"{label}/1"), runs.get(f"{label}/2")
        if not one or not two:
            continue
        ratios = [b["rps"] / a["rps"] for a, b in zip(one, two, strict=True)]
        summary[label] = {
            "rps_1": statistics.median(r["rps"] for r in one),
            "rps_2": statistics.median(r["rps"] for r in two),
            "ratio_median": statistics.median(ratios),
            "ratios": ratios,
            "wrk_cores_1": statistics.median(r["wrk_cpu_s"] / args.seconds for r in one),
            "wrk_cores_2": statistics.median(r["wrk_cpu_s"] / args.seconds for r in two),
            "server_cores_1": statistics.median(sum(r["worker_cpu_s"]) / args.seconds for r in one),
            "server_cores_2": statistics.median(sum(r["worker_cpu_s"]) / args.seconds for r in two),
            "us_per_req_1": statistics.median(r["server_cpu_us_per_request"] for r in one),
            "us_per_req_2": statistics.median(r["server_cpu_us_per_request"] for r in two),
            "rss_mib_max": max(max(r["rss_mib"]) for r in one + two),
        }
    return {"runs": runs, "summary": summary}


async def shed_cost(args: argparse.Namespace, workdir: Path, database_url: str) -> dict[str, Any]:
    """CPU per request of a refusal against a served `me { id roles }`, same minute, 1 worker:
    with MAX_IN_FLIGHT=1, a query that waits on the database holds the one slot, so nearly
    every other request of the same wrk run is refused at the door. Every request comes on a
    new connection (a refused connection is not read again for a second: what a flood costs
    is then a connection and a refusal), in both runs alike."""
    load = Load(threads=1, connections=32, seconds=args.seconds, cpu="0-1")  # type: ignore[arg-type]
    out: dict[str, Any] = {}
    for label, query, env in (
        ("served", TOKEN_QUERY, []),
        ("refused", DB_QUERY, ["MAX_IN_FLIGHT=1"]),
    ):
        server = graphgate(1, workdir, database_url, [*args.graphgate_env, *env])
        async with aiohttp.ClientSession() as session:
            try:
                await started(server, session, 1)
                token = workdir / "token.txt"
                token.write_text(server.access_token)
                result = await measured_wrk(
                    load, server, body_file(workdir, query), str(token), args.seconds, "close"
                )
            finally:
                server.stop()
        ok = result["requests"] - result["bad"]
        out[label] = {"requests": result["requests"], "refused": result["bad"], "served": ok,
                      "cpu_us_per_request": result["server_cpu_us_per_request"]}  # fmt: skip
        print(f"{label}: {result['requests']} requests ({result['bad']} refused), server "
              f"{result['server_cpu_us_per_request']:.0f} us/request", flush=True)  # fmt: skip
    out["ratio"] = out["refused"]["cpu_us_per_request"] / out["served"]["cpu_us_per_request"]
    print(f"a refusal costs {out['ratio']:.2f} of a served me {{ id roles }}")
    return out


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "_logins":
        url, email, password, rate, seconds = sys.argv[2:7]
        if not url.startswith(f"http://{HOST}:"):
            raise SystemExit("loopback only")
        print(json.dumps(asyncio.run(logins(url, email, password, float(rate), float(seconds)))))
        return 0
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("mode", choices=["flood", "scale", "shed-cost"])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--postgres-url", default=os.environ.get("BENCH_POSTGRES_URL"))
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--overload", type=float, default=2.0, help="flood rate / capacity")
    parser.add_argument("--rate", type=float, help="flood rate in requests/s (else --overload)")
    parser.add_argument("--login-rate", type=float, default=20.0)
    parser.add_argument("--max-connections", type=int, default=2000)
    parser.add_argument("--spoof", action="store_true", help="flood documents claim to be logins")
    parser.add_argument("--graphgate-env", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if not 1 <= args.seconds <= 120 or not 1 <= args.rounds <= 10:
        raise SystemExit("--seconds 1..120 and --rounds 1..10: bounded runs only")
    if (args.rate is not None and args.rate > 50_000) or args.login_rate > 200:
        raise SystemExit("--rate at most 50,000/s and --login-rate at most 200/s")
    require_tools()
    with tempfile.TemporaryDirectory(prefix="graphgate-flood-") as tmp:
        workdir = Path(tmp)
        database_url = args.postgres_url or f"sqlite://{workdir}/flood.sqlite3"
        if args.mode == "shed-cost":
            report = asyncio.run(shed_cost(args, workdir, database_url))
        elif args.mode == "scale":
            report: dict[str, Any] = asyncio.run(scale(args, workdir, database_url))
            for label, s in report["summary"].items():
                print(
                    f"{label}: 1 worker {s['rps_1']:.0f} req/s, 2 workers {s['rps_2']:.0f} req/s, "
                    f"ratio {s['ratio_median']:.2f} (rounds {[round(r, 2) for r in s['ratios']]}); "
                    f"wrk used {s['wrk_cores_1']:.2f} / {s['wrk_cores_2']:.2f} cores, servers "
                    f"{s['server_cores_1']:.2f} / {s['server_cores_2']:.2f} cores, "
                    f"{s['us_per_req_1']:.0f} / {s['us_per_req_2']:.0f} us/req; "
                    f"max RSS {s['rss_mib_max']:.0f} MiB"
                )
        else:
            results = []
            for workers in args.workers:
                result = asyncio.run(flood_one(args, workers, workdir, database_url))
                results.append(result)
                f, lg = result["flood"], result["logins"]
                print(
                    f"{workers} worker(s): capacity {result['capacity_rps']:.0f} req/s; flood offered "
                    f"{f['offered_rps']:.0f}/s: sent {f['sent']} ok {f['ok']} ({f['served_rps']:.0f}/s, "
                    f"p50 {f['ok_p50_ms']:.0f} ms, p99 {f['ok_p99_ms']:.0f} ms) shed {f['shed']} "
                    f"bad {f['bad']} lost {f['lost']} not-sent {f['not_sent']}; generator CPU "
                    f"{f['generator_cpu_s']:.1f} s; logins {lg['ok_within_2s']}/{lg['sent']} "
                    f"within 2 s ({lg['share_within_2s']:.1%}), p50 {lg['p50_ms']} p99 {lg['p99_ms']} ms, "
                    f"refused {lg['refused']}; worker CPU {[round(c, 1) for c in result['worker_cpu_s']]} s, "
                    f"RSS {[round(r) for r in result['worker_rss_mib']]} MiB",
                    flush=True,
                )
                if f["bad_sample"]:
                    print("  bad answer sample:", f["bad_sample"][:200])
            report = {"results": results}
        if args.json:
            args.json.write_text(
                json.dumps({"mode": args.mode, "argv": sys.argv, **report}, indent=1)
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
