"""What REQUIRE_VERIFIED_EMAIL costs, off (the default) and on, against a baseline guard
without the verification branch at all.

    PYTHONPATH=. python bench/verified_email.py [--requests 3000] [--rounds 5]

1. The guard alone: nanoseconds per IsAuthenticated check (timeit, best of 7).
2. End to end: the real app in-process on a temporary SQLite file answers
   `{ mySessions { id } }` (an IsAuthenticated field) sequentially, the three variants
   interleaved round by round so background load hits them alike; median requests/s.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import statistics
import tempfile
import time
import timeit
from types import SimpleNamespace
from typing import Any

from aiohttp.test_utils import TestClient, TestServer
from strawberry.permission import BasePermission

from api.db import connection as db
from api.errors import UnauthenticatedError
from api.settings import load_settings
from api.web.app import create_app
from schema.permissions import IsAuthenticated

ENV = {
    "JWT_SECRET": "bench-access-secret-0123456789-abcdefghijkl",
    "JWT_REFRESH_SECRET": "bench-refresh-secret-0123456789-abcdefghij",
    "RATE_LIMIT_PER_IP": "",
    "RATE_LIMIT_PER_EMAIL": "",
    "MAIL_URL": "memory://",
}
QUERY = {"query": "{ mySessions { id } }"}
VERIFIED_CHECK = IsAuthenticated.has_permission


class Before(BasePermission):
    """IsAuthenticated as it was before REQUIRE_VERIFIED_EMAIL existed: the baseline."""

    def has_permission(self, source: Any, info: Any, **kwargs: Any) -> bool:
        viewer = info.context.viewer
        if viewer.error is not None:
            raise viewer.error
        if viewer.claims is None:
            raise UnauthenticatedError()
        return True


async def _client(folder: str, name: str, **env: str) -> tuple[TestClient[Any, Any], str]:
    settings = load_settings(
        {**ENV, "DATABASE_URL": f"sqlite://{folder}/{name}.sqlite3", "DATA_DIR": folder, **env},
        env_file=None,
    )
    await db.migrate(settings)
    client: TestClient[Any, Any] = TestClient(TestServer(create_app(settings)))
    await client.start_server()
    body = {
        "query": 'mutation { register(email: "b@example.com", password: "bench password") '
        "{ accessToken } }"
    }
    resp = await client.post("/graphql", json=body)
    token = (await resp.json())["data"]["register"]["accessToken"]
    return client, token


async def _rate(client: TestClient[Any, Any], token: str, requests: int) -> float:
    headers = {"Authorization": f"Bearer {token}"}
    started = time.perf_counter()
    for _ in range(requests):
        resp = await client.post("/graphql", json=QUERY, headers=headers)
        body = await resp.json()
        assert "errors" not in body, body
    return requests / (time.perf_counter() - started)


def guard_ns() -> None:
    """Nanoseconds per guard check, with a stand-in context (no request, no database)."""
    settings = load_settings({**ENV, "DATA_DIR": tempfile.gettempdir()}, env_file=None)
    claims = SimpleNamespace(sub="u", sid="s", roles=("user",))
    for variant, check, require in (
        ("baseline", Before().has_permission, False),
        ("off", IsAuthenticated().has_permission, False),
        ("on", IsAuthenticated().has_permission, True),
    ):
        ctx = SimpleNamespace(
            viewer=SimpleNamespace(error=None, claims=claims),
            services=SimpleNamespace(
                settings=dataclasses.replace(settings, require_verified_email=require)
            ),
            email_verified=True,
        )
        info: Any = SimpleNamespace(context=ctx)
        timer = timeit.Timer(lambda check=check, info=info: check(None, info))
        best = min(timer.repeat(number=200_000, repeat=7))
        print(f"guard {variant:>8}: {best / 200_000 * 1e9:6.0f} ns per check")


async def main(requests: int, rounds: int) -> None:
    guard_ns()
    with tempfile.TemporaryDirectory() as folder:
        rates: dict[str, list[float]] = {"baseline": [], "off": [], "on": []}
        for round_ in range(rounds):
            for variant in rates:
                # Tortoise holds one default connection per process: one app at a time.
                on = "on" if variant == "on" else "off"
                client, token = await _client(
                    folder, f"{variant}{round_}", REQUIRE_VERIFIED_EMAIL=on
                )
                if variant == "on":
                    from api.db.models import User

                    await User.all().update(email_verified=True)
                # The baseline: IsAuthenticated without the verification branch (as before it).
                IsAuthenticated.has_permission = (  # type: ignore[method-assign]
                    Before.has_permission if variant == "baseline" else VERIFIED_CHECK
                )
                await _rate(client, token, 200)  # warm up
                rates[variant].append(await _rate(client, token, requests))
                await client.close()
        IsAuthenticated.has_permission = VERIFIED_CHECK  # type: ignore[method-assign]
        for variant, values in rates.items():
            print(f"{variant:>8}: {statistics.median(values):7.0f} requests/s  {values}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(main(args.requests, args.rounds))
