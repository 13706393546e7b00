"""Timing: a login for an unknown email costs what a wrong password for a known one costs."""

from __future__ import annotations

import statistics
import time

from tests.helpers.api import Api
from tests.helpers.graphql import LOGIN, code

ATTEMPTS = 15
ROUNDS = 3


async def _timed_login(api: Api, email: str, password: str) -> float:
    started = time.perf_counter()
    _, body, _ = await api.post(LOGIN, {"email": email, "password": password})
    elapsed = time.perf_counter() - started
    assert code(body) == "INVALID_CREDENTIALS"
    return elapsed


async def _medians(api: Api, round_: int) -> tuple[float, float]:
    unknown: list[float] = []
    wrong: list[float] = []
    for n in range(ATTEMPTS):  # interleaved, so drift on the machine hits both alike
        guess = f"guess {round_}-{n}"
        unknown.append(await _timed_login(api, f"nobody{round_}-{n}@example.com", guess))
        wrong.append(await _timed_login(api, "ada@example.com", guess))
    return statistics.median(unknown), statistics.median(wrong)


async def test_unknown_email_and_wrong_password_take_the_same_time(api: Api) -> None:
    await api.register()
    for n in range(3):  # warm up: first-use costs (pools, caches) are not what we compare
        await _timed_login(api, "ada@example.com", f"warm-up {n}")
        await _timed_login(api, f"warm{n}@example.com", f"warm-up {n}")
    # On a loaded machine (CI beside other jobs) one round's medians can drift apart by
    # chance; a real difference (a path that skips the hash) shows in every round.
    seen = []
    for round_ in range(ROUNDS):
        a, b = await _medians(api, round_)
        seen.append(f"unknown {a * 1000:.1f} ms vs wrong {b * 1000:.1f} ms")
        # A password check really ran on both paths (a no-op is far faster than argon2id).
        assert min(a, b) > 0.005, (a, b)
        if abs(a - b) / max(a, b) <= 0.20:
            break
    else:
        raise AssertionError("medians differ by over 20% in every round: " + "; ".join(seen))
    print("login medians:", seen[-1])
