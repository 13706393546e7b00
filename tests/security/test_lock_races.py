"""Password guesses are counted before they are checked: N concurrent wrong passwords against
a limit of L get at most L verdicts, on one worker and on two sharing Redis; and every password
check (login, changePassword, changeEmail, deleteAccount) goes through the same limit.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.graphql import CHANGE_PASSWORD, code
from tests.helpers.live import (
    DATABASES,
    ONE_WORKER,
    TWO_WORKERS_REDIS,
    Deployment,
    deployment,
    unique_email,
)
from tests.helpers.mailbox import CHANGE_EMAIL, DELETE

pytestmark = pytest.mark.live  # starts real server processes (see pyproject markers)

LIMIT = 10
LIMITS = {"RATE_LIMIT_PER_EMAIL": f"{LIMIT} per 15 minutes", "TRUSTED_PROXIES": "127.0.0.1"}
BURST = 40
RIGHT = "correct horse"
OWNER_IP = "198.51.100.7"
ATTACKER_IP = "203.0.113.66"
TOPOLOGIES = pytest.mark.parametrize(
    "topology", [pytest.param(t, id=t.id) for t in (ONE_WORKER, TWO_WORKERS_REDIS)]
)
ON_BOTH_DATABASES = pytest.mark.parametrize("database", DATABASES)


def verdicts(bodies: list[dict[str, Any]]) -> Counter[str | None]:
    return Counter(code(body) for body in bodies)


async def owner(live: Deployment) -> tuple[str, str]:
    """A user signed up from the owner's IP: (email, access token)."""
    email = unique_email()
    pair = await live.register(email, RIGHT, ip=OWNER_IP)
    return email, pair["accessToken"]


@ON_BOTH_DATABASES
@TOPOLOGIES
async def test_concurrent_wrong_logins_get_at_most_the_limit_checked(
    tmp_path: Path, database: str, topology: Any
) -> None:
    async with deployment(tmp_path, database, topology, **LIMITS) as live:
        email, _ = await owner(live)
        bodies = await asyncio.gather(
            *(live.login(email, f"wrong guess {n}", ip=ATTACKER_IP) for n in range(BURST))
        )
        seen = verdicts(bodies)
        assert set(seen) <= {"INVALID_CREDENTIALS", "RATE_LIMITED"}, seen
        assert seen["INVALID_CREDENTIALS"] <= LIMIT, seen
        # Locked: the right password is refused too, without being checked.
        assert code(await live.login(email, RIGHT, ip=ATTACKER_IP)) == "RATE_LIMITED"


@ON_BOTH_DATABASES
@TOPOLOGIES
async def test_concurrent_wrong_confirmations_get_at_most_the_limit_checked(
    tmp_path: Path, database: str, topology: Any
) -> None:
    """A stolen token guessing the password through every mutation that asks for it."""
    async with deployment(tmp_path, database, topology, **LIMITS) as live:
        email, token = await owner(live)
        guesses = [
            (DELETE, {"p": "wrong guess {n}"}),
            (CHANGE_EMAIL, {"e": unique_email("new"), "p": "wrong guess {n}"}),
            (CHANGE_PASSWORD, {"c": "wrong guess {n}", "n": "a new password"}),
        ]

        async def guess(n: int) -> dict[str, Any]:
            query, variables = guesses[n % len(guesses)]
            filled = {k: v.format(n=n) for k, v in variables.items()}
            return await live.gql(query, filled, token=token, ip=ATTACKER_IP)

        seen = verdicts(await asyncio.gather(*(guess(n) for n in range(BURST))))
        assert set(seen) <= {"INVALID_CREDENTIALS", "RATE_LIMITED"}, seen
        assert seen["INVALID_CREDENTIALS"] <= LIMIT, seen
        right = {"e": unique_email("new"), "p": RIGHT}
        assert code(await live.gql(CHANGE_EMAIL, right, token=token, ip=ATTACKER_IP)) == (
            "RATE_LIMITED"
        )
        assert code(await live.login(email, RIGHT, ip=ATTACKER_IP)) == "RATE_LIMITED"


@ON_BOTH_DATABASES
async def test_change_password_cannot_be_brute_forced(tmp_path: Path, database: str) -> None:
    async with deployment(tmp_path, database, ONE_WORKER, **LIMITS) as live:
        _, token = await owner(live)
        answers = []
        for n in range(15):
            wrong = {"c": f"wrong guess {n}", "n": "a new password"}
            answers.append(
                code(await live.gql(CHANGE_PASSWORD, wrong, token=token, ip=ATTACKER_IP))
            )
        right = {"c": RIGHT, "n": "a new password"}
        answers.append(code(await live.gql(CHANGE_PASSWORD, right, token=token, ip=ATTACKER_IP)))
        assert answers == ["INVALID_CREDENTIALS"] * LIMIT + ["RATE_LIMITED"] * 6, answers
