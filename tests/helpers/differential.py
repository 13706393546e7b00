"""The differential check of compiled plans (schema/plan.py), on for the whole test suite.

Every prepared operation that runs on its compiled plan while a test runs in-process is run
a second time on graphql-core's executor, with a fresh copy of the request's Context (its
own DataLoader) and with SQL statement counting paused; the two raw results (data, and each
error's message, locations, path, extensions and original exception) must be the same, or
the test that sent the operation fails naming the difference. The answer the client gets is
the compiled one. `--no-differential-plans` turns the check off (to time the suite, say).
The session ends with a line counting the operations compared.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from graphql import ExecutionResult

from schema.execution import GraphGateSchema
from schema.plan import OperationPlan


@dataclass
class Tally:
    compared: int = 0
    operations: set[str] = field(default_factory=set)  # distinct operation texts compared
    fallbacks: int = 0  # prepared operations left to graphql-core (unsupported)


TALLY = Tally()


def described(result: ExecutionResult) -> tuple[Any, list[tuple[Any, ...]]]:
    """What must be equal between the two paths."""
    errors = [
        (
            error.message,
            error.locations,
            error.path,
            error.extensions,
            type(error.original_error).__name__ if error.original_error else None,
            str(error.original_error) if error.original_error else None,
        )
        for error in result.errors or ()
    ]
    return result.data, errors


def difference(compiled: ExecutionResult, reference: ExecutionResult) -> str | None:
    """None when both answers are the same, else both, described."""
    mine, theirs = described(compiled), described(reference)
    if mine == theirs:
        return None
    return f"compiled plan: {mine!r}\ngraphql-core:  {theirs!r}"


@contextmanager
def sql_uncounted() -> Iterator[None]:
    """The reference run's statements are not the request's: the `sql` fixture skips them."""
    logger = logging.getLogger("tortoise.db_client")
    disabled = logger.disabled
    logger.disabled = True
    try:
        yield
    finally:
        logger.disabled = disabled


async def _settled(outcome: ExecutionResult | Awaitable[ExecutionResult]) -> ExecutionResult:
    return outcome if isinstance(outcome, ExecutionResult) else await outcome


def install(monkeypatch: pytest.MonkeyPatch, differences: list[str]) -> None:
    """Run every compiled operation on both paths while the test runs."""
    compiled_run = GraphGateSchema._run_compiled
    executor_run = GraphGateSchema._run_executor

    def fallback(self: GraphGateSchema, *args: Any) -> Any:
        TALLY.fallbacks += 1
        return executor_run(self, *args)

    async def both(
        self: GraphGateSchema,
        plan: OperationPlan,
        document: Any,
        variable_values: dict[str, Any] | None,
        context_value: Any,
        root_value: Any,
        operation_name: str | None,
        operation_extensions: dict[str, Any] | None,
    ) -> ExecutionResult:
        compiled = await _settled(
            compiled_run(
                self,
                plan,
                document,
                variable_values,
                context_value,
                root_value,
                operation_name,
                operation_extensions,
            )
        )
        fresh = (
            dataclasses.replace(context_value)
            if dataclasses.is_dataclass(context_value)
            else context_value
        )
        with sql_uncounted():
            reference = await _settled(
                executor_run(
                    self,
                    document,
                    variable_values,
                    fresh,
                    root_value,
                    operation_name,
                    operation_extensions,
                )
            )
        TALLY.compared += 1
        loc = document.loc
        TALLY.operations.add(loc.source.body if loc is not None else repr(document))
        found = difference(compiled, reference)
        if found is not None:
            differences.append(
                f"operation {operation_name!r}, variables {variable_values!r}:\n{found}"
            )
        return compiled

    monkeypatch.setattr(GraphGateSchema, "_run_compiled", both)
    monkeypatch.setattr(GraphGateSchema, "_run_executor", fallback)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--no-differential-plans",
        action="store_true",
        help="do not run compiled operations on graphql-core's executor too",
    )


@pytest.fixture(autouse=True)
def differential_plans(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[list[str]]:
    """Fails the test when a compiled plan answered differently from graphql-core."""
    differences: list[str] = []
    if not request.config.getoption("--no-differential-plans"):
        install(monkeypatch, differences)
    yield differences
    if differences:
        pytest.fail("compiled plan and graphql-core differ:\n" + "\n\n".join(differences))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if TALLY.compared or TALLY.fallbacks:
        terminalreporter.write_line(
            f"compiled plans: {TALLY.compared} executions of {len(TALLY.operations)} distinct "
            f"documents compared with graphql-core, no difference allowed; "
            f"{TALLY.fallbacks} prepared executions left to graphql-core (not compiled)"
        )
