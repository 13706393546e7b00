"""Open-loop login load: one `login` every 1/RATE seconds for DURATION seconds, whatever the
latency (a slow server gets more concurrent logins, as it would in real life).

Prints one line: RESULT sent=.. ok=.. graphql_errors=.. http_errors=.. p50_ms=.. p99_ms=..
and, when there were errors, their codes. Loopback only; bounded in time.

    python bench/reliability/logins.py URL EMAIL PASSWORD [--rate 20] [--duration 60]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import statistics
import time
from typing import Any

import aiohttp

LOGIN = (
    "mutation($email: String!, $password: String!) "
    "{ login(email: $email, password: $password) { accessToken } }"
)


async def one(
    session: aiohttp.ClientSession, url: str, variables: dict[str, str], out: dict[str, Any]
) -> None:
    started = time.perf_counter()
    try:
        async with session.post(
            f"{url}/graphql", json={"query": LOGIN, "variables": variables}
        ) as resp:
            body = await resp.json(content_type=None)
            status = resp.status
    except (aiohttp.ClientError, TimeoutError, json.JSONDecodeError) as exc:
        out["codes"][type(exc).__name__] += 1
        out["http_errors"] += 1
        return
    out["latencies"].append(time.perf_counter() - started)
    if status != 200:
        out["http_errors"] += 1
        out["codes"][f"HTTP {status}"] += 1
    elif body.get("errors"):
        out["graphql_errors"] += 1
        out["codes"][body["errors"][0].get("extensions", {}).get("code", "?")] += 1
    else:
        out["ok"] += 1


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("email")
    parser.add_argument("password")
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--duration", type=float, default=60.0)
    args = parser.parse_args()
    if not args.url.startswith(("http://127.", "http://localhost", "http://[::1]")):
        raise SystemExit("loopback addresses only")
    out: dict[str, Any] = {
        "ok": 0,
        "graphql_errors": 0,
        "http_errors": 0,
        "latencies": [],
        "codes": collections.Counter(),
    }
    variables = {"email": args.email, "password": args.password}
    timeout = aiohttp.ClientTimeout(total=30)
    # No client-side connection limit: queueing here would be counted as server latency.
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        tasks = []
        start = time.perf_counter()
        sent = 0
        while (elapsed := time.perf_counter() - start) < args.duration:
            due = int(elapsed * args.rate) + 1
            while sent < due:
                tasks.append(asyncio.create_task(one(session, args.url, variables, out)))
                sent += 1
            await asyncio.sleep(1 / args.rate / 2)
        await asyncio.gather(*tasks)
    lat = sorted(out["latencies"]) or [0.0]
    p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
    print(
        f"RESULT sent={sent} ok={out['ok']} graphql_errors={out['graphql_errors']} "
        f"http_errors={out['http_errors']} p50_ms={statistics.median(lat) * 1000:.1f} "
        f"p99_ms={p99 * 1000:.1f} max_ms={lat[-1] * 1000:.1f}"
    )
    if out["codes"]:
        print("ERROR CODES", dict(out["codes"]))


if __name__ == "__main__":
    asyncio.run(main())
