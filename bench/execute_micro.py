"""CPU of `schema.execute` alone for a prepared query: on its compiled plan, or on
graphql-core's executor (the plan cache answering "not compiled").

    taskset -c 0 python bench/execute_micro.py ['{ me { id roles } }']

No server, no database: the schema from build_schema, a signed-in viewer as the Context
(enough for queries the token answers). Prints the best of 7 runs of 5,000 calls, CPU
time per call, for both paths, after checking that both answer the same.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from api.identity import AccessClaims, Viewer  # noqa: E402
from api.settings import load_settings  # noqa: E402
from schema.build import build_schema  # noqa: E402
from schema.execution import GraphGateSchema  # noqa: E402
from tests.helpers.env import BASE_ENV  # noqa: E402

CALLS, RUNS = 5000, 7


async def best(schema: GraphGateSchema, query: str, context: Any) -> tuple[float, Any]:
    for _ in range(3):  # kept from its second sighting: prepared from then on
        result = await schema.execute(query, context_value=context)
    fastest = float("inf")
    for _ in range(RUNS):
        started = time.process_time()
        for _ in range(CALLS):
            await schema.execute(query, context_value=context)
        fastest = min(fastest, (time.process_time() - started) / CALLS)
    return fastest * 1e6, (result.data, result.errors)


async def main(query: str) -> None:
    settings = load_settings({**BASE_ENV, "DATABASE_URL": "sqlite://:memory:"}, env_file=None)
    claims = AccessClaims(sub="u1", sid="s1", jti="j", iat=0, exp=1, roles=("user",), auth_time=0)
    context = SimpleNamespace(viewer=Viewer(claims=claims))
    compiled = build_schema(settings)
    executor = build_schema(settings)
    assert isinstance(compiled, GraphGateSchema) and isinstance(executor, GraphGateSchema)
    executor.plans.get = lambda document, operation: None  # type: ignore[method-assign]
    plan_us, plan_answer = await best(compiled, query, context)
    core_us, core_answer = await best(executor, query, context)
    assert plan_answer == core_answer, (plan_answer, core_answer)
    print(f"{query}: compiled plan {plan_us:.1f} µs, graphql-core {core_us:.1f} µs per call")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "{ me { id roles } }"))
