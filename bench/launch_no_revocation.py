"""`python -m api serve`, with the access-token revocation check answering "not revoked".

FOR BENCHMARKS ONLY (bench/run.py --scenarios revocation): it measures what the check
costs per request. It is deliberately not a setting of graphgate: a switch that turns
revocation off would be a security foot-gun in production. Everything else (settings,
migrations, workers, the request path) is the unmodified `python -m api` of the source
tree on PYTHONPATH.

    PYTHONPATH=/path/to/graphgate python bench/launch_no_revocation.py serve --port 8001

What is replaced, at import time of this module (so also in spawned workers, which
import the main module again):
- `BearerAuthenticator._is_revoked` (api/auth/bearer.py), the check made for every
  request with a valid token: the in-memory map lookup, and the database read while the
  Redis feed is down. The replacement is a coroutine answering False, so the request
  still awaits one call; what disappears is the check's own work.
- `RevocationList.is_revoked` and `.needs_database` (api/auth/revocation.py), in case a
  caller asks the list directly: "not revoked", "no database needed".

The list itself is still loaded, polled and fed as usual (that is background work, not
per-request). bench/run.py verifies, before measuring, that a token of an ended session
is refused by graphgate-sqlite and accepted by this server; so a refactor that moves the
check out of reach of these patches stops the benchmark instead of measuring nothing.
"""

from __future__ import annotations

import sys
from pathlib import Path

# `python bench/launch_no_revocation.py` puts bench/ first on sys.path, and bench/ holds
# modules named like standard ones (profile.py): graphgate must not import those.
_BENCH = str(Path(__file__).resolve().parent)
sys.path[:] = [p for p in sys.path if p and Path(p).resolve() != Path(_BENCH)]

from api.auth.bearer import BearerAuthenticator  # noqa: E402
from api.auth.revocation import RevocationList  # noqa: E402


async def _never_revoked(self: object, claims: object) -> bool:
    return False


def _patch() -> None:
    for owner, name in ((RevocationList, "is_revoked"), (RevocationList, "needs_database")):
        if not hasattr(owner, name):  # the code moved on: say so instead of measuring nothing
            raise SystemExit(f"launch_no_revocation: {owner.__name__}.{name} no longer exists")
    RevocationList.is_revoked = lambda self, sid, iat: False  # type: ignore[method-assign]
    RevocationList.needs_database = property(lambda self: False)  # type: ignore[method-assign,assignment]
    if hasattr(BearerAuthenticator, "_is_revoked"):
        BearerAuthenticator._is_revoked = _never_revoked  # type: ignore[method-assign]


_patch()

if __name__ == "__main__":
    from api.cli import main

    print("launch_no_revocation: the revocation check is OFF (benchmark only)", file=sys.stderr)
    sys.exit(main(sys.argv[1:]))
