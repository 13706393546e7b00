"""Shared tools of the attack tests: raw JWT forging, key folders, apps with asymmetric keys."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

import jwt
import pytest

from api.auth.keys import generate_key
from tests.helpers.api import Api, StartApi
from tests.helpers.env import BASE_ENV
from tests.helpers.graphql import ME, code

ACCESS_SECRET = BASE_ENV["JWT_SECRET"]
REFRESH_SECRET = BASE_ENV["JWT_REFRESH_SECRET"]
ASYMMETRIC = ("EdDSA", "ES256", "RS256")


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64json(value: Any) -> str:
    return b64(json.dumps(value, separators=(",", ":")).encode())


def raw_jwt(header: dict[str, Any], payload: Any, signature: bytes = b"") -> str:
    """A JWT put together by hand, so any header (even `alg: nOnE`) can be sent."""
    return f"{b64json(header)}.{b64json(payload)}.{b64(signature)}"


def hmac_jwt(header: dict[str, Any], payload: Any, key: bytes | str) -> str:
    """HS256 over whatever header is given (PyJWT would refuse some keys an attacker uses)."""
    secret = key.encode() if isinstance(key, str) else key
    signing_input = f"{b64json(header)}.{b64json(payload)}"
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


def claims_of(token: str) -> dict[str, Any]:
    return jwt.decode(token, options={"verify_signature": False})  # type: ignore[no-any-return]


async def me_code(api: Api, token: str) -> str | None:
    """Ask for `me` with a token: the contract code, after checking the refusal's shape."""
    status, body, headers = await api.post(ME, token=token)
    assert status == 200, body
    if code(body) is not None:
        assert body["data"] is None, body
        assert headers["WWW-Authenticate"].startswith('Bearer error="invalid_token"'), headers
    return code(body)


@pytest.fixture(scope="session")
def key_folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One folder with one private key per asymmetric algorithm (RSA keys are slow to make)."""
    folders = {}
    for alg in ASYMMETRIC:
        folder = tmp_path_factory.mktemp(f"keys-{alg}")
        generate_key(alg, folder)
        folders[alg] = folder
    return folders


def private_key(folder: Path) -> Any:
    """The signing (newest) private key in a keys folder."""
    from cryptography.hazmat.primitives import serialization

    newest = sorted(folder.glob("*.pem"))[-1]
    return serialization.load_pem_private_key(newest.read_bytes(), password=None)


async def start_asymmetric(start_api: StartApi, alg: str, folder: Path, **env: Any) -> Api:
    return await start_api(JWT_ALGORITHM=alg, JWT_KEYS_DIR=str(folder), **env)
