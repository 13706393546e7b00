"""Tortoise configuration, migrations, the open database, and transactions (atomic,
after_commit, locked); is_unavailable tells an outage from a bug."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from contextvars import ContextVar
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import asyncpg
from tortoise import Tortoise
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.backends.base.config_generator import expand_db_url
from tortoise.backends.base.executor import EXECUTOR_CACHE
from tortoise.connection import get_connection
from tortoise.exceptions import DBConnectionError
from tortoise.migrations.executor import MigrationExecutor
from tortoise.models import Model
from tortoise.transactions import in_transaction

from api.settings import Settings

log = logging.getLogger(__name__)

MODELS = "api.db.models"
MIGRATIONS = "api.db.migrations"
_UNAVAILABLE = (
    OSError,  # refused, reset, unreachable
    TimeoutError,  # connect or statement timeout
    DBConnectionError,
    asyncpg.PostgresConnectionError,  # class 08
    asyncpg.InterfaceError,
    # class 57: statement_timeout, admin/crash shutdown, starting up, database dropped...
    asyncpg.OperatorInterventionError,
    asyncpg.InsufficientResourcesError,  # class 53: too many connections, disk full, memory
    # class 40: a deadlock or serialisation failure rolled the transaction back; nothing was
    # written, and the same request may succeed a moment later.
    asyncpg.TransactionRollbackError,
)


SQLITE_FILE_MODE = 0o600
_SQLITE_COMPANIONS = ("-wal", "-shm", "-journal")


def private_sqlite_file(path: str) -> None:
    """Create the SQLite file owner-only (0600) before SQLite opens it.

    SQLite gives its -wal, -shm and -journal files the database file's mode, so they follow;
    companions left by an older, laxer start are tightened too. The file holds password
    hashes and sessions: no other local user may read it.
    """
    Path(path).parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, SQLITE_FILE_MODE))
    for candidate in (path, *(path + suffix for suffix in _SQLITE_COMPANIONS)):
        if os.path.exists(candidate):
            os.chmod(candidate, SQLITE_FILE_MODE)


def connection(settings: Settings) -> str | dict[str, Any]:
    """The default connection: SQLite as a URL (its file created, owner-only); PostgreSQL as a
    credentials dict with the pool size and bounded connect and statement timeouts, so an
    outage answers within seconds instead of hanging."""
    url = settings.database_url
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        path = url[len("sqlite://") :].split("?", 1)[0]
        if path and path != ":memory:":
            private_sqlite_file(path)
        return url
    config = expand_db_url(url)
    if config["engine"].endswith(("asyncpg", "psycopg")):
        credentials = config["credentials"]
        credentials.setdefault("minsize", 1)
        credentials.setdefault("maxsize", settings.database_pool_size)
        credentials.setdefault("timeout", settings.database_connect_timeout)
        credentials.setdefault("command_timeout", settings.database_statement_timeout)
    return config


def tortoise_config(conn: str | dict[str, Any]) -> dict[str, Any]:
    """The config dict for one connection, with our models and migrations package."""
    return {
        "connections": {"default": conn},
        "apps": {
            "models": {
                "models": [MODELS],
                "default_connection": "default",
                "migrations": MIGRATIONS,
            }
        },
        "use_tz": True,
        "timezone": "UTC",
    }


# Used only by `tortoise -c api.db.connection.TORTOISE_ORM makemigrations` when models change.
TORTOISE_ORM = tortoise_config("sqlite://:memory:")


async def apply_migrations(config: dict[str, Any]) -> None:
    """Apply pending migrations on the already initialised default connection."""
    executor = MigrationExecutor(get_connection("default"), config["apps"])
    await executor.migrate()


# Any fixed number: the advisory lock that lets one process at a time migrate a database.
MIGRATION_LOCK = 0x67676174  # "ggat"


@contextlib.asynccontextmanager
async def one_migrator() -> AsyncIterator[None]:
    """On PostgreSQL, hold a session advisory lock while the block runs: replicas started
    together would otherwise all create the same tables, and all but one fail to start."""
    client = get_connection("default")
    if client.capabilities.dialect != "postgres":
        yield  # SQLite: one file, one server; its own write lock serialises the rest
        return
    async with client.acquire_connection() as raw:
        # Tried every half second, not waited for in one statement: DATABASE_STATEMENT_TIMEOUT
        # (the pool's command timeout) would cut that wait off when the other process's
        # migration takes longer, and this process would fail its start. A holder that dies
        # lets go with its connection; the orchestrator's deadlines bound the wait.
        waiting = False
        while not await raw.fetchval(f"SELECT pg_try_advisory_lock({MIGRATION_LOCK})"):
            if not waiting:
                waiting = True
                log.info("migrations: another process is migrating; waiting for it")
            await asyncio.sleep(0.5)
        try:
            yield
        finally:
            await raw.execute(f"SELECT pg_advisory_unlock({MIGRATION_LOCK})")


async def migrate(settings: Settings) -> None:
    """`python -m api migrate` (and `serve` before serving): initialise, apply pending
    migrations one process at a time, close."""
    conn = connection(settings)
    if isinstance(conn, dict):  # one pooled connection holds the lock, another migrates
        credentials = conn["credentials"]
        credentials["maxsize"] = max(2, credentials["maxsize"])
    config = tortoise_config(conn)
    EXECUTOR_CACHE.clear()
    await Tortoise.init(config=config)
    try:
        async with one_migrator():
            await apply_migrations(config)
    finally:
        await Tortoise.close_connections()


@contextlib.asynccontextmanager
async def opened(settings: Settings) -> AsyncIterator[None]:
    """The database open for as long as the block runs (migrations are applied by `serve`)."""
    config = tortoise_config(connection(settings))
    # Tortoise caches insert SQL per connection *name*, not dialect: a process that opened
    # another database before (the test suite does) would reuse the other dialect's SQL.
    EXECUTOR_CACHE.clear()
    # Requests run in other tasks than start-up: let them find this context.
    await Tortoise.init(config=config, _enable_global_fallback=True)
    try:
        yield
    finally:
        await Tortoise.close_connections()


async def ping() -> None:
    """Raise if the database does not answer within a second."""
    async with asyncio.timeout(1.0):
        await get_connection("default").execute_query("SELECT 1")


def is_unavailable(exc: BaseException) -> bool:
    """Whether an exception means the database (or a dependency) is down or saturated,
    as opposed to a bug: those answer SERVICE_UNAVAILABLE, not INTERNAL_SERVER_ERROR."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, _UNAVAILABLE) or (
            isinstance(seen, sqlite3.OperationalError) and "locked" in str(seen)
        ):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


AfterCommit = Callable[[], Awaitable[None]]
# The hooks of the outermost `atomic()` block running in this task, if any.
_AFTER_COMMIT: ContextVar[list[AfterCommit] | None] = ContextVar("after_commit", default=None)


@contextlib.asynccontextmanager
async def atomic() -> AsyncIterator[BaseDBAsyncClient]:
    """One transaction that holds the write lock from its first statement.

    PostgreSQL: rows are locked as they are written (or with `lock_user`). SQLite has no row
    locks and Tortoise opens a deferred transaction, whose first read fixes a snapshot that a
    later write may find stale (another worker's commit in between: "database is locked").
    So on SQLite the block starts with a write that matches nothing: it takes the database's
    write lock at once, and everything read inside is the latest committed state - the
    equivalent of a row lock on every row the block reads.

    Hooks given to `after_commit` inside the block run once it has committed (never after a
    rollback); a nested `atomic()` joins the outer block's transaction and hooks.
    """
    outer = _AFTER_COMMIT.get()
    if outer is not None:
        async with _transaction() as conn:
            yield conn
        return
    hooks: list[AfterCommit] = []
    token = _AFTER_COMMIT.set(hooks)
    try:
        async with _transaction() as conn:
            if conn.capabilities.dialect == "sqlite":
                await conn.execute_query("UPDATE users SET id = id WHERE 0")
            yield conn
    finally:
        _AFTER_COMMIT.reset(token)
    for hook in hooks:
        await hook()


@contextlib.asynccontextmanager
async def _transaction() -> AsyncIterator[BaseDBAsyncClient]:
    """Tortoise's `in_transaction()`, entered so that a cancellation cannot leak it.

    Its `__aenter__` takes the connection (SQLite: the connection's lock; PostgreSQL: a
    pooled connection) and only then sends BEGIN. Cancelled in between (EXECUTION_TIMEOUT on
    a saturated worker), it never reached `__aexit__`: the lock stayed taken and every later
    query of the worker waited on it for good. Once the context holds its token, it is ours
    to close."""
    context = in_transaction()
    try:
        conn = await context.__aenter__()
    except asyncio.CancelledError:
        if getattr(context, "token", None) is not None:
            with contextlib.suppress(Exception):
                await context.__aexit__(asyncio.CancelledError, None, None)
        raise
    try:
        yield conn
    except BaseException as exc:
        await context.__aexit__(type(exc), exc, exc.__traceback__)
        raise
    await context.__aexit__(None, None, None)


async def after_commit(hook: AfterCommit) -> None:
    """Run `hook` when the enclosing `atomic()` block commits; at once outside of one.

    For effects that others act on (revocations told to every worker, mails): announcing
    them before the commit would act on a change that may still roll back."""
    hooks = _AFTER_COMMIT.get()
    if hooks is None:
        await hook()
    else:
        hooks.append(hook)


M = TypeVar("M", bound=Model)


async def locked(model: type[M], pk: object, conn: BaseDBAsyncClient) -> M | None:
    """Read a row inside an `atomic()` block, locked until it ends (FOR UPDATE on PostgreSQL;
    SQLite's block already holds the write lock): what is read here cannot change before
    the block commits."""
    # FOR NO KEY UPDATE: the lock an UPDATE of non-key columns takes. It does not block the
    # foreign-key checks of rows inserted elsewhere (an audit event, a session for this
    # user), so a logout writing its audit row never deadlocks with an account change.
    return await model.filter(pk=pk).select_for_update(no_key=True).using_db(conn).first()
