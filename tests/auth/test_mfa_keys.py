"""MFA_ENCRYPTION_KEY: required in production once someone enrolled, rotated without a
migration; and the budgets of the second step's inputs."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest

from api.clock import FrozenClock
from api.db.models import User
from api.settings import SettingsError, load_settings
from tests.helpers.api import StartApi
from tests.helpers.env import BASE_ENV
from tests.helpers.graphql import code
from tests.helpers.mfa import START, VERIFY, enrol, mfa_token, sign_in, totp_code

ADA = "ada@example.com"


def new_key() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


async def test_production_needs_the_key_once_a_user_has_enrolled(
    start_api: StartApi, clock: FrozenClock
) -> None:
    without = await start_api(clock=clock, APP_ENV="production")  # nobody enrolled: starts
    token = (await without.register(ADA))["accessToken"]
    refused = await without.gql(START, token=token)
    assert code(refused) == "SERVICE_UNAVAILABLE"
    assert "MFA_ENCRYPTION_KEY" in refused["errors"][0]["message"]

    key = new_key()
    keyed = await start_api(clock=clock, APP_ENV="production", MFA_ENCRYPTION_KEY=key)
    secret = (await enrol(keyed, token, clock)).secret
    # With the key, the enrolled user signs in; without it, the server no longer starts
    # (last: a start that fails closes the database this test's other apps share).
    assert "errors" not in await sign_in(keyed, ADA, totp_code(secret, clock))
    with pytest.raises(SettingsError, match="MFA_ENCRYPTION_KEY is required"):
        await start_api(clock=clock, APP_ENV="production")


async def test_keys_rotate_and_secrets_move_to_the_new_key_on_use(
    start_api: StartApi, clock: FrozenClock
) -> None:
    old, new = new_key(), new_key()
    first = await start_api(clock=clock, MFA_ENCRYPTION_KEY=old)
    secret = (await enrol(first, (await first.register(ADA))["accessToken"], clock)).secret
    sealed_with_old = (await User.get(email=ADA)).totp_secret

    both = await start_api(clock=clock, MFA_ENCRYPTION_KEY=f"{new},{old}")
    assert "errors" not in await sign_in(both, ADA, totp_code(secret, clock))
    resealed = (await User.get(email=ADA)).totp_secret
    assert resealed != sealed_with_old  # re-encrypted with the new key when the code passed

    clock.advance(30)
    only_new = await start_api(clock=clock, MFA_ENCRYPTION_KEY=new)
    assert "errors" not in await sign_in(only_new, ADA, totp_code(secret, clock))
    clock.advance(30)
    # A key that opens nothing: the server says so instead of failing the code.
    lost = await start_api(clock=clock, MFA_ENCRYPTION_KEY=new_key())
    assert code(await sign_in(lost, ADA, totp_code(secret, clock))) == "SERVICE_UNAVAILABLE"


def test_a_malformed_key_or_an_unknown_role_stops_the_start(tmp_path: Path) -> None:
    env = {**BASE_ENV, "DATA_DIR": str(tmp_path)}
    with pytest.raises(SettingsError, match="MFA_ENCRYPTION_KEY"):
        load_settings({**env, "MFA_ENCRYPTION_KEY": "too-short"}, env_file=None)
    with pytest.raises(SettingsError, match="MFA_REQUIRED_ROLES"):
        load_settings({**env, "MFA_REQUIRED_ROLES": "wizard"}, env_file=None)
    # Development without a key: one is generated once, owner-only, and kept.
    first = load_settings(env, env_file=None).mfa_encryption_key
    assert first == load_settings(env, env_file=None).mfa_encryption_key
    assert (tmp_path / "dev-mfa-key").stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_oversized_codes_and_tokens_are_refused_before_any_work(
    start_api: StartApi, clock: FrozenClock
) -> None:
    api = await start_api(clock=clock)
    secret = (await enrol(api, (await api.register(ADA))["accessToken"], clock)).secret
    step = await mfa_token(api, ADA)
    long_code = await api.gql(VERIFY, {"t": step["mfaToken"], "c": "1" * 65})
    assert code(long_code) == "BAD_USER_INPUT"
    assert long_code["errors"][0]["extensions"]["field"] == "code"
    long_token = await api.gql(VERIFY, {"t": "x" * 129, "c": "123456"})
    assert code(long_token) == "INVALID_TOKEN"
    # Neither cost the real token a try: five wrong codes would have spent it.
    for _ in range(4):
        await api.gql(VERIFY, {"t": step["mfaToken"], "c": "1" * 65})
    right = await api.gql(VERIFY, {"t": step["mfaToken"], "c": totp_code(secret, clock)})
    assert "errors" not in right, right
