"""A persisted operation against the same ad-hoc operation: bytes on the wire and req/s.

One graphgate (production settings, SQLite, one worker pinned to CPU 0; wrk on CPU 1) serves
the same signed-in query three ways, interleaved round by round:

- ad-hoc:      `{"query": "<text>", "operationName": ...}` (what a client without persisted
               documents sends; the server's document cache knows it after the first time);
- apq:         `{"extensions": {"persistedQuery": {"version": 1, "sha256Hash": ...}}}` after
               one registration (Apollo Client's persisted-queries link);
- documentId:  `{"documentId": "sha256:..."}`, the document from a trusted-documents manifest
               (TRUSTED_DOCUMENTS, mode allow).

    python bench/persisted.py --rounds 3 --seconds 10 [--json bench/results/persisted.json]

Bytes are the JSON body of the request (what differs between the forms; headers are the
same). Every answer is checked by bench/lua/query.lua: an error answer counts as bad.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import secrets
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import (  # noqa: E402
    BenchError,
    Load,
    Server,
    git_revision,
    machine,
    register,
    require_tools,
    wrk,
)

ROOT = Path(__file__).resolve().parent.parent
# A screen's worth of a mobile app's profile page: the kind of text persisted documents save.
OPERATION = """query ProfileScreen {
  me {
    id
    email
    displayName
    roles
    isActive
    emailVerified
    createdAt
    lastLoginAt
  }
  mySessions {
    id
    device
    userAgent
    ip
    createdAt
    lastUsedAt
    expiresAt
    current
  }
}"""


def bodies() -> dict[str, bytes]:
    digest = hashlib.sha256(OPERATION.encode()).hexdigest()
    forms: dict[str, dict[str, Any]] = {
        "ad-hoc": {"query": OPERATION, "operationName": "ProfileScreen"},
        "apq": {"extensions": {"persistedQuery": {"version": 1, "sha256Hash": digest}}},
        "documentId": {"documentId": f"sha256:{digest}"},
    }
    return {name: json.dumps(body, separators=(",", ":")).encode() for name, body in forms.items()}


async def prepare(server: Server) -> None:
    async with aiohttp.ClientSession() as session:
        await server.wait_ready(session)
        await register(session, server)
        headers = {"Authorization": f"Bearer {server.access_token}"}
        digest = hashlib.sha256(OPERATION.encode()).hexdigest()
        apq = {
            "query": OPERATION,
            "extensions": {"persistedQuery": {"version": 1, "sha256Hash": digest}},
        }
        async with session.post(server.url, json=apq, headers=headers) as resp:
            answer = await resp.json()
            if answer.get("errors"):
                raise BenchError(f"APQ registration failed: {answer['errors']}")


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if not 1 <= args.rounds <= 10 or not 1 <= args.seconds <= 60:
        raise BenchError("--rounds 1..10 and --seconds 1..60")
    require_tools()
    work = Path(tempfile.mkdtemp(prefix="graphgate-bench-persisted-"))
    manifest = work / "persisted-documents.json"
    manifest.write_text(json.dumps({hashlib.sha256(OPERATION.encode()).hexdigest(): OPERATION}))
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")},
        "PYTHONPATH": str(ROOT),
        "PYTHONUNBUFFERED": "1",
        "APP_ENV": "production",
        "JWT_SECRET": secrets.token_urlsafe(48),
        "JWT_REFRESH_SECRET": secrets.token_urlsafe(48),
        "PUBLIC_URL": "http://127.0.0.1:8000",
        "METRICS_TOKEN": secrets.token_urlsafe(32),
        "ACCESS_TOKEN_TTL": "3600",
        "RATE_LIMIT_PER_IP": "",
        "RATE_LIMIT_PER_EMAIL": "",
        "DATABASE_URL": f"sqlite://{work}/bench.sqlite3",
        "DATA_DIR": str(work / "data"),
        "TRUSTED_DOCUMENTS": str(manifest),
    }
    server = Server("graphgate", "graphgate", [sys.executable, "-m", "api", "serve"], env, work)
    load = Load(threads=2, connections=args.connections, seconds=args.seconds, cpu=1)
    forms = bodies()
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in forms}
    try:
        server.start(cpu=0)
        await prepare(server)
        token_file = work / "token"
        token_file.write_text(server.access_token)
        files = {}
        for name, body in forms.items():
            files[name] = work / f"{name}.json"
            files[name].write_bytes(body)
        await wrk(load, server, "query.lua", str(files["ad-hoc"]), str(token_file), seconds=2)
        for round_number in range(args.rounds):
            for name in forms:
                result = await wrk(load, server, "query.lua", str(files[name]), str(token_file))
                if result.get("bad"):
                    raise BenchError(f"{name}: {result['bad']} bad answers: {result['sample']}")
                runs[name].append(result)
                print(
                    f"round {round_number + 1} {name:>10}: {result['rps']:8.0f} req/s "
                    f"{result['cpu_us_per_request']:6.0f} µs CPU/request",
                    flush=True,
                )
    finally:
        server.stop()
    summary = {
        name: {
            "request_body_bytes": len(forms[name]),
            "rps": statistics.median(r["rps"] for r in results),
            "rps_min": min(r["rps"] for r in results),
            "rps_max": max(r["rps"] for r in results),
            "cpu_us_per_request": statistics.median(r["cpu_us_per_request"] for r in results),
            "p50_ms": statistics.median(r["p50_us"] for r in results) / 1000,
        }
        for name, results in runs.items()
    }
    print()
    print("| form | request body | req/s (median, min-max) | server CPU/request | p50 |")
    print("|---|---:|---:|---:|---:|")
    for name, s in summary.items():
        print(
            f"| {name} | {s['request_body_bytes']} B | {s['rps']:.0f} "
            f"({s['rps_min']:.0f}-{s['rps_max']:.0f}) | {s['cpu_us_per_request']:.0f} µs "
            f"| {s['p50_ms']:.2f} ms |"
        )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "machine": machine(),
                    "revision": git_revision(ROOT),
                    "rounds": args.rounds,
                    "seconds": args.seconds,
                    "connections": args.connections,
                    "summary": summary,
                    "runs": runs,
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    try:
        sys.exit(asyncio.run(main()))
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        sys.exit(1)
