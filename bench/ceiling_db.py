"""Database ceilings: bare aiohttp + PyJWT + the driver, sending graphgate's own SQL.

Three answers, each the same JSON as graphgate's, after the same access-token checks as
bench/ceiling.py, with the same SQL statements graphgate sends (text, count, round trips
and transactions; captured from Tortoise's log, see bench/README.md "Database ceilings"):

- `{ me { id email displayName } }`: the viewer's row by primary key (refused like
  graphgate when it is gone or deactivated).
- `{ notes(first: 20) { edges { node { title owner { email } } } } }`: one page of the
  viewer's notes, newest first, then their owners' rows in one `IN` query.
- `mutation R($t: String!) { refresh(refreshToken: $t) { accessToken refreshToken } }`:
  the refresh token verified like graphgate's (its own key, `typ`, `type`, claims, times),
  the session with its user read, then one transaction: the user's row locked, the session
  read again, the compare-and-set UPDATE on the current jti hash, the audit row; then a new
  access and refresh token signed. A lost compare-and-set answers REFRESH_TOKEN_REUSED.
  With --skip-user-lock the locked user read is left out (the roles come with the first
  read): the difference is what that statement costs (bench/README.md).

Nothing else: no GraphQL, no revocation list, no access log, no metrics. It runs against
graphgate's own database (the rows graphgate wrote), so the bench starts it beside the
graphgate of that database and loads only one of them at a time.

    JWT_SECRET=... JWT_REFRESH_SECRET=... python bench/ceiling_db.py \
        --database postgres://... | sqlite:///path/to/graphgate.sqlite3 --port 18002

PostgreSQL: an asyncpg pool of --pool-size (graphgate's default, 10). SQLite: one aiosqlite
connection with Tortoise's pragmas (WAL, foreign keys), shared under a lock as Tortoise
shares its own.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jwt
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ceiling import COMPACT, REQUIRED, _error  # the same token checks as the token ceiling

REFRESH_REQUIRED = ["iss", "aud", "sub", "sid", "jti", "iat", "exp", "type"]
NO_TIMES = {"verify_exp": False, "verify_iat": False, "verify_nbf": False}

ME = "{ me { id email displayName } }"
NOTES = "{ notes(first: 20) { edges { node { title owner { email } } } } }"
REFRESH = "mutation R($t: String!) { refresh(refreshToken: $t) { accessToken refreshToken } }"

# graphgate's statements (api/db/reads.py, api/db/rotation.py), as Tortoise logs them.
USER_COLUMNS = (
    '"id","email","display_name","roles","is_active","email_verified","created_at",'
    '"last_login_at",("totp_secret" IS NOT NULL) AS "totp_enabled"'
)


def sql(postgres: bool) -> dict[str, str]:
    """graphgate's statements (bench/README.md lists them as Tortoise logs them), in the
    driver's placeholder style."""
    n = iter(range(1, 100))

    def p() -> str:
        return f"${next(n)}" if postgres else "?"

    def reset() -> None:
        nonlocal n
        n = iter(range(1, 100))

    out: dict[str, str] = {}
    reset()
    out["user_in"] = f'SELECT {USER_COLUMNS} FROM "users" WHERE "id" IN ({p()})'
    reset()
    out["notes"] = (
        'SELECT "id","title","body","owner_id","created_at","updated_at" FROM "notes" '
        f'WHERE "owner_id"={p()} ORDER BY "created_at" DESC,"id" DESC LIMIT {p()}'
    )
    reset()
    out["session"] = (
        'SELECT s."id",s."user_id",u."is_active",s."current_jti_hash",s."previous_jti_hash",'
        's."rotated_at",s."expires_at",s."max_expires_at",s."ended_at" FROM "sessions" s '
        f'JOIN "users" u ON u."id"=s."user_id" WHERE s."id"={p()}'
    )
    reset()
    lock = " FOR NO KEY UPDATE" if postgres else ""
    out["lock_user"] = f'SELECT {USER_COLUMNS} FROM "users" WHERE "id"={p()}{lock}'
    reset()
    out["session_again"] = (
        'SELECT "id","access_not_before","latest_access_iat","auth_time","amr" FROM "sessions" '
        f'WHERE "id"={p()}'
    )
    reset()
    out["swap"] = (
        f'UPDATE "sessions" SET "current_jti_hash"={p()},"previous_jti_hash"={p()},'
        f'"rotated_at"={p()},"last_used_at"={p()},"expires_at"={p()},"latest_access_iat"={p()} '
        f'WHERE "id"={p()} AND "current_jti_hash"={p()} AND "ended_at" IS NULL'
    )
    reset()
    out["audit"] = (
        'INSERT INTO "audit_events" ("id","kind","ip","at","user_id") '
        f"VALUES ({p()},{p()},{p()},{p()},{p()})"
    )
    return out


class Database:
    """The driver alone: fetch rows as dicts, run statements, and one transaction."""

    postgres: bool

    async def fetch(self, query: str, *args: Any) -> list[dict[str, Any]]:
        raise NotImplementedError

    def transaction(self) -> contextlib.AbstractAsyncContextManager[Database]:
        raise NotImplementedError

    async def execute(self, query: str, *args: Any) -> int:
        raise NotImplementedError

    def when(self, at: datetime) -> Any:
        return at

    def uid(self, value: str) -> Any:
        return value

    async def close(self) -> None:
        raise NotImplementedError


class Postgres(Database):
    postgres = True

    def __init__(self, pool: Any, conn: Any = None) -> None:
        self._pool = pool
        self._conn = conn

    @classmethod
    async def open(cls, url: str, size: int) -> Postgres:
        import asyncpg

        pool = await asyncpg.create_pool(url, min_size=1, max_size=size)
        return cls(pool)

    async def fetch(self, query: str, *args: Any) -> list[dict[str, Any]]:
        if self._conn is not None:
            return [dict(r) for r in await self._conn.fetch(query, *args)]
        async with self._pool.acquire() as conn:
            return [dict(r) for r in await conn.fetch(query, *args)]

    async def execute(self, query: str, *args: Any) -> int:
        status: str = await self._conn.execute(query, *args)
        return int(status.rsplit(" ", 1)[-1])

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Database]:  # type: ignore[override]
        async with self._pool.acquire() as conn, conn.transaction():
            yield Postgres(self._pool, conn)

    async def close(self) -> None:
        await self._pool.close()


class Sqlite(Database):
    postgres = False

    def __init__(self, conn: Any) -> None:
        self._conn = conn
        self._lock = asyncio.Lock()  # one connection: a transaction holds it, as in Tortoise

    @classmethod
    async def open(cls, path: str) -> Sqlite:
        import aiosqlite

        conn = await aiosqlite.connect(path, isolation_level=None)
        conn.row_factory = aiosqlite.Row
        for pragma in ("journal_mode=WAL", "journal_size_limit=16384", "foreign_keys=ON"):
            await conn.execute(f"PRAGMA {pragma}")
        return cls(conn)

    async def _fetch(self, query: str, args: tuple[Any, ...]) -> list[dict[str, Any]]:
        async with self._conn.execute(query, args) as cursor:
            return [dict(r) for r in await cursor.fetchall()]

    async def fetch(self, query: str, *args: Any) -> list[dict[str, Any]]:
        async with self._lock:
            return await self._fetch(query, args)

    async def execute(self, query: str, *args: Any) -> int:
        cursor = await self._conn.execute(query, args)
        return int(cursor.rowcount)

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Database]:  # type: ignore[override]
        async with self._lock:
            inner = _SqliteTx(self._conn)
            await self._conn.execute("BEGIN")
            try:
                # graphgate's atomic(): take the write lock at once (api/db/connection.py)
                await self._conn.execute("UPDATE users SET id = id WHERE 0")
                yield inner
            except BaseException:
                await self._conn.execute("ROLLBACK")
                raise
            await self._conn.execute("COMMIT")

    def when(self, at: datetime) -> Any:
        return at.isoformat(" ")  # Tortoise's sqlite3 adapter for datetimes

    async def close(self) -> None:
        await self._conn.close()


class _SqliteTx(Sqlite):
    """Statements inside a transaction that already holds the connection's lock."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    async def fetch(self, query: str, *args: Any) -> list[dict[str, Any]]:
        return await self._fetch(query, args)


def _when(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value)


def _roles(value: Any) -> list[str]:
    return json.loads(value) if isinstance(value, str | bytes) else list(value)


def _answer(data: dict[str, Any]) -> web.Response:
    return web.Response(
        body=json.dumps({"data": data}, separators=COMPACT).encode(),
        content_type="application/json",
        charset="utf-8",
    )


def make_app(db: Database, secret: str, refresh_secret: str, issuer: str, audience: str,
             leeway: int, access_ttl: int, refresh_ttl: int,
             skip_user_lock: bool = False) -> web.Application:  # fmt: skip
    key, refresh_key = secret.encode(), refresh_secret.encode()
    q = sql(db.postgres)
    if skip_user_lock:  # the roles come with the first read instead
        q["session"] = q["session"].replace('u."is_active",', 'u."is_active",u."roles",', 1)

    def verify_access(request: web.Request) -> dict[str, Any] | web.Response:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            return _error("Authentication required.", "UNAUTHENTICATED")
        try:
            decoded = jwt.decode_complete(
                token, key, algorithms=["HS256"], audience=audience, issuer=issuer,
                leeway=leeway, options={"require": REQUIRED},
            )  # fmt: skip
        except jwt.ExpiredSignatureError:
            return _error("The token has expired.", "TOKEN_EXPIRED")
        except jwt.PyJWTError:
            return _error("The token is invalid.", "INVALID_TOKEN")
        claims: dict[str, Any] = decoded["payload"]
        if decoded["header"].get("typ") != "at+jwt" or claims.get("type") != "access":
            return _error("The token has the wrong type.", "INVALID_TOKEN")
        return claims

    async def me(claims: dict[str, Any]) -> web.Response:
        rows = await db.fetch(q["user_in"], db.uid(claims["sub"]))
        if not rows or not rows[0]["is_active"]:
            return _error("The token has been revoked.", "TOKEN_REVOKED")
        row = rows[0]
        return _answer(
            {"me": {"id": claims["sub"], "email": row["email"], "displayName": row["display_name"]}}
        )

    async def notes(claims: dict[str, Any]) -> web.Response:
        rows = await db.fetch(q["notes"], db.uid(claims["sub"]), 21)
        rows = rows[:20]
        owner_ids = list(dict.fromkeys(str(r["owner_id"]) for r in rows))
        emails: dict[str, str] = {}
        if owner_ids:
            query = q["user_in"]
            if len(owner_ids) > 1:  # IN (?, ?, ...) as Tortoise writes it
                marks = ",".join(
                    f"${i + 1}" if db.postgres else "?" for i in range(len(owner_ids))
                )
                query = query.rsplit("(", 1)[0] + f"({marks})"
            for user in await db.fetch(query, *map(db.uid, owner_ids)):
                emails[str(user["id"])] = user["email"]
        edges = [
            {"node": {"title": r["title"], "owner": {"email": emails[str(r["owner_id"])]}}}
            for r in rows
        ]
        return _answer({"notes": {"edges": edges}})

    async def refresh(token: Any) -> web.Response:
        if not isinstance(token, str):
            return _error("The token is invalid.", "INVALID_TOKEN")
        try:
            if jwt.get_unverified_header(token).get("typ") != "rt+jwt":
                return _error("The token has the wrong type.", "INVALID_TOKEN")
            claims = jwt.decode(
                token, refresh_key, algorithms=["HS256"], audience=audience, issuer=issuer,
                options={**NO_TIMES, "require": REFRESH_REQUIRED},
            )  # fmt: skip
        except jwt.PyJWTError:
            return _error("The token is invalid.", "INVALID_TOKEN")
        now = time.time()
        if claims.get("type") != "refresh" or claims["iat"] > now + leeway:
            return _error("The token is invalid.", "INVALID_TOKEN")
        if claims["exp"] <= now - leeway:
            return _error("The session has expired.", "SESSION_EXPIRED")
        try:
            sid = str(uuid.UUID(claims["sid"]))
        except (ValueError, TypeError, AttributeError):
            return _error("The token is invalid.", "INVALID_TOKEN")
        found = await db.fetch(q["session"], db.uid(sid))
        if not found or str(found[0]["user_id"]) != claims["sub"]:
            return _error("The token is invalid.", "INVALID_TOKEN")
        session = found[0]
        if session["ended_at"] is not None or not session["is_active"]:
            return _error("The token has been revoked.", "TOKEN_REVOKED")
        if now >= min(_when(session["max_expires_at"]), _when(session["expires_at"])).timestamp():
            return _error("The session has expired.", "SESSION_EXPIRED")
        presented = hashlib.sha256(claims["jti"].encode()).hexdigest()
        if presented != session["current_jti_hash"]:
            return _error("The refresh token was reused.", "REFRESH_TOKEN_REUSED")
        iat = int(now)
        jti = uuid.uuid4().hex
        exp = min(iat + refresh_ttl, int(_when(session["max_expires_at"]).timestamp()))
        at = datetime.fromtimestamp(now, UTC)
        async with db.transaction() as tx:
            if skip_user_lock:  # --skip-user-lock: what the locked user read costs
                users = [{"roles": session["roles"]}]
            else:
                users = await tx.fetch(q["lock_user"], db.uid(claims["sub"]))
                if not users or not users[0]["is_active"]:
                    raise web.HTTPConflict()  # rolled back; the bench user stays active
            current = (await tx.fetch(q["session_again"], db.uid(sid)))[0]
            access_iat = max(iat, current["access_not_before"])
            updated = await tx.execute(
                q["swap"], hashlib.sha256(jti.encode()).hexdigest(), presented, db.when(at),
                db.when(at), db.when(datetime.fromtimestamp(exp, UTC)),
                max(current["latest_access_iat"], access_iat), db.uid(sid), presented,
            )  # fmt: skip
            if not updated:
                return _error("The refresh token was reused.", "REFRESH_TOKEN_REUSED")
            await tx.execute(
                q["audit"], db.uid(str(uuid.uuid4())), "refresh", "127.0.0.1", db.when(at),
                db.uid(claims["sub"]),
            )  # fmt: skip
        base = {"iss": issuer, "aud": audience, "sub": claims["sub"], "sid": sid}
        access = jwt.encode(
            {**base, "jti": uuid.uuid4().hex, "iat": access_iat, "exp": access_iat + access_ttl,
             "type": "access", "roles": _roles(users[0]["roles"]),
             "auth_time": current["auth_time"],
             "amr": _roles(current["amr"]) if current["amr"] is not None else ["pwd"]},
            key, algorithm="HS256", headers={"typ": "at+jwt"},
        )  # fmt: skip
        new_refresh = jwt.encode(
            {**base, "jti": jti, "iat": iat, "exp": exp, "type": "refresh"},
            refresh_key, algorithm="HS256", headers={"typ": "rt+jwt"},
        )  # fmt: skip
        return _answer({"refresh": {"accessToken": access, "refreshToken": new_refresh}})

    handlers: dict[str, Callable[[dict[str, Any]], Awaitable[web.Response]]] = {
        ME: me,
        NOTES: notes,
    }

    async def graphql(request: web.Request) -> web.Response:
        try:
            payload: Any = json.loads(await request.read())
        except ValueError:
            return web.json_response({"errors": [{"message": "Invalid JSON"}]}, status=400)
        if not isinstance(payload, dict) or not isinstance(payload.get("query"), str):
            return web.json_response({"errors": [{"message": "No query"}]}, status=400)
        query = payload["query"]
        if query == REFRESH:
            return await refresh((payload.get("variables") or {}).get("t"))
        claims = verify_access(request)
        if isinstance(claims, web.Response):
            return claims
        handler = handlers.get(query)
        if handler is None:  # the harness's readiness probe, and anything else
            return _answer({"__typename": "Query"})
        return await handler(claims)

    async def close(app: web.Application) -> AsyncIterator[None]:
        yield
        await db.close()

    app = web.Application()
    app.router.add_post("/graphql", graphql)
    app.cleanup_ctx.append(close)
    return app


async def open_database(url: str, pool_size: int) -> Database:
    if url.startswith("sqlite://"):
        return await Sqlite.open(url[len("sqlite://") :].split("?", 1)[0])
    return await Postgres.open(url.replace("postgres://", "postgresql://", 1), pool_size)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=18002)
    parser.add_argument("--database", required=True, help="graphgate's DATABASE_URL")
    parser.add_argument("--pool-size", type=int, default=10, help="PostgreSQL pool (graphgate's)")
    parser.add_argument(
        "--skip-user-lock",
        action="store_true",
        help="refresh without the locked user read (roles from the first read): its cost",
    )
    args = parser.parse_args()
    env = os.environ
    secret, refresh_secret = env.get("JWT_SECRET", ""), env.get("JWT_REFRESH_SECRET", "")
    if len(secret.encode()) < 32 or len(refresh_secret.encode()) < 32:
        raise SystemExit("JWT_SECRET and JWT_REFRESH_SECRET (at least 32 bytes) are required")

    async def build() -> web.Application:
        db = await open_database(args.database, args.pool_size)
        return make_app(
            db, secret, refresh_secret,
            env.get("JWT_ISSUER", "graphgate"), env.get("JWT_AUDIENCE", "graphgate-clients"),
            int(env.get("JWT_LEEWAY", "30")), int(env.get("ACCESS_TOKEN_TTL", "900")),
            int(env.get("REFRESH_TOKEN_TTL", str(30 * 24 * 3600))), args.skip_user_lock,
        )  # fmt: skip

    web.run_app(build(), host=args.host, port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
