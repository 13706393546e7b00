"""Configuration that refuses to start: short or equal secrets, production without them,
a leeway over 60 s; and production's defaults."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from api.settings import SettingsError, load_settings
from tests.helpers.env import PRODUCTION_NEEDS
from tests.helpers.live import free_port

ROOT = Path(__file__).resolve().parents[2]
GOOD = "a" * 32
OTHER = "b" * 40


def settings(**env: str) -> Any:
    return load_settings(env, env_file=None)


BAD = [
    pytest.param({"JWT_SECRET": "a" * 31, "JWT_REFRESH_SECRET": OTHER}, "JWT_SECRET", id="short"),
    pytest.param(
        {"JWT_SECRET": GOOD, "JWT_REFRESH_SECRET": "b" * 31},
        "JWT_REFRESH_SECRET",
        id="short-refresh",
    ),
    # Bytes, not characters: 15 two-byte characters are 30 bytes.
    pytest.param({"JWT_SECRET": "é" * 15, "JWT_REFRESH_SECRET": OTHER}, "JWT_SECRET", id="bytes"),
    pytest.param(
        {"JWT_SECRET": OTHER, "JWT_REFRESH_SECRET": OTHER}, "JWT_REFRESH_SECRET", id="equal"
    ),
    pytest.param({"APP_ENV": "production"}, "JWT_SECRET", id="production-without-secrets"),
    pytest.param(
        {"APP_ENV": "production", "JWT_SECRET": GOOD},
        "JWT_REFRESH_SECRET",
        id="production-no-refresh",
    ),
    pytest.param(
        {"APP_ENV": "production", "JWT_SECRET": "", "JWT_REFRESH_SECRET": ""},
        "JWT_SECRET",
        id="production-blank",
    ),
    pytest.param(
        {"APP_ENV": "production", "JWT_ALGORITHM": "EdDSA", "JWT_KEYS_DIR": "/nonexistent"},
        "JWT_REFRESH_SECRET",
        id="production-asymmetric-no-refresh",
    ),
    pytest.param(
        {"JWT_LEEWAY": "61", "JWT_SECRET": GOOD, "JWT_REFRESH_SECRET": OTHER},
        "JWT_LEEWAY",
        id="leeway-61",
    ),
    pytest.param(
        {"JWT_LEEWAY": "-1", "JWT_SECRET": GOOD, "JWT_REFRESH_SECRET": OTHER},
        "JWT_LEEWAY",
        id="leeway-negative",
    ),
    pytest.param(
        {"REFRESH_REUSE_GRACE": "61", "JWT_SECRET": GOOD, "JWT_REFRESH_SECRET": OTHER},
        "REFRESH_REUSE_GRACE",
        id="reuse-grace-61",
    ),
    pytest.param(
        {"JWT_ALGORITHM": "none", "JWT_SECRET": GOOD, "JWT_REFRESH_SECRET": OTHER},
        "JWT_ALGORITHM",
        id="alg-none",
    ),
    pytest.param(
        {"JWT_ALGORITHM": "HS512", "JWT_SECRET": GOOD, "JWT_REFRESH_SECRET": OTHER},
        "JWT_ALGORITHM",
        id="alg-other",
    ),
]


@pytest.mark.parametrize(("env", "variable"), BAD)
@pytest.mark.parametrize("app_env", ["development", "production"])
def test_load_settings_refuses_naming_the_variable(
    env: dict[str, str], variable: str, app_env: str, tmp_path: Path
) -> None:
    full = {"APP_ENV": app_env, "DATA_DIR": str(tmp_path), **PRODUCTION_NEEDS, **env}
    with pytest.raises(SettingsError, match=variable):
        settings(**full)


@pytest.mark.parametrize(("env", "variable"), BAD)
def test_migrate_refuses_to_start_naming_the_variable(
    env: dict[str, str], variable: str, tmp_path: Path
) -> None:
    inherited = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("JWT_", "APP_ENV", "DATABASE_URL", "REDIS_URL", "DATA_DIR"))
    }
    database = tmp_path / "db.sqlite3"
    result = subprocess.run(
        [sys.executable, "-m", "api", "migrate"],
        env={**inherited, "PYTHONPATH": str(ROOT), "DATABASE_URL": f"sqlite://{database}", **env},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert variable in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert not database.exists()  # refused before touching anything


def test_the_limits_themselves_are_accepted(tmp_path: Path) -> None:
    s = settings(
        APP_ENV="production",
        **PRODUCTION_NEEDS,
        JWT_SECRET="é" * 16,  # 32 bytes
        JWT_REFRESH_SECRET=OTHER,
        JWT_LEEWAY="60",
        REFRESH_REUSE_GRACE="60",
        DATA_DIR=str(tmp_path),
    )
    assert (s.jwt_leeway, s.refresh_reuse_grace) == (60, 60)


def test_serve_refuses_a_reuse_grace_over_the_bound(tmp_path: Path) -> None:
    """A long grace would let a stolen, spent refresh token be replayed: refused at start."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(("JWT_", "REDIS_URL"))}
    env = {"JWT_SECRET": GOOD, "JWT_REFRESH_SECRET": OTHER, "REFRESH_REUSE_GRACE": "61"}
    database = tmp_path / "db.sqlite3"
    try:
        result = subprocess.run(
            [sys.executable, "-m", "api", "serve", "--port", str(free_port())],
            env={
                **inherited,
                "PYTHONPATH": str(ROOT),
                "DATA_DIR": str(tmp_path),
                "DATABASE_URL": f"sqlite://{database}",
                **env,
            },
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail("serve started with REFRESH_REUSE_GRACE=61")
    assert result.returncode != 0
    assert "REFRESH_REUSE_GRACE" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_production_turns_the_developer_conveniences_off(tmp_path: Path) -> None:
    prod = settings(
        APP_ENV="production", JWT_SECRET=GOOD, JWT_REFRESH_SECRET=OTHER, **PRODUCTION_NEEDS
    )
    assert (prod.graphiql, prod.introspection, prod.field_suggestions, prod.get_queries) == (
        False,
        False,
        False,
        False,
    )
    assert prod.warning is None or "secret" not in prod.warning
    dev = settings(APP_ENV="development", JWT_SECRET=GOOD, JWT_REFRESH_SECRET=OTHER)
    assert (dev.graphiql, dev.introspection, dev.field_suggestions, dev.get_queries) == (
        True,
        True,
        True,
        True,
    )
    # Asked for explicitly, production may turn one back on.
    asked = settings(
        APP_ENV="production",
        JWT_SECRET=GOOD,
        JWT_REFRESH_SECRET=OTHER,
        INTROSPECTION="on",
        **PRODUCTION_NEEDS,
    )
    assert asked.introspection is True
    assert asked.graphiql is False


def test_development_generates_strong_distinct_secrets(tmp_path: Path) -> None:
    s = settings(APP_ENV="development", DATA_DIR=str(tmp_path))
    assert len(s.jwt_secret.encode()) >= 32
    assert len(s.jwt_refresh_secret.encode()) >= 32
    assert s.jwt_secret != s.jwt_refresh_secret
    assert (tmp_path / "dev-secrets.json").stat().st_mode & 0o077 == 0
    assert s.warning is not None


@pytest.mark.parametrize("missing", ["PUBLIC_URL", "METRICS_TOKEN"])
def test_production_refuses_to_start_without_public_url_and_metrics_token(missing: str) -> None:
    env = {"APP_ENV": "production", "JWT_SECRET": GOOD, "JWT_REFRESH_SECRET": OTHER}
    env.update({name: value for name, value in PRODUCTION_NEEDS.items() if name != missing})
    with pytest.raises(SettingsError, match=f"APP_ENV=production needs {missing}"):
        settings(**env)
    with pytest.raises(SettingsError, match=missing):
        settings(**env, **{missing: "  "})
    assert settings(**env, **{missing: PRODUCTION_NEEDS[missing]}).is_production


def test_a_start_never_reads_the_generated_secrets_half_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Workers and replicas started at once on a fresh DATA_DIR: one reads the development
    # secrets and MFA key while another is still writing them. The first writer is slowed
    # down here; the second start must still read whole files, the same as the first.
    import threading
    import time

    import api.settings as module

    real_fdopen = os.fdopen
    first = threading.Event()

    class Slow:
        def __init__(self, handle: Any) -> None:
            self._handle = handle

        def __enter__(self) -> Any:
            return self

        def __exit__(self, *exc: object) -> None:
            self._handle.close()

        def write(self, text: str) -> int:
            time.sleep(0.3)
            return int(self._handle.write(text))

    def fdopen(fd: int, *args: Any, **kwargs: Any) -> Any:
        handle = real_fdopen(fd, *args, **kwargs)
        if first.is_set():
            return handle
        first.set()
        return Slow(handle)

    monkeypatch.setattr(module.os, "fdopen", fdopen)
    found: list[Any] = []

    def start() -> None:
        loaded = load_settings({"DATA_DIR": str(tmp_path)}, env_file=None)
        found.append((loaded.jwt_secret, loaded.jwt_refresh_secret, loaded.mfa_encryption_key))

    slow = threading.Thread(target=start)
    slow.start()
    first.wait(5)
    start()  # while the first is writing
    slow.join(10)
    assert len(found) == 2 and found[0] == found[1], found
    assert all(key for key in found[0][2])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dev-mfa-key", "dev-secrets.json"]
