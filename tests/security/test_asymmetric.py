"""Asymmetric signing end to end: login, JWKS, rotation, a resource server, the keys CLI."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from api.auth.keys import generate_key, public_jwk, thumbprint
from tests.helpers.api import StartApi
from tests.helpers.graphql import ME, code
from tests.helpers.live import free_port
from tests.security.conftest import ASYMMETRIC, b64json, claims_of, me_code, start_asymmetric

ROOT = Path(__file__).resolve().parents[2]
PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}


def kid_of(token: str) -> str:
    return jwt.get_unverified_header(token)["kid"]  # type: ignore[no-any-return]


def kid_of_file(path: Path) -> str:
    private = serialization.load_pem_private_key(path.read_bytes(), password=None)
    return thumbprint(public_jwk(private.public_key()))


@pytest.mark.parametrize("alg", ASYMMETRIC)
async def test_sign_in_and_use_the_api(
    start_api: StartApi, key_folders: dict[str, Path], alg: str
) -> None:
    api = await start_asymmetric(start_api, alg, key_folders[alg])
    await api.register()
    pair = await api.login()
    header = jwt.get_unverified_header(pair["accessToken"])
    assert header == {
        "alg": alg,
        "typ": "at+jwt",
        "kid": kid_of_file(next(key_folders[alg].glob("*.pem"))),
    }
    me = (await api.gql(ME, token=pair["accessToken"]))["data"]["me"]
    assert me["email"] == "ada@example.com"
    refreshed = (await api.refresh(pair["refreshToken"]))["data"]["refresh"]
    assert await me_code(api, refreshed["accessToken"]) is None


async def test_jwks_lists_every_key_with_its_kid_and_nothing_private(
    start_api: StartApi, tmp_path: Path
) -> None:
    files = [generate_key("EdDSA", tmp_path), generate_key("EdDSA", tmp_path)]
    api = await start_asymmetric(start_api, "EdDSA", tmp_path)
    resp = await api.client.get("/.well-known/jwks.json")
    assert resp.status == 200
    assert resp.content_type == "application/json"
    keys = (await resp.json())["keys"]
    assert [key["kid"] for key in keys] == [kid_of_file(path) for path in files]
    for key in keys:
        assert key["kty"] == "OKP"
        assert key["crv"] == "Ed25519"
        assert key["alg"] == "EdDSA"
        assert key["use"] == "sig"
        assert not PRIVATE_MEMBERS & set(key), key
        # kid is the RFC 7638 thumbprint of the very key listed.
        assert thumbprint(key) == key["kid"]


async def test_rotation_keeps_everyone_signed_in(start_api: StartApi, tmp_path: Path) -> None:
    """Generate a key, restart: old tokens still verify, new ones carry the new kid."""
    old_file = generate_key("EdDSA", tmp_path)
    before = await start_asymmetric(start_api, "EdDSA", tmp_path)
    pair = await before.register()
    assert kid_of(pair["accessToken"]) == kid_of_file(old_file)
    await before.client.close()  # the old replica stops

    new_file = generate_key("EdDSA", tmp_path)
    after = await start_asymmetric(start_api, "EdDSA", tmp_path)
    assert await me_code(after, pair["accessToken"]) is None  # signed by the older key
    fresh = await after.login()
    assert kid_of(fresh["accessToken"]) == kid_of_file(new_file)
    rotated = (await after.refresh(pair["refreshToken"]))["data"]["refresh"]
    assert kid_of(rotated["accessToken"]) == kid_of_file(new_file)
    await after.client.close()

    old_file.unlink()  # past one ACCESS_TOKEN_TTL the old key goes
    last = await start_asymmetric(start_api, "EdDSA", tmp_path)
    assert await me_code(last, pair["accessToken"]) == "INVALID_TOKEN"
    assert await me_code(last, fresh["accessToken"]) is None


@pytest.mark.parametrize("alg", ASYMMETRIC)
async def test_a_resource_server_with_only_the_jwks_verifies_our_tokens(
    start_api: StartApi, key_folders: dict[str, Path], tmp_path: Path, alg: str
) -> None:
    """PyJWT's PyJWKClient fetches /.well-known/jwks.json from the running app over HTTP."""
    api = await start_asymmetric(start_api, alg, key_folders[alg])
    pair = await api.register()
    url = f"http://127.0.0.1:{api.client.server.port}/.well-known/jwks.json"
    client = jwt.PyJWKClient(url, cache_keys=False, cache_jwk_set=False)

    def verify(token: str) -> dict[str, Any]:
        signing_key = client.get_signing_key_from_jwt(token)
        return jwt.decode(  # type: ignore[no-any-return]
            token,
            signing_key,
            algorithms=[alg],
            audience="graphgate-clients",
            issuer="graphgate",
            options={"require": ["exp", "iat", "sub"]},
        )

    claims = await asyncio.to_thread(verify, pair["accessToken"])
    assert claims["sub"] == pair["user"]["id"]
    assert claims["type"] == "access"
    # The resource server refuses what we refuse: a token altered after signing.
    h, _, s = pair["accessToken"].split(".")
    payload = b64json({**claims_of(pair["accessToken"]), "roles": ["admin"]})
    tampered = f"{h}.{payload}.{s}"
    with pytest.raises(jwt.InvalidSignatureError):
        await asyncio.to_thread(verify, tampered)


async def test_the_resource_server_follows_a_rotation(start_api: StartApi, tmp_path: Path) -> None:
    generate_key("ES256", tmp_path)
    generate_key("ES256", tmp_path)
    api = await start_asymmetric(start_api, "ES256", tmp_path)
    pair = await api.register()
    url = f"http://127.0.0.1:{api.client.server.port}/.well-known/jwks.json"
    client = jwt.PyJWKClient(url)
    keys = await asyncio.to_thread(client.get_signing_keys)
    assert len(keys) == 2
    signing_key = await asyncio.to_thread(client.get_signing_key_from_jwt, pair["accessToken"])
    assert signing_key.key_id == kid_of(pair["accessToken"]) == keys[-1].key_id


def _cli(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("JWT_", "APP_ENV"))}
    base.pop("DATABASE_URL", None)
    full = {**base, "PYTHONPATH": str(ROOT), **env}
    return subprocess.run(
        [sys.executable, "-m", "api", *args],
        env=full,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("alg", ASYMMETRIC)
def test_keys_generate_writes_a_timestamped_key(tmp_path: Path, alg: str) -> None:
    folder = tmp_path / "keys"
    result = _cli("keys", "generate", "--alg", alg, env={"JWT_KEYS_DIR": str(folder)}, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    written = Path(result.stdout.strip())
    assert written.parent == folder
    assert re.fullmatch(rf"\d{{8}}T\d{{12}}Z-{alg}\.pem", written.name), written.name
    assert written.stat().st_mode & 0o077 == 0  # private: owner only
    private = serialization.load_pem_private_key(written.read_bytes(), password=None)
    expected = {"EdDSA": ed25519.Ed25519PrivateKey, "ES256": ec.EllipticCurvePrivateKey}
    assert isinstance(private, expected.get(alg, rsa.RSAPrivateKey))
    if isinstance(private, rsa.RSAPrivateKey):
        assert private.key_size >= 2048
    # A second one sorts last, so it is the one that signs after a restart.
    again = _cli("keys", "generate", "--alg", alg, env={"JWT_KEYS_DIR": str(folder)}, cwd=tmp_path)
    assert sorted(folder.glob("*.pem"))[-1] == Path(again.stdout.strip())


async def test_generated_key_signs_after_restart(start_api: StartApi, tmp_path: Path) -> None:
    folder = tmp_path / "keys"
    result = _cli(
        "keys", "generate", "--alg", "ES256", env={"JWT_KEYS_DIR": str(folder)}, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    api = await start_asymmetric(start_api, "ES256", folder)
    pair = await api.register()
    assert kid_of(pair["accessToken"]) == kid_of_file(Path(result.stdout.strip()))
    assert claims_of(pair["accessToken"])["type"] == "access"
    assert code(await api.gql(ME, token=pair["accessToken"])) is None


def _write_pem(folder: Path, key: Any, password: bytes | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    encryption: Any = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    path = folder / "20240101T000000000000Z-key.pem"
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    )
    return path


BAD_KEYS = {
    # ES256 is P-256 only (RFC 7518 3.4): a P-384 key would fail at the first login.
    "p384-for-es256": ("ES256", lambda f: _write_pem(f, ec.generate_private_key(ec.SECP384R1()))),
    # RFC 7518 3.3: RSA keys of 2048 bits or more.
    "rsa-1024": ("RS256", lambda f: _write_pem(f, rsa.generate_private_key(65537, 1024))),
    "rsa-for-eddsa": ("EdDSA", lambda f: _write_pem(f, rsa.generate_private_key(65537, 2048))),
    "encrypted": (
        "EdDSA",
        lambda f: _write_pem(f, ed25519.Ed25519PrivateKey.generate(), password=b"pw"),
    ),
    "not-a-key": (
        "EdDSA",
        lambda f: (f.mkdir(parents=True), (f / "20240101-x.pem").write_text("garbage"))[1],
    ),
    "empty-folder": ("EdDSA", lambda f: f.mkdir(parents=True)),
}


@pytest.mark.parametrize("case", list(BAD_KEYS))
def test_a_bad_key_folder_refuses_to_start_naming_it(tmp_path: Path, case: str) -> None:
    """Keys are parsed once, at start: a bad one stops `serve` before it migrates or listens."""
    alg, make = BAD_KEYS[case]
    folder = tmp_path / "keys"
    make(folder)
    env = {
        "JWT_ALGORITHM": alg,
        "JWT_KEYS_DIR": str(folder),
        "JWT_REFRESH_SECRET": "r" * 40,
        "DATABASE_URL": f"sqlite://{tmp_path}/db.sqlite3",
    }
    result = _cli("serve", "--port", str(free_port()), env=env, cwd=tmp_path)
    assert result.returncode != 0
    assert "JWT_KEYS_DIR" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert not (tmp_path / "db.sqlite3").exists()  # refused before touching the database
