"""Race operations against each other, many times, and check what the owner asked for stuck.

The tool for STYLE habit 9 ("a concurrent request can never write back a stale copy"): every
state change that guards depend on gets a race test built from it.

Each trial: `setup(trial)` makes a fresh starting state and returns it; each `Op` then starts
after its own random delay in [0, spread) seconds, so that over the trials the operations
overlap one another's slow parts (a password hash, a transaction) in different orders. A
looping op (`loop=True`) repeats until every other op has finished, so that it straddles
them whatever they cost. When all have finished, `check(state, outcomes)` returns the
guarantees that were broken (an empty list: kept). Every trial runs, so the report says how
many of N broke; `report.assert_kept()` fails with that list.

Example: the owner changes the password while a thief keeps signing in with the old one.

    async def setup(trial: int) -> Account:
        return await register_someone()

    async def thief(account: Account) -> dict[str, Any]:
        return await gql(LOGIN, {"email": account.email, "password": OLD})

    async def owner(account: Account) -> dict[str, Any]:
        return await gql(CHANGE_PASSWORD, {"c": OLD, "n": NEW}, token=account.token)

    async def check(account: Account, outcomes: Outcomes) -> list[str]:
        broken = [f"a racing login's token still works: {t}" for t in ... if await live(t)]
        broken += owner_state_kept({"old password": await logs_in(OLD)}, {"old password": False})
        return broken

    report = await race(setup, Op("thief", thief, copies=3, loop=True), Op("owner", owner),
                        check=check, trials=6)
    report.assert_kept()
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

S = TypeVar("S")

MAX_ROUNDS = 100  # a looping op never runs more often than this in one trial
TRIAL_TIMEOUT = 60.0  # seconds; a hung request fails the test instead of hanging it


@dataclass(frozen=True)
class Op(Generic[S]):
    """One operation of a race: `copies` concurrent runs of `run(state)`."""

    name: str
    run: Callable[[S], Awaitable[Any]]
    copies: int = 1
    loop: bool = False  # repeat until every non-looping op has finished


@dataclass(frozen=True)
class Outcome:
    """One run of one op: when it ran (monotonic seconds) and what it returned or raised."""

    name: str
    started: float
    finished: float
    value: Any = None
    error: BaseException | None = None


@dataclass
class Outcomes:
    """Everything that ran in one trial."""

    items: list[Outcome] = field(default_factory=list)

    def __iter__(self) -> Iterator[Outcome]:
        return iter(self.items)

    def of(self, name: str) -> list[Outcome]:
        return [o for o in self.items if o.name == name]

    def values(self, name: str) -> list[Any]:
        """What the runs of `name` returned (runs that raised are left out)."""
        return [o.value for o in self.of(name) if o.error is None]

    def one(self, name: str) -> Any:
        """The value of an op that ran once."""
        (value,) = self.values(name)
        return value


@dataclass
class RaceReport:
    trials: int
    broken: dict[int, list[str]] = field(default_factory=dict)  # trial -> what broke
    runs: int = 0  # operations run in all

    def assert_kept(self) -> None:
        """Fail, naming per trial what broke, unless every trial kept every guarantee."""
        if self.broken:
            lines = [f"trial {t}: {'; '.join(msgs)}" for t, msgs in sorted(self.broken.items())]
            raise AssertionError(
                f"{len(self.broken)} of {self.trials} trials broke a guarantee:\n"
                + "\n".join(lines)
            )


def owner_state_kept(found: Mapping[str, Any], wanted: Mapping[str, Any]) -> list[str]:
    """The final state against the one the owner last asked for: one line per difference."""
    return [
        f"{key}: the owner asked for {wanted[key]!r}, found {found.get(key)!r}"
        for key in wanted
        if found.get(key) != wanted[key]
    ]


async def race(
    setup: Callable[[int], Awaitable[S]],
    *ops: Op[S],
    check: Callable[[S, Outcomes], Awaitable[list[str]]],
    trials: int = 6,
    spread: float = 0.05,
    seed: int | None = None,
) -> RaceReport:
    """Run `trials` trials of the ops against each other; see the module's docstring."""
    rng = random.Random(seed)
    report = RaceReport(trials)
    for trial in range(trials):
        state = await setup(trial)
        outcomes = Outcomes()
        async with asyncio.timeout(TRIAL_TIMEOUT):
            await _one_trial(state, ops, outcomes, rng, spread)
        report.runs += len(outcomes.items)
        broken = [
            f"{o.name} raised {o.error!r}"
            for o in outcomes
            if o.error is not None and not isinstance(o.error, asyncio.CancelledError)
        ]
        broken += await check(state, outcomes)
        if broken:
            report.broken[trial] = broken
    return report


async def _one_trial(
    state: S, ops: tuple[Op[S], ...], outcomes: Outcomes, rng: random.Random, spread: float
) -> None:
    done = asyncio.Event()

    async def once(op: Op[S], delay: float) -> None:
        await asyncio.sleep(delay)
        started = time.monotonic()
        try:
            value = await op.run(state)
        except Exception as exc:
            outcomes.items.append(Outcome(op.name, started, time.monotonic(), error=exc))
        else:
            outcomes.items.append(Outcome(op.name, started, time.monotonic(), value))

    async def looping(op: Op[S], delay: float) -> None:
        await asyncio.sleep(delay)
        for _ in range(MAX_ROUNDS):
            if done.is_set():
                return
            await once(op, 0)

    finite = [
        once(op, rng.uniform(0, spread)) for op in ops if not op.loop for _ in range(op.copies)
    ]
    # Loops start first (within a tenth of the spread) so that they are running when the
    # other ops start.
    loops = [
        asyncio.create_task(looping(op, rng.uniform(0, spread / 10)))
        for op in ops
        if op.loop
        for _ in range(op.copies)
    ]
    try:
        await asyncio.gather(*finite)
    finally:
        done.set()
        await asyncio.gather(*loops)
