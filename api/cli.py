"""The command line: serve, migrate, create-user, keys generate, guards, sessions prune,
documents check, and the generated documents (schema, settings-table)."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import getpass
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from api.settings import Settings, SettingsError, load_settings

log = logging.getLogger("graphgate")


async def _create_user(
    settings: Settings, email: str, password: str, roles: tuple[str, ...]
) -> str:
    from tortoise import Tortoise

    from api.clock import system_clock
    from api.db import connection as db
    from api.services import Services

    config = db.tortoise_config(db.connection(settings))
    await Tortoise.init(config=config)
    services = Services.build(settings, system_clock)
    try:
        await db.apply_migrations(config)
        user = await services.accounts.create_user(email, password, roles=roles)
        return str(user.id)
    finally:
        services.hasher.close()
        await Tortoise.close_connections()


async def _prune_sessions(settings: Settings) -> int:
    from tortoise import Tortoise

    from api.clock import system_clock
    from api.db import connection as db
    from api.services import Services

    await Tortoise.init(config=db.tortoise_config(db.connection(settings)))
    try:
        services = Services.build(settings, system_clock)
        await services.mfa_tokens.prune()  # MFA tokens expired over a day ago
        await services.passkey_challenges.prune()  # and passkey challenges
        return await services.sessions.prune()
    finally:
        await Tortoise.close_connections()


def _check_manifest(settings: Settings, path: str) -> int:
    """Every document of the manifest parsed and validated against the schema and the limits
    of `settings`; the number of documents (ManifestError names the first invalid one)."""
    from schema.build import build_schema
    from schema.manifest import read_manifest

    documents = read_manifest(path)
    build_schema(settings, documents)
    return len(documents)


def _read_password(from_stdin: bool) -> str:
    if from_stdin or not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Repeat: ") != first:
        raise SystemExit("passwords differ")
    return first


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m api", description="graphgate")
    sub = parser.add_subparsers(dest="command")
    serve_p = sub.add_parser("serve", help="apply migrations, then serve")
    serve_p.add_argument("--host")
    serve_p.add_argument("--port", type=int)
    serve_p.add_argument("--workers", type=int)
    sub.add_parser("migrate", help="apply pending migrations and exit")
    user_p = sub.add_parser("create-user", help="create a user; prints its id")
    user_p.add_argument("email")
    user_p.add_argument("--role", action="append", dest="roles")
    user_p.add_argument("--password-stdin", action="store_true")
    keys_p = sub.add_parser("keys", help="signing keys")
    keys_sub = keys_p.add_subparsers(dest="keys_command", required=True)
    gen_p = keys_sub.add_parser("generate", help="write a new signing key into JWT_KEYS_DIR")
    gen_p.add_argument("--alg", choices=["EdDSA", "ES256", "RS256"])
    sub.add_parser("guards", help="print every root field and its guard")
    sessions_p = sub.add_parser("sessions", help="session maintenance")
    sessions_sub = sessions_p.add_subparsers(dest="sessions_command", required=True)
    sessions_sub.add_parser("prune", help="delete sessions that ended or expired")
    sub.add_parser("schema", help="print the GraphQL schema (SDL) that schema.graphql holds")
    documents_p = sub.add_parser("documents", help="trusted documents")
    documents_sub = documents_p.add_subparsers(dest="documents_command", required=True)
    check_p = documents_sub.add_parser(
        "check", help="parse and validate every document of a manifest (as the server does)"
    )
    check_p.add_argument("manifest")
    table_p = sub.add_parser("settings-table", help="print the Markdown table of every setting")
    table_p.add_argument("--write", metavar="FILE", help="replace the generated table in FILE")
    return parser


def _documents(args: argparse.Namespace) -> int | None:
    """The generated documents; they read no environment, so a broken .env cannot change them."""
    if args.command == "schema":
        from schema.sdl import schema_sdl

        print(schema_sdl())
        return 0
    if args.command == "settings-table":
        from api.settings_doc import settings_table, write_table

        if args.write:
            changed = write_table(Path(args.write))
            print(f"{args.write}: {'updated' if changed else 'already up to date'}")
        else:
            print(settings_table())
        return 0
    return None


def main(argv: Sequence[str] | None = None) -> int:
    from api.web.server import setup_logging

    args = _parser().parse_args(argv)
    documents = _documents(args)
    if documents is not None:
        return documents
    setup_logging()
    try:
        settings = load_settings()
        setup_logging(settings.log_format)
        command = args.command or "serve"
        if command == "serve" and settings.warning:
            log.warning("%s", settings.warning)
        if command == "documents":
            count = _check_manifest(settings, args.manifest)
            print(f"{args.manifest}: {count} document(s), all valid")
            return 0
        if command == "serve":
            if settings.trusted_documents:  # refuse to start once, here, not in each worker
                _check_manifest(settings, settings.trusted_documents)
            host = getattr(args, "host", None) or settings.host
            port = getattr(args, "port", None) or settings.port
            workers = getattr(args, "workers", None) or settings.workers
            # The port is part of what other settings derive (development's passkey origin).
            settings = dataclasses.replace(settings, host=host, port=port)
            from api.web.server import serve

            return serve(settings, host, port, workers)
        if command == "migrate":
            from api.db import connection as db

            asyncio.run(db.migrate(settings))
            return 0
        if command == "create-user":
            roles = tuple(args.roles or ["user"])
            unknown = sorted(set(roles) - set(settings.roles))
            if unknown:
                print(
                    f"unknown role(s): {', '.join(unknown)} (ROLES={','.join(settings.roles)})",
                    file=sys.stderr,
                )
                return 2
            password = _read_password(args.password_stdin)
            print(asyncio.run(_create_user(settings, args.email, password, roles)))
            return 0
        if command == "keys":
            from api.auth.keys import generate_key

            alg = args.alg or (settings.jwt_algorithm if settings.asymmetric else "EdDSA")
            folder = Path(settings.jwt_keys_dir or Path(settings.data_dir) / "keys")
            print(generate_key(alg, folder))
            return 0
        if command == "guards":
            from schema.sdl import guard_table

            print(guard_table(settings))
            return 0
        if command == "sessions":
            print(f"pruned {asyncio.run(_prune_sessions(settings))} session(s)")
            return 0
    except SettingsError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        from api.errors import AppError
        from schema.manifest import ManifestError

        if isinstance(exc, ManifestError):
            print(f"trusted documents: {exc}", file=sys.stderr)
            return 2
        if isinstance(exc, AppError):
            print(f"error: {exc.message} ({exc.code})", file=sys.stderr)
            return 1
        raise
    return 0
