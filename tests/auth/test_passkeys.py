"""Passkeys over HTTP, on SQLite and PostgreSQL, with a software authenticator
(tests/helpers/webauthn.py) that signs what a browser's would, and can be made to lie."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import cbor2
import pytest
from webauthn.helpers import bytes_to_base64url

from api.auth import sessions as sessions_module
from api.clock import FrozenClock
from api.db.models import AuditEvent, Passkey, PasskeyChallenge, User
from api.settings import SettingsError, load_settings
from tests.helpers.api import Api, QueryCounter, StartApi, make_admin
from tests.helpers.graphql import LOGIN, code, field
from tests.helpers.mfa import RESET, STATUS, amr, enrol, mfa_token, totp_code
from tests.helpers.webauthn import (
    FINISH_REGISTRATION,
    MY_PASSKEYS,
    REMOVE,
    RENAME,
    START_REGISTRATION,
    START_SIGN_IN,
    SoftPasskey,
    add_passkey,
    finish_sign_in,
    sign_in_with,
    start_sign_in,
    with_passkey,
)

ADA = "ada@example.com"
BOB = "bob@example.com"


async def test_add_a_passkey_then_sign_in_with_it_alone(
    start_api: StartApi, clock: FrozenClock
) -> None:
    api = await start_api(clock=clock)
    token = (await api.register(ADA))["accessToken"]
    key = SoftPasskey()
    added = await add_passkey(api, token, key, name="Laptop")
    assert added["name"] == "Laptop" and added["lastUsedAt"] is None
    listed = (await api.gql(MY_PASSKEYS, token=token))["data"]["myPasskeys"]
    assert [p["id"] for p in listed] == [added["id"]]
    assert (await api.gql(STATUS, token=token))["data"]["me"]["mfa"]["passkeys"] == 1

    # No email typed: the browser offers a discoverable passkey of this site.
    ceremony = await start_sign_in(api)
    options = ceremony["options"]
    assert options["rpId"] == "localhost" and options["userVerification"] == "required"
    assert not options.get("allowCredentials")
    body = await finish_sign_in(api, ceremony["challengeId"], key.get(options), device="phone")
    pair = body["data"]["finishPasskeySignIn"]
    assert pair["user"]["email"] == ADA
    assert amr(pair["accessToken"]) == ["hwk", "mfa"]
    # Refresh keeps the session's amr.
    refreshed = (await api.refresh(pair["refreshToken"]))["data"]["refresh"]
    assert amr(refreshed["accessToken"]) == ["hwk", "mfa"]

    # Email first: the same options (no list of the account's passkeys to read), bound to
    # that account.
    ceremony = await start_sign_in(api, "  ADA@example.com ")
    assert not ceremony["options"].get("allowCredentials")
    body = await finish_sign_in(api, ceremony["challengeId"], key.get(ceremony["options"]))
    assert "errors" not in body, body
    listed = (await api.gql(MY_PASSKEYS, token=token))["data"]["myPasskeys"]
    assert listed[0]["lastUsedAt"] is not None
    assert await AuditEvent.filter(kind="passkey_added").count() == 1


async def test_a_synced_passkey_is_a_software_key(start_api: StartApi, clock: FrozenClock) -> None:
    api = await start_api(clock=clock)
    token = (await api.register(ADA))["accessToken"]
    key = SoftPasskey(synced=True)
    await add_passkey(api, token, key)
    body = await sign_in_with(api, key)
    assert amr(body["data"]["finishPasskeySignIn"]["accessToken"]) == ["swk", "mfa"]


async def test_a_passkey_is_the_second_factor_of_a_password_sign_in(
    start_api: StartApi, clock: FrozenClock
) -> None:
    api = await start_api(clock=clock)
    token, key = await with_passkey(api)
    step = await mfa_token(api, ADA)
    assert step["methods"] == ["passkey"]

    ceremony = await start_sign_in(api, mfa_token=step["mfaToken"])
    assert [c["id"] for c in ceremony["options"]["allowCredentials"]] == [key.id]
    assert ceremony["options"]["userVerification"] == "preferred"
    key.user_verified = False  # password and key are the two factors: no PIN needed
    body = await finish_sign_in(api, ceremony["challengeId"], key.get(ceremony["options"]))
    pair = body["data"]["finishPasskeySignIn"]
    assert amr(pair["accessToken"]) == ["pwd", "hwk", "mfa"]
    # The MFA token is spent: it cannot start another ceremony.
    again = await api.gql(START_SIGN_IN, {"t": step["mfaToken"]})
    assert code(again) == "INVALID_TOKEN"

    # With an authenticator app too, both are offered.
    await enrol(api, pair["accessToken"], clock)
    assert (await mfa_token(api, ADA))["methods"] == ["totp", "recovery_code", "passkey"]


async def test_without_user_verification_a_passkey_alone_does_not_sign_in(
    start_api: StartApi, clock: FrozenClock
) -> None:
    api = await start_api(clock=clock)
    token, key = await with_passkey(api)
    key.user_verified = False
    body = await sign_in_with(api, key)
    assert code(body) == "INVALID_CREDENTIALS"
    body = await sign_in_with(api, key, ADA)
    assert code(body) == "INVALID_CREDENTIALS"


async def test_a_challenge_is_answered_once(start_api: StartApi, clock: FrozenClock) -> None:
    api = await start_api(clock=clock)
    token, key = await with_passkey(api)
    ceremony = await start_sign_in(api)
    assertion = key.get(ceremony["options"])
    assert "errors" not in await finish_sign_in(api, ceremony["challengeId"], assertion)
    replayed = await finish_sign_in(api, ceremony["challengeId"], key.get(ceremony["options"]))
    assert code(replayed) == "INVALID_CREDENTIALS"
    # The same signed assertion under a new challenge: the signature covers the old one.
    fresh = await start_sign_in(api)
    assert code(await finish_sign_in(api, fresh["challengeId"], assertion)) == "INVALID_CREDENTIALS"
    # A wrong answer spends the challenge too.
    fresh = await start_sign_in(api)
    wrong = key.get(fresh["options"], origin="https://evil.example")
    assert code(await finish_sign_in(api, fresh["challengeId"], wrong)) == "INVALID_CREDENTIALS"
    assert (
        code(await finish_sign_in(api, fresh["challengeId"], key.get(fresh["options"])))
        == "INVALID_CREDENTIALS"
    )
    # Expired: five minutes.
    late = await start_sign_in(api)
    clock.advance(301)
    assert (
        code(await finish_sign_in(api, late["challengeId"], key.get(late["options"])))
        == "INVALID_CREDENTIALS"
    )


async def test_a_wrong_origin_or_relying_party_is_refused(
    start_api: StartApi, clock: FrozenClock
) -> None:
    api = await start_api(clock=clock)
    token = (await api.register(ADA))["accessToken"]
    for bent in ({"origin": "https://evil.example"}, {"rp_id": "evil.example"}):
        started = (await api.gql(START_REGISTRATION, token=token))["data"][
            "startPasskeyRegistration"
        ]
        credential = SoftPasskey().create(started["options"], **bent)
        body = await api.gql(
            FINISH_REGISTRATION, {"c": started["challengeId"], "cred": credential}, token=token
        )
        assert code(body) == "INVALID_CREDENTIALS", bent
    assert await Passkey.all().count() == 0

    key = SoftPasskey()
    await add_passkey(api, token, key)
    for bent in (
        {"origin": "https://evil.example"},
        {"rp_id": "evil.example"},
        {"origin": "http://localhost:9999"},
    ):
        ceremony = await start_sign_in(api)
        body = await finish_sign_in(
            api, ceremony["challengeId"], key.get(ceremony["options"], **bent)
        )
        assert code(body) == "INVALID_CREDENTIALS", bent


async def test_another_users_passkey_does_not_answer_for_this_one(
    start_api: StartApi, clock: FrozenClock
) -> None:
    api = await start_api(clock=clock)
    ada = (await api.register(ADA))["accessToken"]
    bob = (await api.register(BOB))["accessToken"]
    ada_key, bob_key = SoftPasskey(), SoftPasskey()
    await add_passkey(api, ada, ada_key)
    await add_passkey(api, bob, bob_key)

    # Email first for Ada, answered by Bob's passkey.
    body = await sign_in_with(api, bob_key, ADA)
    assert code(body) == "INVALID_CREDENTIALS"
    # Ada's password step, answered by Bob's passkey.
    step = await mfa_token(api, ADA)
    ceremony = await start_sign_in(api, mfa_token=step["mfaToken"])
    body = await finish_sign_in(api, ceremony["challengeId"], bob_key.get(ceremony["options"]))
    assert code(body) == "INVALID_CREDENTIALS"
    # Bob's passkey claiming to hold Ada's account (user handle): refused.
    bob_key.user_handle = ada_key.user_handle
    body = await sign_in_with(api, bob_key)
    assert code(body) == "INVALID_CREDENTIALS"
    # A credential id nobody registered.
    assert code(await sign_in_with(api, SoftPasskey())) == "INVALID_CREDENTIALS"
    # Bob's passkey cannot be registered to Ada as well.
    started = (await api.gql(START_REGISTRATION, token=ada))["data"]["startPasskeyRegistration"]
    body = await api.gql(
        FINISH_REGISTRATION,
        {"c": started["challengeId"], "cred": bob_key.create(started["options"])},
        token=ada,
    )
    assert code(body) == "BAD_USER_INPUT" and field(body) == "credential"


async def test_a_counter_going_backwards_is_refused(
    start_api: StartApi, clock: FrozenClock
) -> None:
    api = await start_api(clock=clock)
    token, key = await with_passkey(api)
    assert "errors" not in await sign_in_with(api, key)
    assert (await Passkey.get()).sign_count == key.sign_count == 2
    key.sign_count = 0  # a clone made before the last use: its next count is 1
    body = await sign_in_with(api, key)
    assert code(body) == "INVALID_CREDENTIALS"
    event = await AuditEvent.filter(kind="passkey_sign_in_failed").order_by("-at").first()
    assert event is not None and "counter" in (event.detail or "")
    assert (await Passkey.get()).sign_count == 2
    key.sign_count = 5  # the genuine authenticator moves on
    assert "errors" not in await sign_in_with(api, key)

    # An authenticator that keeps no counter (always 0) signs in every time.
    token_b = (await api.register(BOB))["accessToken"]
    still = SoftPasskey(counting=False)
    await add_passkey(api, token_b, still)
    for _ in range(2):
        assert "errors" not in await sign_in_with(api, still)


async def test_malformed_credentials_are_bad_user_input(
    start_api: StartApi, clock: FrozenClock
) -> None:
    api = await start_api(clock=clock)
    ceremony = await start_sign_in(api)
    deep: object = "x"
    for _ in range(50):
        deep = {"a": deep}
    for bad in (
        "x",
        [],
        {},
        {"rawId": "!!", "response": {}},
        {"id": "AAAA", "rawId": "AAAA", "response": {"clientDataJSON": "not base64!"}},
        {"rawId": "AAAA", "response": {"pad": "A" * 20_000}},
        deep,
    ):
        body = await finish_sign_in(api, ceremony["challengeId"], bad)  # type: ignore[arg-type]
        assert code(body) == "BAD_USER_INPUT", (bad, body)
        assert field(body) in ("credential", "cred"), body


async def test_an_unknown_email_looks_like_a_known_one(
    start_api: StartApi, clock: FrozenClock
) -> None:
    api = await start_api(clock=clock)
    await api.register(ADA)  # no passkey
    bob = (await api.register(BOB))["accessToken"]
    await add_passkey(api, bob, SoftPasskey())
    await add_passkey(api, bob, SoftPasskey())
    shapes = []
    for email in ("nobody@example.com", ADA, BOB):
        options = (await start_sign_in(api, email))["options"]
        assert not options.get("allowCredentials"), options  # nothing of the account shows
        shapes.append({k: v for k, v in options.items() if k != "challenge"})
    assert shapes[0] == shapes[1] == shapes[2]
    ceremony = await start_sign_in(api, "nobody@example.com")
    body = await finish_sign_in(
        api, ceremony["challengeId"], SoftPasskey().get(ceremony["options"])
    )
    assert code(body) == "INVALID_CREDENTIALS"


async def test_rename_and_remove(start_api: StartApi, clock: FrozenClock) -> None:
    api = await start_api(clock=clock)
    token = (await api.register(ADA))["accessToken"]
    bob = (await api.register(BOB))["accessToken"]
    key = SoftPasskey()
    added = await add_passkey(api, token, key)
    renamed = await api.gql(RENAME, {"id": added["id"], "n": " Work laptop "}, token=token)
    assert renamed["data"]["renamePasskey"]["name"] == "Work laptop"
    assert (
        code(await api.gql(RENAME, {"id": added["id"], "n": " "}, token=token)) == "BAD_USER_INPUT"
    )
    # Another user's passkey is not found, for rename and remove alike.
    assert code(await api.gql(RENAME, {"id": added["id"], "n": "mine"}, token=bob)) == "NOT_FOUND"
    assert code(await api.gql(REMOVE, {"id": added["id"]}, token=bob)) == "NOT_FOUND"
    assert code(await api.gql(REMOVE, {"id": "not-an-id"}, token=token)) == "NOT_FOUND"

    # Removing needs a fresh sign-in.
    clock.advance(601)
    pair = await api.refresh((await api.login(BOB))["refreshToken"])  # Bob: unaffected
    assert "errors" not in pair
    stale = await sign_in_with(api, key)  # a fresh token for Ada, by passkey
    fresh_token = stale["data"]["finishPasskeySignIn"]["accessToken"]
    assert code(await api.gql(REMOVE, {"id": added["id"]}, token=token)) == "FRESH_LOGIN_REQUIRED"
    removed = await api.gql(REMOVE, {"id": added["id"]}, token=fresh_token)
    assert removed["data"]["removePasskey"] is True
    assert code(await sign_in_with(api, key)) == "INVALID_CREDENTIALS"
    # No second factor left: the password alone signs in again.
    assert "errors" not in await api.gql(LOGIN, {"email": ADA, "password": "correct horse"})


async def test_registration_needs_a_fresh_sign_in_and_its_own_session(
    start_api: StartApi, clock: FrozenClock
) -> None:
    api = await start_api(clock=clock)
    first = (await api.register(ADA))["accessToken"]
    second = (await api.login(ADA))["accessToken"]
    started = (await api.gql(START_REGISTRATION, token=first))["data"]["startPasskeyRegistration"]
    options = started["options"]
    assert options["authenticatorSelection"]["residentKey"] == "required"
    assert options["attestation"] == "none"
    # Finished from another session of the same user: refused.
    body = await api.gql(
        FINISH_REGISTRATION,
        {"c": started["challengeId"], "cred": SoftPasskey().create(options)},
        token=second,
    )
    assert code(body) == "INVALID_CREDENTIALS"
    clock.advance(601)
    assert code(await api.gql(START_REGISTRATION, token=first)) == "FRESH_LOGIN_REQUIRED"


async def test_passkey_failures_count_like_wrong_passwords(
    start_api: StartApi, clock: FrozenClock
) -> None:
    api = await start_api(clock=clock, RATE_LIMIT_PER_EMAIL="3 per 15 minutes")
    token, key = await with_passkey(api)
    codes = []
    for _ in range(4):
        ceremony = await start_sign_in(api, ADA)
        body = await finish_sign_in(
            api,
            ceremony["challengeId"],
            key.get(ceremony["options"], origin="https://evil.example"),
        )
        codes.append(code(body))
    assert codes == ["INVALID_CREDENTIALS"] * 3 + ["RATE_LIMITED"]
    # The account's limit covers the password too.
    body = await api.gql(LOGIN, {"email": ADA, "password": "correct horse"})
    assert code(body) == "RATE_LIMITED"


async def test_a_passkey_satisfies_mfa_required_roles_and_a_reset_removes_it(
    start_api: StartApi, clock: FrozenClock
) -> None:
    api = await start_api(clock=clock, MFA_REQUIRED_ROLES="admin")
    admin = await make_admin(api)
    key = SoftPasskey()
    await add_passkey(api, admin["accessToken"], key)
    users = "{ users(first: 5) { edges { node { email } } } }"
    assert code(await api.gql(users, token=admin["accessToken"])) == "INSUFFICIENT_AUTHENTICATION"
    signed_in = (await sign_in_with(api, key))["data"]["finishPasskeySignIn"]
    assert "errors" not in await api.gql(users, token=signed_in["accessToken"])

    # Ada's passkey (and app) go with an admin's reset.
    ada = (await api.register(ADA))["accessToken"]
    ada_key = SoftPasskey()
    await add_passkey(api, ada, ada_key)
    await enrol(api, ada, clock)
    ada_id = str((await User.get(email=ADA)).id)
    reset = await api.gql(RESET, {"u": ada_id}, token=signed_in["accessToken"])
    assert reset["data"]["resetUserMfa"] is True
    assert await Passkey.filter(user_id=ada_id).count() == 0
    assert code(await sign_in_with(api, ada_key)) == "INVALID_CREDENTIALS"
    assert "errors" not in await api.gql(LOGIN, {"email": ADA, "password": "correct horse"})
    _ = totp_code  # imported for enrol's clock semantics


async def test_passkeys_are_off_in_production_without_a_relying_party(
    start_api: StartApi, clock: FrozenClock
) -> None:
    api = await start_api(
        clock=clock,
        APP_ENV="production",
        PUBLIC_URL="https://api.example.com",
        METRICS_TOKEN="m" * 32,
    )
    body = await api.gql(START_SIGN_IN, {})
    assert code(body) == "FORBIDDEN"
    assert await PasskeyChallenge.all().count() == 0


@pytest.mark.parametrize("purpose", ["sign_in", "second_factor"])
async def test_a_challenge_works_only_for_the_client_that_asked(
    start_api: StartApi, clock: FrozenClock, purpose: str
) -> None:
    api = await start_api(clock=clock)
    token, key = await with_passkey(api)
    mfa = (await mfa_token(api, ADA))["mfaToken"] if purpose == "second_factor" else None
    ceremony = await start_sign_in(api, mfa_token=mfa)
    status, body, _ = await api.post(
        "mutation($c: String!, $cred: JSON!) { finishPasskeySignIn(challengeId: $c, credential: $cred) { accessToken } }",
        {"c": ceremony["challengeId"], "cred": key.get(ceremony["options"])},
        **{"User-Agent": "another browser"},
    )
    assert status == 200 and code(body) == "INVALID_CREDENTIALS"


async def test_production_serves_its_own_relying_party_and_needs_it_once_used(
    start_api: StartApi, clock: FrozenClock
) -> None:
    party = {"WEBAUTHN_RP_ID": "example.com", "WEBAUTHN_ORIGINS": "https://app.example.com"}
    api = await start_api(clock=clock, APP_ENV="production", **party)
    token = (await api.register(ADA))["accessToken"]
    key = SoftPasskey(origin="https://app.example.com", rp_id="example.com")
    await add_passkey(api, token, key)
    ceremony = await start_sign_in(api)
    assert ceremony["options"]["rpId"] == "example.com"
    body = await finish_sign_in(api, ceremony["challengeId"], key.get(ceremony["options"]))
    assert "errors" not in body, body
    # The development origin is not one of production's.
    other = await start_sign_in(api)
    body = await finish_sign_in(
        api, other["challengeId"], key.get(other["options"], origin="http://localhost:8000")
    )
    assert code(body) == "INVALID_CREDENTIALS"
    # Passkeys registered: production no longer starts without the relying party
    # (last: a start that fails closes the database this test's other apps share).
    with pytest.raises(SettingsError, match="WEBAUTHN_RP_ID"):
        await start_api(clock=clock, APP_ENV="production")


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"WEBAUTHN_RP_ID": "127.0.0.1"}, "WEBAUTHN_RP_ID"),
        ({"WEBAUTHN_RP_ID": "https://example.com"}, "WEBAUTHN_RP_ID"),
        ({"WEBAUTHN_RP_ID": "example.com"}, "WEBAUTHN_ORIGINS"),
        ({"WEBAUTHN_ORIGINS": "https://example.com"}, "WEBAUTHN_RP_ID"),
        (
            {"WEBAUTHN_RP_ID": "example.com", "WEBAUTHN_ORIGINS": "https://example.org"},
            "WEBAUTHN_ORIGINS",
        ),
        (
            {"WEBAUTHN_RP_ID": "example.com", "WEBAUTHN_ORIGINS": "http://example.com"},
            "WEBAUTHN_ORIGINS",
        ),
        (
            {"WEBAUTHN_RP_ID": "example.com", "WEBAUTHN_ORIGINS": "https://notexample.com"},
            "WEBAUTHN_ORIGINS",
        ),
    ],
)
def test_a_relying_party_that_browsers_would_refuse_stops_the_start(
    tmp_path: Path, env: dict[str, str], named: str
) -> None:
    with pytest.raises(SettingsError, match=named):
        load_settings({"DATA_DIR": str(tmp_path), **env}, env_file=None)


def test_development_defaults_to_localhost_on_its_own_port(tmp_path: Path) -> None:
    settings = load_settings({"DATA_DIR": str(tmp_path), "PORT": "9123"}, env_file=None)
    assert settings.webauthn_rp_id == "localhost"
    assert settings.webauthn_allowed_origins == ("http://localhost:9123",)
    apk = "android:apk-key-hash:" + "A" * 43
    settings = load_settings(
        {
            "DATA_DIR": str(tmp_path),
            "WEBAUTHN_RP_ID": "Example.com",
            "WEBAUTHN_ORIGINS": f"https://example.com,https://app.example.com:8443,{apk}",
        },
        env_file=None,
    )
    assert settings.webauthn_rp_id == "example.com" and len(settings.webauthn_allowed_origins) == 3


async def test_an_odd_public_key_is_refused_at_registration_and_never_a_500(
    start_api: StartApi, clock: FrozenClock
) -> None:
    api = await start_api(clock=clock)
    token = (await api.register(ADA))["accessToken"]
    odd_keys: list[object] = [
        {1: 2, 3: -7, -1: 1, -2: b"\x01" * 32, -3: b"\x02" * 32},  # not on the curve
        {1: 2, 3: -7, -1: 1},  # no coordinates
        {1: 2, 3: -7, -1: 1, -2: "x", -3: 5},  # coordinates of the wrong types
        {},
        [1, 2, 3],
    ]
    for cose in odd_keys:
        key = SoftPasskey(cose_key=cbor2.dumps(cose))
        started = (await api.gql(START_REGISTRATION, token=token))["data"]
        ceremony = started["startPasskeyRegistration"]
        body = await api.gql(
            FINISH_REGISTRATION,
            {"c": ceremony["challengeId"], "cred": key.create(ceremony["options"]), "n": None},
            token=token,
        )
        assert code(body) == "INVALID_CREDENTIALS", (cose, body)
    assert await Passkey.all().count() == 0
    # One stored all the same (registered before this check) is a wrong passkey, not a 500.
    key = SoftPasskey()
    await add_passkey(api, token, key)
    await Passkey.all().update(public_key=bytes_to_base64url(cbor2.dumps(odd_keys[0])))
    assert code(await sign_in_with(api, key)) == "INVALID_CREDENTIALS"


async def test_a_json_literal_that_is_no_json_is_bad_user_input(
    start_api: StartApi, clock: FrozenClock
) -> None:
    api = await start_api(clock=clock)
    finish = 'mutation%s { finishPasskeySignIn(challengeId: "x", credential: %s) { accessToken } }'
    for variables, literal, values in (
        ("", '{rawId: "AAAA", response: {n: 1%s}}' % ("0" * 30), None),  # over 64 bits
        ("($v: String)", "{rawId: $v, response: {}}", {"v": "AAAA"}),  # a variable inside
    ):
        body = await api.gql(finish % (variables, literal), values)
        assert code(body) == "BAD_USER_INPUT", body


async def test_an_email_first_sign_in_takes_only_that_accounts_passkeys(
    start_api: StartApi, clock: FrozenClock
) -> None:
    # Anyone with a passkey of their own could otherwise test addresses: their passkey signed
    # them in after an unknown address, and was refused after a registered one.
    api = await start_api(clock=clock)
    await api.register(BOB)  # no passkey, like an unknown address
    token = (await api.register(ADA))["accessToken"]
    mine = SoftPasskey()
    await add_passkey(api, token, mine)
    for email in ("nobody@example.com", BOB):
        ceremony = await start_sign_in(api, email)
        body = await finish_sign_in(api, ceremony["challengeId"], mine.get(ceremony["options"]))
        assert code(body) == "INVALID_CREDENTIALS", (email, body)
    body = await sign_in_with(api, mine, ADA)
    assert "errors" not in body, body


async def test_a_wrong_passkey_after_an_unknown_email_counts_like_after_a_known_one(
    start_api: StartApi, clock: FrozenClock
) -> None:
    # A wrong passkey after an unknown address counts against the address as after a known
    # one (and as a wrong password for an unknown address does): RATE_LIMITED after as many,
    # or it tells them apart.
    api = await start_api(clock=clock, RATE_LIMIT_PER_EMAIL="3 per 15 minutes")
    token = (await api.register(ADA))["accessToken"]
    real = SoftPasskey()
    await add_passkey(api, token, real)
    for email in (ADA, "nobody@example.com"):
        codes = []
        for _ in range(4):
            ceremony = await start_sign_in(api, email)
            forged = SoftPasskey(credential_id=real.credential_id)  # Ada's id, not her key
            body = await finish_sign_in(
                api, ceremony["challengeId"], forged.get(ceremony["options"])
            )
            codes.append(code(body))
        assert codes == ["INVALID_CREDENTIALS"] * 3 + ["RATE_LIMITED"], (email, codes)
        body = await api.gql(LOGIN, {"email": email, "password": "wrong horse"})
        assert code(body) == "RATE_LIMITED", (email, body)


async def test_an_unknown_email_costs_the_same_statements_as_a_known_one(
    start_api: StartApi, clock: FrozenClock, sql: QueryCounter
) -> None:
    # A query more for a registered address is time an attacker can measure.
    api = await start_api(clock=clock)
    await api.register(ADA)  # no passkey
    shapes = []
    for email in (ADA, "nobody@example.com"):
        sql.statements.clear()
        await start_sign_in(api, email)
        shapes.append([re.split(" WHERE | VALUES ", text)[0] for text in sql.statements])
    assert shapes[0] == shapes[1], shapes


async def two_devices(api: Api) -> tuple[str, dict[str, Any], dict[str, Any], str]:
    """Ada with two passkeys, each signed in on its device: her password sign-in's access
    token, the lost device's pair, this device's pair, and the lost passkey's id."""
    password_token, lost = await with_passkey(api)
    kept = SoftPasskey()
    await add_passkey(api, password_token, kept)
    on_the_lost_device = (await sign_in_with(api, lost))["data"]["finishPasskeySignIn"]
    here = (await sign_in_with(api, kept))["data"]["finishPasskeySignIn"]
    lost_id = next(
        p["id"]
        for p in (await api.gql(MY_PASSKEYS, token=here["accessToken"]))["data"]["myPasskeys"]
        if p["name"] == "Passkey 1"
    )
    return password_token, on_the_lost_device, here, lost_id


async def test_removing_a_passkey_ends_the_sessions_it_signed_in(
    start_api: StartApi, clock: FrozenClock
) -> None:
    api = await start_api(clock=clock)
    password_token, on_the_lost_device, here, lost_id = await two_devices(api)
    removed = await api.gql(REMOVE, {"id": lost_id}, token=here["accessToken"])
    assert removed["data"]["removePasskey"] is True
    # The lost device's session ends, access and refresh; the others go on.
    assert code(await api.gql(MY_PASSKEYS, token=on_the_lost_device["accessToken"])) == (
        "TOKEN_REVOKED"
    )
    assert code(await api.refresh(on_the_lost_device["refreshToken"])) == "TOKEN_REVOKED"
    assert "errors" not in await api.gql(MY_PASSKEYS, token=here["accessToken"])
    assert "errors" not in await api.gql(MY_PASSKEYS, token=password_token)


async def test_a_refresh_racing_the_removal_is_revoked_not_reuse(
    start_api: StartApi, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The lost device refreshes while the owner removes its passkey: the removal commits
    # between the refresh's read and its compare-and-set. The session ended, so the answer is
    # TOKEN_REVOKED; REFRESH_TOKEN_REUSED (and its audit event) would say a token was stolen.
    api = await start_api(clock=clock)
    password_token, on_the_lost_device, here, lost_id = await two_devices(api)
    read = sessions_module.refresh_state

    async def removed_meanwhile(key: Any) -> Any:
        state = await read(key)
        monkeypatch.setattr(sessions_module, "refresh_state", read)
        removed = await api.gql(REMOVE, {"id": lost_id}, token=here["accessToken"])
        assert removed["data"]["removePasskey"] is True, removed
        return state

    monkeypatch.setattr(sessions_module, "refresh_state", removed_meanwhile)
    assert code(await api.refresh(on_the_lost_device["refreshToken"])) == "TOKEN_REVOKED"
    assert not await AuditEvent.filter(kind="refresh_reuse_detected").exists()
