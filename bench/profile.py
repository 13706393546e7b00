"""Where graphgate's time goes under load: py-spy samples one worker while wrk loads it.

    pip install py-spy    # not a project dependency; a tool for this script
    python bench/profile.py [--seconds 20] [--query '{ me { id roles } }'] [--out DIR]

A query on `notes` first gets the bench user 20 notes (createNote).

Starts graphgate (production settings, SQLite) pinned to --server-cpu, registers a user,
runs wrk on --load-cpu for --seconds while `py-spy record` samples the
worker, then prints where the samples fall: by phase of a request (inclusive) and by
function (self time). DIR keeps the raw collapsed stacks (`profile.txt`, for
speedscope or flamegraph.pl) and the wrk result.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import secrets
import shutil
import sys
import tempfile
from collections import Counter
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import (
    BENCH,
    BenchError,
    Load,
    Server,
    gql,
    refresh_tokens,
    register,
    require_tools,
    wrk,
)

# Phases of one request: a sample belongs to the first phase (in this order) whose
# pattern matches any frame of its stack, so nested phases come before the outer ones.
PHASES = [
    (r"get_context \(.*schema/context\.py", "get_context: token check, client info, Context"),
    (r"verify_access|_decode .*api/auth/tokens|_header .*api/auth/tokens", "JWT verification"),
    (r"encode_json|process_result|create_response", "response: encode JSON, build response"),
    (r"parse_http_body|parse_json|get_request_data|parse_multipart|json\.loads", "request: read + parse JSON body"),
    (r"ParserCache|parse_document|graphql/language/parser", "GraphQL parse (cache lookup)"),
    (r"ValidationCache|validate_document|graphql/validation", "GraphQL validation (cache lookup)"),
    (r"PermissionExtension|has_permission", "permission classes"),
    (r"schema/plan\.py", "execution: compiled plan (schema/plan.py), its resolvers"),
    (r"graphql/execution|strawberry/schema/schema_converter|strawberry/types/fields/resolver", "execution: resolvers, field machinery"),
    (r"strawberry/extensions|_async_with_hooks|SchemaExtension", "schema extension hooks"),
    (r"strawberry/schema/schema\.py|strawberry/http|strawberry/aiohttp", "strawberry view/schema glue"),
    (r"aiohttp/web_protocol|aiohttp/web_request|aiohttp/web_response|aiohttp/http_|aiohttp/streams|aiohttp/web_app|aiohttp/web_urldispatcher|aiohttp/helpers|aiohttp/web_server", "aiohttp: HTTP protocol, request/response objects"),
    (r"gc_collect|<gc>", "garbage collector"),
    (r"asyncio|uvloop|selectors", "event loop"),
]  # fmt: skip
CREATE_NOTE = 'mutation N($t: String!) { createNote(title: $t, body: "bench") { id } }'
COMPILED = [(re.compile(p), label) for p, label in PHASES]


def phase_of(frames: list[str]) -> str:
    """The label of the first phase any frame matches (frames: root first)."""
    for pattern, label in COMPILED:
        if any(pattern.search(frame) for frame in frames):
            return label
    return "other: " + (frames[-1] if frames else "?")


def analyse(raw: Path, top: int = 30) -> str:
    """Summarise py-spy's raw (collapsed) stacks of the event-loop thread."""
    phases: Counter[str] = Counter()
    selfs: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = other_threads = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        frames = stack.split(";")
        if not any(f.startswith("run_app (") for f in frames):
            other_threads += n  # hash pool, aiosqlite's thread: mostly waiting, not requests
            continue
        total += n
        loop_at = next(i for i, f in enumerate(frames) if f.startswith("run_app ("))
        frames = frames[loop_at + 1 :]
        if not frames:
            phases["event loop: waiting or in C (uvloop, sockets)"] += n
            continue
        phases[phase_of(frames)] += n
        selfs[frames[-1]] += n
        for name in {re.sub(r":\d+\)$", ")", f) for f in frames}:
            inclusive[name] += n

    def pct(n: int) -> str:
        return f"{100 * n / max(total, 1):5.1f}%"

    lines = [
        f"{total} samples of the event-loop thread ({other_threads} of other threads ignored)",
        "",
        "by phase (the first phase, in PHASES order, that any frame of a sample matches):",
    ]
    lines += [f"  {pct(n)}  {label}" for label, n in phases.most_common()]
    lines += ["", f"top {top} functions by inclusive time:"]
    lines += [f"  {pct(n)}  {name}" for name, n in inclusive.most_common(top)]
    lines += ["", f"top {top} functions by self time:"]
    lines += [f"  {pct(n)}  {name}" for name, n in selfs.most_common(top)]
    return "\n".join(lines)


async def run(args: argparse.Namespace, workdir: Path) -> str:
    env = {
        **os.environ,
        "PYTHONPATH": str(args.app_root),
        "APP_ENV": "production",
        "JWT_SECRET": secrets.token_urlsafe(48),
        "JWT_REFRESH_SECRET": secrets.token_urlsafe(48),
        "PUBLIC_URL": "http://127.0.0.1:8000",
        "METRICS_TOKEN": secrets.token_urlsafe(32),
        "DATABASE_URL": f"sqlite://{workdir}/profile.sqlite3",
        "ACCESS_TOKEN_TTL": "3600",
        "RATE_LIMIT_PER_IP": "",
        "RATE_LIMIT_PER_EMAIL": "",
    }
    for pair in args.graphgate_env:
        key, _, value = pair.partition("=")
        env[key] = value
    server = Server("graphgate", "graphgate", [sys.executable, "-m", "api", "serve"], env, workdir)
    load = Load(args.threads, args.connections, args.seconds, args.load_cpu)
    server.start(args.server_cpu)
    try:
        body = workdir / "body.json"
        body.write_text(json.dumps({"query": args.query}))
        token = workdir / "token"
        async with aiohttp.ClientSession() as session:
            await server.wait_ready(session)
            await register(session, server)
            token.write_text(server.access_token)
            if "notes" in args.query:  # a full page of the bench user's notes to load
                for n in range(20):
                    made = await gql(
                        session, server.url, CREATE_NOTE, {"t": f"note {n}"}, server.access_token
                    )
                    if made.get("errors"):
                        raise BenchError(f"createNote: {made['errors']}")
            if args.refresh:  # rotations: fresh sessions, two per connection (see run.py)
                chains = await refresh_tokens(session, server, 2 * args.connections)
                token.write_text("\n".join(chains) + "\n")
        script, script_args = (
            ("refresh.lua", [str(token), str(args.threads)])
            if args.refresh
            else ("query.lua", [str(body), str(token)])
        )
        if not args.refresh:
            await wrk(load, server, script, *script_args, seconds=3)  # warm-up
        assert server.proc is not None
        raw = args.out / "profile.txt"
        spy = await asyncio.create_subprocess_exec(
            "taskset", "-c", str(args.load_cpu), "py-spy", "record",
            "-r", str(args.rate), "-d", str(args.seconds), "-f", "raw", "-o", str(raw),
            "-p", str(server.proc.pid),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        result = await wrk(load, server, script, *script_args)
        _, err = await asyncio.wait_for(spy.communicate(), timeout=args.seconds + 30)
        if not raw.exists():
            raise BenchError(f"py-spy wrote nothing: {err.decode()[-500:]}")
        (args.out / "wrk.json").write_text(json.dumps(result, indent=1))
        what = "refresh rotations" if args.refresh else f"query {args.query!r}"
        head = (
            f"{what}: {result['rps']:.0f} req/s under py-spy at {args.rate} Hz, "
            f"p50 {result['p50_us'] / 1000:.2f} ms, p99 {result['p99_us'] / 1000:.2f} ms, "
            f"bad {result['bad']}; RSS {server.memory()}"
        )
        return head + "\n" + analyse(raw)
    finally:
        server.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--query", default="{ me { id roles } }")
    parser.add_argument("--refresh", action="store_true", help="profile refresh rotations")
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--rate", type=int, default=200, help="py-spy samples per second")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--server-cpu", type=int, default=0)
    parser.add_argument("--load-cpu", type=int, default=1)
    parser.add_argument("--app-root", type=Path, default=BENCH.parent)
    parser.add_argument("--graphgate-env", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--out", type=Path, default=Path("profile-out"))
    parser.add_argument("--analyse", type=Path, help="only summarise an existing raw profile")
    args = parser.parse_args()
    if args.analyse:
        print(analyse(args.analyse))
        return 0
    require_tools()
    if shutil.which("py-spy") is None:
        print("profile: py-spy is missing: pip install py-spy", file=sys.stderr)
        return 2
    if args.seconds > 60:
        parser.error("keep runs bounded: --seconds <= 60")
    args.app_root = args.app_root.resolve()
    args.out.mkdir(parents=True, exist_ok=True)
    os.sched_setaffinity(0, {args.load_cpu})
    with tempfile.TemporaryDirectory(prefix="graphgate-profile-") as tmp:
        try:
            print(asyncio.run(run(args, Path(tmp))))
        except BenchError as exc:
            print(f"profile: {exc}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
