"""The command line: migrate, create-user, guards, and refusing bad configuration."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.api import Api
from tests.helpers.env import BASE_ENV
from tests.helpers.graphql import LOGIN

ROOT = Path(__file__).resolve().parent.parent


def run(
    tmp_path: Path, *args: str, stdin: str = "", **env: str
) -> subprocess.CompletedProcess[str]:
    full_env = {
        k: v for k, v in os.environ.items() if not k.startswith(("JWT_", "APP_ENV", "DATABASE_URL"))
    }
    full_env.update({"DATA_DIR": str(tmp_path / "data"), "PYTHONPATH": str(ROOT), **env})
    return subprocess.run(
        [sys.executable, "-m", "api", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=full_env,
        cwd=tmp_path,
        timeout=60,
    )


def test_create_user_prints_only_the_id_and_the_user_can_sign_in(tmp_path: Path) -> None:
    result = run(
        tmp_path,
        "create-user",
        " Root@Example.com ",
        "--role",
        "admin",
        "--role",
        "user",
        "--password-stdin",
        stdin="admin password\n",
        **BASE_ENV,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1 and len(lines[0]) == 36  # a UUID, nothing else
    again = run(tmp_path, "create-user", "root@example.com", stdin="another password\n", **BASE_ENV)
    assert again.returncode == 1 and "EMAIL_TAKEN" in again.stderr


async def test_created_admin_can_sign_in_over_http(
    tmp_path: Path, start_api: Any, database_url: str
) -> None:
    api: Api = await start_api()
    result = run(
        tmp_path,
        "create-user",
        "root@example.com",
        "--role",
        "admin",
        stdin="admin password\n",
        **BASE_ENV,
        DATABASE_URL=database_url,
    )
    assert result.returncode == 0, result.stderr
    body = await api.gql(LOGIN, {"email": "root@example.com", "password": "admin password"})
    assert body["data"]["login"]["user"]["roles"] == ["admin"]


def test_create_user_refuses_unknown_roles_and_bad_input(tmp_path: Path) -> None:
    assert (
        run(
            tmp_path, "create-user", "a@b.io", "--role", "wizard", stdin="password123\n", **BASE_ENV
        ).returncode
        == 2
    )
    short = run(tmp_path, "create-user", "a@b.io", stdin="short\n", **BASE_ENV)
    assert short.returncode == 1 and "BAD_USER_INPUT" in short.stderr


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"APP_ENV": "production"}, "JWT_SECRET"),
        ({"APP_ENV": "production", "JWT_SECRET": "a" * 40}, "JWT_REFRESH_SECRET"),
        ({"JWT_SECRET": "too short", "JWT_REFRESH_SECRET": "b" * 40}, "JWT_SECRET"),
        ({"JWT_SECRET": "a" * 40, "JWT_REFRESH_SECRET": "a" * 40}, "JWT_REFRESH_SECRET"),
        ({"JWT_LEEWAY": "120"}, "JWT_LEEWAY"),
        ({"RATE_LIMIT_PER_IP": "lots"}, "RATE_LIMIT_PER_IP"),
    ],
)
def test_bad_configuration_refuses_to_start_naming_the_variable(
    tmp_path: Path, env: dict[str, str], named: str
) -> None:
    result = run(tmp_path, "migrate", **env)
    assert result.returncode != 0
    assert named in result.stderr
    assert "Traceback" not in result.stderr


def test_development_default_generates_secrets_once(tmp_path: Path) -> None:
    assert run(tmp_path, "migrate").returncode == 0
    secrets_file = tmp_path / "data" / "dev-secrets.json"
    first = secrets_file.read_text()
    assert run(tmp_path, "migrate").returncode == 0
    assert secrets_file.read_text() == first
    assert oct(secrets_file.stat().st_mode & 0o777) == "0o600"
    assert (tmp_path / "data" / "graphgate.sqlite3").exists()


def test_guards_lists_every_root_field(tmp_path: Path) -> None:
    result = run(tmp_path, "guards", **BASE_ENV)
    assert result.returncode == 0, result.stderr
    table = dict(line.split(None, 1) for line in result.stdout.splitlines())
    assert table["Query.me"] == "IsSignedIn"
    assert table["Mutation.login"] == "Public"
    assert table["Mutation.setUserRoles"] == "HasRole('admin'), FreshLogin"
    assert "NONE" not in result.stdout


def _manifest(tmp_path: Path, *texts: str) -> Path:
    import hashlib
    import json

    path = tmp_path / "persisted-documents.json"
    path.write_text(json.dumps({hashlib.sha256(t.encode()).hexdigest(): t for t in texts}))
    return path


def test_documents_check_passes_a_valid_manifest_and_names_an_invalid_document(
    tmp_path: Path,
) -> None:
    good = _manifest(tmp_path, "query Health { __typename }", "query Me { me { id } }")
    result = run(tmp_path, "documents", "check", str(good))
    assert result.returncode == 0, result.stderr
    assert "2 document(s), all valid" in result.stdout

    bad = _manifest(tmp_path, "query Health { __typename }", "query Oops { me { nope } }")
    result = run(tmp_path, "documents", "check", str(bad))
    assert result.returncode == 2
    assert "all valid" not in result.stdout
    assert "operation 'Oops'" in result.stderr and "nope" in result.stderr


def test_serve_refuses_to_start_with_an_invalid_manifest(tmp_path: Path) -> None:
    bad = _manifest(tmp_path, "query Oops { me { nope } }")
    result = run(tmp_path, "serve", "--port", "0", TRUSTED_DOCUMENTS=str(bad))
    assert result.returncode == 2
    assert "trusted documents: operation 'Oops' (sha256:" in result.stderr
    assert "nope" in result.stderr
