"""CPU time of the per-request revocation check alone, in nanoseconds (no server, no wrk).

    python bench/revocation_micro.py [--sizes 0 300 100000]

The wrk comparison (bench/run.py --scenarios revocation) cannot resolve a cost well under
the machine's noise; this times the check itself, with the graphgate code on sys.path:
- `RevocationList.is_revoked(sid, iat)`: the dict lookup, for a token whose session is
  not in the list (the common case), with `size` ended sessions in the list;
- `BearerAuthenticator._is_revoked(claims)`: what a request runs (the lookup, the
  `needs_database` property, the coroutine), driven without an event loop;
- the coroutine bench/launch_no_revocation.py puts in its place: what the twin still pays.
Best of 7 repeats of 200,000 calls each (the minimum is the least disturbed figure).
"""

from __future__ import annotations

import argparse
import sys
import timeit
import uuid
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

_BENCH = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if p and Path(p).resolve() != _BENCH]  # bench/profile.py

from api.auth.bearer import BearerAuthenticator  # noqa: E402
from api.auth.revocation import RevocationList  # noqa: E402
from api.auth.tokens import AccessClaims  # noqa: E402

NOW = 1_800_000_000.0
CALLS = 200_000


def drive(make: Callable[[], Coroutine[Any, Any, bool]]) -> Callable[[], None]:
    """Run a coroutine that never suspends to its end, as the event loop would."""

    def run() -> None:
        coro = make()
        try:
            coro.send(None)
        except StopIteration:
            return
        raise AssertionError("the check suspended: it went to the database")

    return run


def best_ns(fn: Callable[[], object]) -> float:
    return min(timeit.repeat(fn, number=CALLS, repeat=7)) / CALLS * 1e9


async def never_revoked(self: object, claims: object) -> bool:  # as in launch_no_revocation
    return False


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[0, 300, 100_000])
    args = parser.parse_args()
    claims = AccessClaims(
        sub=str(uuid.uuid4()),
        sid=str(uuid.uuid4()),
        jti=str(uuid.uuid4()),
        iat=int(NOW) - 60,
        exp=int(NOW) + 3540,
        roles=("user",),
        auth_time=int(NOW) - 60,
    )
    off = best_ns(drive(lambda: never_revoked(None, claims)))
    print(f"replacement coroutine (check off): {off:6.0f} ns/call")
    for size in args.sizes:
        revocations = RevocationList(lambda: NOW, access_ttl=3600, leeway=30)
        revocations.revoke(str(uuid.uuid4()) for _ in range(size))
        assert len(revocations) == size
        assert not revocations.needs_database
        bearer = BearerAuthenticator(tokens=None, revocations=revocations)  # type: ignore[arg-type]
        lookup = best_ns(lambda: revocations.is_revoked(claims.sid, claims.iat))  # noqa: B023
        check = best_ns(drive(lambda: bearer._is_revoked(claims)))  # noqa: B023
        print(
            f"{size:>7} ended sessions: is_revoked {lookup:4.0f} ns, _is_revoked {check:4.0f} ns,"
            f" minus the replacement {check - off:4.0f} ns/request"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
