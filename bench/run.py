"""Interleaved benchmark: ceiling vs naive vs graphgate (SQLite, PostgreSQL), one run.

    python bench/run.py [--rounds 3] [--seconds 10] [--postgres-url URL] [--json out.json]

Installs nothing: it needs `wrk` (Debian package) and `taskset`. Servers run pinned to
one core (--server-cpu), wrk and this script to the other (--load-cpu). Every server is
started here, on 127.0.0.1 and a free port, and stopped here. Each scenario runs in
rounds: ceiling, naive, graphgate-sqlite, graphgate-postgres, ceiling, ... so that every
ratio compares figures taken minutes apart at most. See bench/README.md for the meaning
of every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import (
    BENCH,
    LOGIN,
    REGISTER,
    BenchError,
    Load,
    Server,
    git_revision,
    gql,
    login,
    machine,
    refresh_tokens,
    register,
    require_tools,
    wrk,
)

QUERIES = {
    "me { id roles }": "{ me { id roles } }",
    "me { id email displayName }": "{ me { id email displayName } }",
    "notes(first: 20) + owner": "{ notes(first: 20) { edges { node { title owner { email } } } } }",
}
CREATE_NOTE = 'mutation N($t: String!) { createNote(title: $t, body: "bench") { id } }'
# --scenarios revocation: graphgate-sqlite against this twin, whose revocation check always
# answers "not revoked" (bench/launch_no_revocation.py; a bench-only launcher, no setting).
TWIN = "graphgate-sqlite-norevoke"
REVOCATION_LABEL = "me { id roles }: revocation check on / off"
NOLOCK = "-nolock"  # --user-lock-cost: a database ceiling without the locked user read


def make_servers(args: argparse.Namespace, workdir: Path) -> list[Server]:
    access, refresh = secrets.token_urlsafe(48), secrets.token_urlsafe(48)
    common = {**os.environ, "JWT_SECRET": access, "PYTHONUNBUFFERED": "1"}
    for name in ("JWT_ISSUER", "JWT_AUDIENCE", "DATABASE_URL", "REDIS_URL"):
        common.pop(name, None)  # the same defaults for every server
    py = sys.executable
    servers = [
        Server("ceiling", "ceiling", [py, str(BENCH / "ceiling.py")], common, workdir),
        Server("naive", "naive", [py, str(BENCH / "naive.py")], common, workdir),
    ]
    graphgate_env = {
        **common,
        "PYTHONPATH": str(args.app_root),
        "APP_ENV": "production",
        "JWT_REFRESH_SECRET": refresh,
        "PUBLIC_URL": "http://127.0.0.1:8000",
        "METRICS_TOKEN": secrets.token_urlsafe(32),
        "ACCESS_TOKEN_TTL": "3600",  # the run's tokens must outlive the run
        # One client IP sends every request here: limits would measure refusals.
        "RATE_LIMIT_PER_IP": "",
        "RATE_LIMIT_PER_EMAIL": "",
    }
    for pair in args.graphgate_env:
        key, _, value = pair.partition("=")
        graphgate_env[key] = value
    databases = {"graphgate-sqlite": f"sqlite://{workdir}/bench.sqlite3"}
    if args.postgres_url:
        databases["graphgate-postgres"] = args.postgres_url
    for name, url in databases.items():
        env = {**graphgate_env, "DATABASE_URL": url}
        servers.append(Server(name, "graphgate", [py, "-m", "api", "serve"], env, workdir))
    for name, url in databases.items():  # the driver alone on graphgate's own database
        argv = [py, str(BENCH / "ceiling_db.py"), "--database", url]
        servers.append(Server(db_ceiling(name), "ceiling-db", argv, {**graphgate_env}, workdir))
        if args.user_lock_cost:  # the same without the refresh's locked user read
            argv = [*argv, "--skip-user-lock"]
            variant = db_ceiling(name) + NOLOCK
            servers.append(Server(variant, "ceiling-db", argv, {**graphgate_env}, workdir))
    if "revocation" in args.scenarios:  # same settings as graphgate-sqlite, its own file
        env = {**graphgate_env, "DATABASE_URL": f"sqlite://{workdir}/{TWIN}.sqlite3"}
        argv = [py, str(BENCH / "launch_no_revocation.py"), "serve"]
        servers.append(Server(TWIN, "twin", argv, env, workdir))
    for alt in args.alt:  # another source tree (a proposed change), on its own SQLite file
        name, _, root = alt.partition("=")
        env = {**graphgate_env, "PYTHONPATH": str(Path(root).resolve())}
        env["DATABASE_URL"] = f"sqlite://{workdir}/{name}.sqlite3"
        for extra in args.alt_env:
            alt_name, _, pair = extra.partition(":")
            if alt_name == name:
                key, _, value = pair.partition("=")
                env[key] = value
        servers.append(Server(name, "graphgate", [py, "-m", "api", "serve"], env, workdir))
    if args.servers:
        unknown = set(args.servers) - {s.name for s in servers}
        if unknown:
            raise BenchError(
                f"unknown --servers {sorted(unknown)}; known: {[s.name for s in servers]}"
            )
        servers = [s for s in servers if s.name in args.servers]
    names = {s.name for s in servers}
    if "revocation" in args.scenarios and not {"graphgate-sqlite", TWIN} <= names:
        raise BenchError(f"--scenarios revocation needs graphgate-sqlite and {TWIN}")
    return servers


def db_ceiling(graphgate: str) -> str:
    """The name of the database ceiling on graphgate's database: graphgate-sqlite ->
    ceiling-db-sqlite."""
    return "ceiling-db-" + graphgate.removeprefix("graphgate-")


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    med = statistics.median
    return {
        "rps": med(r["rps"] for r in runs),
        "rps_min": min(r["rps"] for r in runs),
        "rps_max": max(r["rps"] for r in runs),
        "p50_ms": med(r["p50_us"] for r in runs) / 1000,
        "p99_ms": med(r["p99_us"] for r in runs) / 1000,
        "cpu_us": med(r["cpu_us_per_request"] for r in runs),
        "bad": sum(r["bad"] for r in runs),
        "requests": sum(r["requests"] for r in runs),
        "rounds": runs,
    }


def ratios(per_round: dict[str, list[dict[str, Any]]], num: str, den: str, key: str) -> list[float]:
    return [a[key] / b[key] for a, b in zip(per_round[num], per_round[den], strict=True)]


class Bench:
    def __init__(self, args: argparse.Namespace, servers: list[Server], workdir: Path) -> None:
        self.args = args
        self.servers = {s.name: s for s in servers}
        self.graphgates = [s for s in servers if s.kind == "graphgate"]
        self.twins = [s for s in servers if s.kind == "twin"]  # only in their own scenario
        # graphgate -> the database ceiling on its database (bench/ceiling_db.py)
        self.db_pairs = {
            g.name: self.servers[db_ceiling(g.name)]
            for g in self.graphgates
            if db_ceiling(g.name) in self.servers
        }
        self.workdir = workdir
        self.load = Load(args.threads, args.connections, args.seconds, args.load_cpu)
        self.report: dict[str, Any] = {"scenarios": {}, "skipped": {}}

    def token_for(self, server: Server) -> str:
        # ceiling and naive accept graphgate's tokens: same secret, issuer, audience
        for gg, ceiling in self.db_pairs.items():
            if ceiling is server:  # its rows are those of that graphgate's bench user
                return self.servers[gg].access_token
        return server.access_token or self.graphgates[0].access_token

    def paired(self) -> list[str]:
        """Each database ceiling next to its graphgate: ceiling-db-sqlite, graphgate-sqlite, ..."""
        return [n for gg, c in self.db_pairs.items() for n in (c.name, gg)]

    async def same_answers(self, session: aiohttp.ClientSession, query: str) -> None:
        """A database ceiling must answer exactly what its graphgate answers."""
        for gg, ceiling in self.db_pairs.items():
            token = self.servers[gg].access_token
            ours = await gql(session, self.servers[gg].url, query, token=token)
            theirs = await gql(session, ceiling.url, query, token=token)
            if ours != theirs or ours.get("errors"):
                raise BenchError(f"{ceiling.name} answered {theirs}, {gg} {ours}: not the same")

    def write(self, name: str, text: str) -> str:
        path = self.workdir / name
        path.write_text(text)
        return str(path)

    async def check(self, session: aiohttp.ClientSession, server: Server, query: str) -> str | None:
        """None when the query answers without errors; otherwise why the scenario is skipped."""
        answer = await gql(session, server.url, query, token=self.token_for(server))
        if not answer.get("errors"):
            return None
        message = answer["errors"][0].get("message", "")
        if "Cannot query field" in message or "Unknown argument" in message:
            return f"the query does not validate on {server.name}: {message}"
        raise BenchError(f"{server.name} answered {query!r} with {answer['errors']}")

    async def query_scenario(
        self,
        session: aiohttp.ClientSession,
        label: str,
        names: list[str],
        query: str | None = None,
        bases: dict[str, list[str]] | None = None,
        alternate: bool = False,
    ) -> dict[str, Any] | None:
        """wrk rounds of one query; `bases`: which ratios to compute (default: every
        graphgate against ceiling and naive); `alternate`: reverse the order in odd rounds."""
        query = query or QUERIES[label]
        servers = []
        for name in names:
            if name not in self.servers:
                continue
            reason = await self.check(session, self.servers[name], query)
            if reason is not None:
                print(f"  SKIPPED on {name}: {reason}", flush=True)
                self.report["skipped"].setdefault(label, []).append(reason)
            else:
                servers.append(self.servers[name])
        if not servers:
            return None
        body = self.write("body.json", json.dumps({"query": query}))
        tokens = {s.name: self.write(f"token-{s.name}", self.token_for(s)) for s in servers}
        for server in servers:  # warm-up: connection pools, caches, lazy imports
            await wrk(self.load, server, "query.lua", body, tokens[server.name], seconds=2)
        per_round: dict[str, list[dict[str, Any]]] = {s.name: [] for s in servers}
        for round_no in range(self.args.rounds):
            order = servers[::-1] if alternate and round_no % 2 else servers
            for server in order:
                result = await wrk(self.load, server, "query.lua", body, tokens[server.name])
                per_round[server.name].append(result)
                self.progress(label, round_no, server.name, result)
        scenario = {name: summarise(runs) for name, runs in per_round.items()}
        if bases is None:
            bases = {s.name: ["ceiling", "naive"] for s in servers if s.kind == "graphgate"}
        for gg, base_names in bases.items():
            for base in base_names:
                if gg in per_round and base in per_round:
                    scenario[gg][f"vs_{base}"] = ratios(per_round, gg, base, "rps")
                    # the same ratio from CPU time per request: base cost / our cost
                    scenario[gg][f"cpu_vs_{base}"] = ratios(
                        per_round, base, gg, "cpu_us_per_request"
                    )
        self.report["scenarios"][label] = scenario
        return scenario

    async def revocation_scenario(self, session: aiohttp.ClientSession) -> None:
        """`{ me { id roles } }` on graphgate-sqlite and on its twin without the check."""
        on, off = self.servers["graphgate-sqlite"], self.servers[TWIN]
        count = self.args.revoked_sessions
        for server, accepted in ((on, False), (off, True)):
            token = await self.revoked_sessions(session, server, count)
            # The switch is real: an ended session's token is refused only where it is on.
            answer = await gql(session, server.url, QUERIES["me { id roles }"], token=token)
            codes = [e.get("extensions", {}).get("code") for e in answer.get("errors") or []]
            if accepted != (not codes) or (not accepted and codes != ["TOKEN_REVOKED"]):
                raise BenchError(
                    f"{server.name}: a token of an ended session got {answer}; expected "
                    + ("data (check off)" if accepted else "TOKEN_REVOKED (check on)")
                )
            print(f"  {server.name}: {count} ended sessions; their token is "
                  f"{'accepted' if accepted else 'refused (TOKEN_REVOKED)'}", flush=True)  # fmt: skip
        scenario = await self.query_scenario(
            session,
            REVOCATION_LABEL,
            [on.name, off.name],
            query=QUERIES["me { id roles }"],
            bases={on.name: [off.name]},
            alternate=True,  # on, off, then off, on: a drift favours neither
        )
        assert scenario is not None
        mine = scenario[on.name]
        # What the check costs: the share of req/s lost, and the extra CPU per request.
        mine["check_cost_rps"] = [1 - r for r in mine[f"vs_{off.name}"]]
        mine["check_cost_cpu"] = [1 / r - 1 for r in mine[f"cpu_vs_{off.name}"]]
        mine["revoked_sessions"] = count

    @staticmethod
    async def revoked_sessions(
        session: aiohttp.ClientSession, server: Server, count: int, parallel: int = 4
    ) -> str:
        """`count` sessions of a user of their own, all ended by `logoutAll`: `count`
        entries in the worker's revocation list. Returns the access token of one of them."""
        email, password = f"revoked-{secrets.token_hex(6)}@example.com", secrets.token_urlsafe(18)
        answer = await gql(session, server.url, REGISTER, {"email": email, "password": password})
        if answer.get("errors"):
            raise BenchError(f"register on {server.name} failed: {answer['errors']}")
        first: str = answer["data"]["register"]["accessToken"]  # register opens a session
        gate = asyncio.Semaphore(parallel)

        async def one() -> str:
            async with gate:
                made = await gql(session, server.url, LOGIN, {"email": email, "password": password})
                if made.get("errors"):
                    raise BenchError(f"login on {server.name} failed: {made['errors']}")
                token: str = made["data"]["login"]["accessToken"]
                return token

        tokens = await asyncio.gather(*(one() for _ in range(count - 1)))
        ended = await gql(session, server.url, "mutation { logoutAll }", token=tokens[-1])
        if ended.get("errors") or ended["data"]["logoutAll"] != count:
            raise BenchError(f"logoutAll on {server.name}: {ended}; expected {count}")
        return first

    async def notes_scenario(self, session: aiohttp.ClientSession) -> None:
        label = "notes(first: 20) + owner"
        for gg in self.graphgates:
            answer = await gql(session, gg.url, QUERIES[label], token=gg.access_token)
            if answer.get("errors"):
                break  # query_scenario says why
            for n in range(20 - len(answer["data"]["notes"]["edges"])):
                made = await gql(session, gg.url, CREATE_NOTE, {"t": f"note {n}"}, gg.access_token)
                if made.get("errors"):
                    raise BenchError(f"createNote on {gg.name}: {made['errors']}")
        await self.same_answers(session, QUERIES[label])
        names = self.paired() or [g.name for g in self.graphgates]
        await self.query_scenario(session, label, names, bases=self.db_bases(), alternate=True)

    def db_bases(self) -> dict[str, list[str]]:
        return {gg: [ceiling.name] for gg, ceiling in self.db_pairs.items()}

    async def refresh_scenario(self, session: aiohttp.ClientSession) -> None:
        label = "refresh rotations"
        # Each graphgate mints the sessions; its database ceiling rotates them on the same
        # database, with the same SQL (bench/ceiling_db.py). Pairs take turns, in reverse
        # order in odd rounds.
        order = [(gg, self.servers[gg]) for gg in self.paired()] or [
            (g.name, g) for g in self.graphgates
        ]
        owners = {c.name: self.servers[gg] for gg, c in self.db_pairs.items()}
        for gg, c in self.db_pairs.items():  # each variant right after its ceiling
            if c.name + NOLOCK in self.servers:
                owners[c.name + NOLOCK] = self.servers[gg]
                at = [n for n, _ in order].index(c.name) + 1
                order.insert(at, (c.name + NOLOCK, self.servers[c.name + NOLOCK]))
        per_round: dict[str, list[dict[str, Any]]] = {name: [] for name, _ in order}
        for round_no in range(self.args.rounds):
            for name, server in order[::-1] if round_no % 2 else order:
                minter = owners.get(name, server)
                # Fresh sessions minted before the timed run: two per connection, since wrk
                # sometimes builds a connection's first request twice (a write that would
                # block at connect), and the first token built is then never sent.
                chains = await refresh_tokens(session, minter, 2 * self.load.connections)
                path = self.write(f"refresh-{name}", "\n".join(chains) + "\n")
                result = await wrk(self.load, server, "refresh.lua", path, str(self.load.threads))
                result["rps"] = result["ok"] / (result["duration_us"] / 1e6)  # rotations only
                result["cpu_us_per_request"] *= result["requests"] / max(result["ok"], 1)
                per_round[name].append(result)
                self.progress(label, round_no, name, result)
        scenario = {n: summarise(r) for n, r in per_round.items()}
        for gg, ceiling in self.db_pairs.items():
            scenario[gg][f"vs_{ceiling.name}"] = ratios(per_round, gg, ceiling.name, "rps")
            scenario[gg][f"cpu_vs_{ceiling.name}"] = ratios(
                per_round, ceiling.name, gg, "cpu_us_per_request"
            )
            if c := self.servers.get(ceiling.name + NOLOCK):  # the locked read's share
                scenario[ceiling.name][f"vs_{c.name}"] = ratios(
                    per_round, ceiling.name, c.name, "rps"
                )
                scenario[ceiling.name][f"cpu_vs_{c.name}"] = ratios(
                    per_round, c.name, ceiling.name, "cpu_us_per_request"
                )
        self.report["scenarios"][label] = scenario

    async def storm_scenario(self, session: aiohttp.ClientSession) -> None:
        label = f"me {{ id roles }} p99 during {self.args.login_rate:g} logins/s"
        body = self.write("body.json", json.dumps({"query": QUERIES["me { id roles }"]}))
        result: dict[str, Any] = {}
        for gg in self.graphgates:
            result[gg.name] = {"idle": [], "storm": [], "logins": []}
        for round_no in range(self.args.rounds):
            for gg in self.graphgates:
                token = self.write(f"token-{gg.name}", gg.access_token)
                # idle first in even rounds, storm first in odd ones: a drift in the
                # machine's load then favours neither side
                if round_no % 2 == 0:
                    idle = await wrk(self.load, gg, "query.lua", body, token)
                storm_task = asyncio.create_task(wrk(self.load, gg, "query.lua", body, token))
                logins = await self.login_storm(session, gg, self.load.seconds)
                storm = await storm_task
                if round_no % 2 == 1:
                    idle = await wrk(self.load, gg, "query.lua", body, token)
                self.progress(label + " (idle)", round_no, gg.name, idle)
                self.progress(label + " (storm)", round_no, gg.name, storm)
                print(f"      logins: {logins}", flush=True)
                for key, value in (("idle", idle), ("storm", storm), ("logins", logins)):
                    result[gg.name][key].append(value)
        for runs in result.values():
            runs["p99_ratio"] = [
                s["p99_us"] / i["p99_us"] for s, i in zip(runs["storm"], runs["idle"], strict=True)
            ]
        self.report["scenarios"][label] = result

    async def login_storm(
        self, session: aiohttp.ClientSession, gg: Server, seconds: int
    ) -> dict[str, Any]:
        """Open loop: one login every 1/rate s for `seconds` (late answers don't slow it)."""
        rate = self.args.login_rate
        count = int(rate * (seconds - 1))  # stop a second early: inside the wrk run
        times: list[float] = []
        failures = 0

        async def one() -> None:
            nonlocal failures
            started = time.perf_counter()
            try:
                await login(session, gg)
                times.append(time.perf_counter() - started)
            except (BenchError, aiohttp.ClientError, TimeoutError):
                failures += 1

        await asyncio.sleep(0.5)  # let wrk's connections open first
        start = time.perf_counter()
        tasks = []
        for n in range(count):
            await asyncio.sleep(max(0.0, start + n / rate - time.perf_counter()))
            tasks.append(asyncio.create_task(one()))
        await asyncio.gather(*tasks)
        times.sort()

        def pick(q: float) -> float | None:
            return (
                round(times[min(len(times) - 1, int(q * len(times)))] * 1000, 1) if times else None
            )

        return {"sent": count, "failed": failures, "p50_ms": pick(0.5), "p99_ms": pick(0.99)}

    def rss(self) -> dict[str, float]:
        """VmRSS of every graphgate worker now, in MiB."""
        servers = [*self.graphgates, *self.twins]
        return {g.name: round(g.memory()["VmRSS"] / 1024, 1) for g in servers}

    @staticmethod
    def progress(label: str, round_no: int, name: str, r: dict[str, Any]) -> None:
        extra = f" bad={r['bad']}" + (f" starved={r['starved']}" if "starved" in r else "")
        print(
            f"  [{label}] round {round_no + 1} {name:<25} {r['rps']:9.0f}/s "
            f"p50 {r['p50_us'] / 1000:6.2f} ms  p99 {r['p99_us'] / 1000:7.2f} ms  "
            f"cpu {r['cpu_us_per_request']:6.0f} us/req{extra}",
            flush=True,
        )


def render(report: dict[str, Any]) -> str:
    """The Markdown tables of bench/README.md."""
    lines = [f"- {k}: {v}" for k, v in report["setup"].items()]
    lines += [
        "",
        "| scenario | server | req/s (median of rounds; min-max) | p50 ms | p99 ms | server CPU µs/req | bad answers |",
        "|---|---|---|---|---|---|---|",
    ]
    ratio_lines: list[str] = []
    cost_lines: list[str] = []
    storm = None
    for label, scenario in report["scenarios"].items():
        if "logins/s" in label:
            storm = (label, scenario)
            continue
        for name, s in scenario.items():
            lines.append(
                f"| `{label}` | {name} | {s['rps']:,.0f} ({s['rps_min']:,.0f}-{s['rps_max']:,.0f}) "
                f"| {s['p50_ms']:.2f} | {s['p99_ms']:.2f} | {s['cpu_us']:.0f} | {s['bad']} |"
            )
            for base in [key[3:] for key in s if key.startswith("vs_")]:
                each = ", ".join(f"{x:.2f}" for x in s[f"vs_{base}"])
                med = statistics.median(s[f"vs_{base}"])
                cpu = statistics.median(s[f"cpu_vs_{base}"])
                ratio_lines.append(
                    f"| `{label}` | {name} / {base} | **{med:.2f}** | {each} | {cpu:.2f} |"
                )
            if "check_cost_rps" in s:
                cost_lines.append(
                    f"| {s['revoked_sessions']} "
                    f"| **{statistics.median(s['check_cost_rps']):+.1%}** "
                    f"| {', '.join(f'{x:+.1%}' for x in s['check_cost_rps'])} "
                    f"| **{statistics.median(s['check_cost_cpu']):+.1%}** "
                    f"| {', '.join(f'{x:+.1%}' for x in s['check_cost_cpu'])} |"
                )
    if ratio_lines:
        lines += [
            "",
            "| scenario | ratio of req/s | median | per round | ratio by CPU/req (base/this) |",
            "|---|---|---|---|---|",
            *ratio_lines,
        ]
    if cost_lines:
        lines += [
            "",
            "| revocation check: ended sessions in the list | req/s lost (median) | per round "
            "| extra CPU/req (median) | per round |",
            "|---|---|---|---|---|",
            *cost_lines,
        ]
    if storm:
        label, scenario = storm
        lines += [
            "",
            f"| `{label}` | idle p99 ms | storm p99 ms | storm/idle p99 (median; per round) | idle req/s | storm req/s | login p50/p99 ms |",
            "|---|---|---|---|---|---|---|",
        ]
        for name, runs in scenario.items():
            med = statistics.median
            lp50 = med(x["p50_ms"] or 0 for x in runs["logins"])
            lp99 = med(x["p99_ms"] or 0 for x in runs["logins"])
            failed = sum(x["failed"] for x in runs["logins"])
            lines.append(
                f"| {name} | {med(r['p99_us'] for r in runs['idle']) / 1000:.2f} "
                f"| {med(r['p99_us'] for r in runs['storm']) / 1000:.2f} "
                f"| **{med(runs['p99_ratio']):.2f}**; {', '.join(f'{x:.2f}' for x in runs['p99_ratio'])} "
                f"| {med(r['rps'] for r in runs['idle']):,.0f} | {med(r['rps'] for r in runs['storm']):,.0f} "
                f"| {lp50:.0f} / {lp99:.0f}{f' ({failed} failed)' if failed else ''} |"
            )
    if report.get("memory"):
        lines += ["", "| server | RSS after the run (VmRSS) | peak (VmHWM) |", "|---|---|---|"]
        for name, mem in report["memory"].items():
            lines.append(
                f"| {name} | {mem['VmRSS'] / 1024:.1f} MiB | {mem['VmHWM'] / 1024:.1f} MiB |"
            )
    if report.get("memory_after"):
        names = list(next(iter(report["memory_after"].values())))
        lines += [
            "",
            "| graphgate VmRSS (MiB) after | " + " | ".join(names) + " |",
            "|---" * (len(names) + 1) + "|",
        ]
        for step, values in report["memory_after"].items():
            lines.append(f"| {step} | " + " | ".join(f"{values[n]:.1f}" for n in names) + " |")
    for label, reasons in report["skipped"].items():
        lines.append(f"\nSkipped `{label}`: {'; '.join(sorted(set(reasons)))}")
    return "\n".join(lines)


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    require_tools()
    os.sched_setaffinity(0, {args.load_cpu})  # this script shares the load generator's core
    with tempfile.TemporaryDirectory(prefix="graphgate-bench-") as tmp:
        workdir = Path(tmp)
        servers = make_servers(args, workdir)
        if not any(s.kind == "graphgate" for s in servers):
            raise BenchError("at least one graphgate server is needed: it mints the tokens")
        bench = Bench(args, servers, workdir)
        bench.report["setup"] = {
            **machine(),
            "app": git_revision(args.app_root),  # the commit only: no machine path
            "load": f"wrk -t{args.threads} -c{args.connections} -d{args.seconds}s, {args.rounds} interleaved rounds",
            "pinning": f"servers on CPU {args.server_cpu}, wrk + this script on CPU {args.load_cpu}",
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        }
        try:
            timeout = aiohttp.ClientTimeout(total=30)
            async with aiohttp.ClientSession(timeout=timeout) as session:
                # Database ceilings start once graphgate has migrated the database they share.
                for later in (False, True):
                    group = [s for s in servers if (s.kind == "ceiling-db") == later]
                    for server in group:
                        server.start(args.server_cpu)
                    for server in group:
                        await server.wait_ready(session)
                for gg in [*bench.graphgates, *bench.twins]:
                    await register(session, gg)
                wanted = set(args.scenarios)
                all_servers = [s.name for s in servers if s.kind != "ceiling-db"]
                ggs = [g.name for g in bench.graphgates]
                timeline = bench.report["memory_after"] = {"start": bench.rss()}
                if "me" in wanted:
                    print("scenario: me { id roles }", flush=True)
                    await bench.query_scenario(session, "me { id roles }", all_servers)
                    timeline["me"] = bench.rss()
                if "email" in wanted:
                    print("scenario: me { id email displayName }", flush=True)
                    label = "me { id email displayName }"
                    await bench.same_answers(session, QUERIES[label])
                    await bench.query_scenario(
                        session, label, bench.paired() or ggs, bases=bench.db_bases(), alternate=True
                    )
                    timeline["email"] = bench.rss()
                if "notes" in wanted:
                    print("scenario: notes(first: 20) with owners", flush=True)
                    await bench.notes_scenario(session)
                    timeline["notes"] = bench.rss()
                if "refresh" in wanted:
                    print("scenario: refresh rotations", flush=True)
                    await bench.refresh_scenario(session)
                    timeline["refresh"] = bench.rss()
                if "storm" in wanted:
                    print(
                        f"scenario: guarded query during {args.login_rate:g} logins/s", flush=True
                    )
                    await bench.storm_scenario(session)
                    timeline["storm"] = bench.rss()
                if "revocation" in wanted:
                    print("scenario: revocation check on / off", flush=True)
                    await bench.revocation_scenario(session)
                    timeline["revocation"] = bench.rss()
                bench.report["memory"] = {s.name: s.memory() for s in servers}
        finally:
            for server in servers:
                server.stop()
    return bench.report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10, help="length of each wrk run")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--server-cpu", type=int, default=0)
    parser.add_argument("--load-cpu", type=int, default=1)
    parser.add_argument("--login-rate", type=float, default=10.0, help="logins/s in the storm")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("BENCH_POSTGRES_URL"),
        help="a database for graphgate-postgres (default: $BENCH_POSTGRES_URL; none: skipped)",
    )
    parser.add_argument(
        "--app-root", type=Path, default=BENCH.parent, help="graphgate source tree to measure"
    )
    parser.add_argument(
        "--graphgate-env", action="append", default=[], metavar="KEY=VALUE",
        help="extra environment for graphgate (repeatable)",
    )  # fmt: skip
    parser.add_argument(
        "--scenarios", nargs="+", default=["me", "email", "notes", "refresh", "storm"],
        choices=["me", "email", "notes", "refresh", "storm", "revocation"],
        help="revocation (not in the default run): graphgate-sqlite against " + TWIN,
    )  # fmt: skip
    parser.add_argument(
        "--revoked-sessions", type=int, default=300,
        help="--scenarios revocation: ended sessions in each worker's list before the run",
    )  # fmt: skip
    parser.add_argument(
        "--alt", action="append", default=[], metavar="NAME=PATH",
        help="also measure graphgate from another source tree, on SQLite (repeatable)",
    )  # fmt: skip
    parser.add_argument(
        "--alt-env", action="append", default=[], metavar="NAME:KEY=VALUE",
        help="extra environment for one --alt server (repeatable)",
    )  # fmt: skip
    parser.add_argument("--servers", nargs="+", help="only these servers (names as reported)")
    parser.add_argument(
        "--user-lock-cost", action="store_true",
        help="refresh: also each database ceiling without the locked user read (" + NOLOCK + ")",
    )  # fmt: skip
    parser.add_argument("--json", type=Path, help="also write every raw figure here")
    args = parser.parse_args()
    args.app_root = args.app_root.resolve()
    if args.seconds > 60 or args.rounds > 10:
        parser.error("keep runs bounded: --seconds <= 60 and --rounds <= 10")
    try:
        report = asyncio.run(main_async(args))
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    print()
    print(render(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
