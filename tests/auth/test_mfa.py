"""Two-factor sign-in over HTTP, on SQLite and PostgreSQL, with codes computed by pyotp."""

from __future__ import annotations

import asyncio
import logging

import pyotp
import pytest

from api.clock import FrozenClock
from api.db.models import RecoveryCode, User
from tests.helpers.api import StartApi, make_admin
from tests.helpers.graphql import ME, code
from tests.helpers.mfa import (
    CONFIRM,
    DISABLE,
    REGENERATE,
    START,
    STATUS,
    VERIFY,
    amr,
    enrol,
    mfa_token,
    sign_in,
    totp_code,
)

ADA = "ada@example.com"


async def test_enrol_then_sign_in_with_a_code(start_api: StartApi, clock: FrozenClock) -> None:
    api = await start_api(clock=clock)
    pair = await api.register(ADA)
    token = pair["accessToken"]
    assert amr(token) == ["pwd"]

    started = (await api.gql(START, token=token))["data"]["startTotpEnrollment"]
    assert started["otpauthUri"].startswith("otpauth://totp/graphgate:ada%40example.com?")
    assert "issuer=graphgate" in started["otpauthUri"]
    assert started["qrSvg"].lstrip().startswith("<svg")
    # What a phone reads from the QR code gives the same codes as the secret.
    assert pyotp.parse_uri(started["otpauthUri"]).at(clock.now) == totp_code(
        started["secret"], clock
    )
    # Not on until confirmed: the password alone still signs in.
    assert "errors" not in await api.gql(STATUS, token=token)
    assert amr((await api.login(ADA))["accessToken"]) == ["pwd"]

    wrong = await api.gql(CONFIRM, {"c": "000000"}, token=token)
    assert code(wrong) == "INVALID_CREDENTIALS"
    codes = (await api.gql(CONFIRM, {"c": totp_code(started["secret"], clock)}, token=token))[
        "data"
    ]["confirmTotpEnrollment"]
    assert len(codes) == 10 and len(set(codes)) == 10
    row = await User.get(email=ADA)  # at rest: encrypted, and the codes only as hashes
    assert row.totp_secret is not None and started["secret"] not in row.totp_secret
    hashes = await RecoveryCode.filter(user_id=row.id).values_list("code_hash", flat=True)
    assert not set(codes) & set(hashes)
    status = await api.gql(STATUS, token=token)
    assert status["data"]["me"]["mfa"] == {
        "totpEnabled": True,
        "recoveryCodesLeft": 10,
        "passkeys": 0,
    }
    # This session continues; its refreshed tokens are multi-factor (it proved a code).
    refreshed = (await api.refresh(pair["refreshToken"]))["data"]["refresh"]
    assert amr(refreshed["accessToken"]) == ["pwd", "otp", "mfa"]

    clock.advance(30)
    step = await mfa_token(api, ADA)
    assert step["methods"] == ["totp", "recovery_code"]
    assert step["expiresIn"] == 300
    body = await api.gql(
        VERIFY, {"t": step["mfaToken"], "c": totp_code(started["secret"], clock), "d": "phone"}
    )
    signed_in = body["data"]["verifyMfa"]
    assert amr(signed_in["accessToken"]) == ["pwd", "otp", "mfa"]
    assert signed_in["user"]["email"] == ADA
    # Refresh keeps the session's amr.
    again = (await api.refresh(signed_in["refreshToken"]))["data"]["refresh"]
    assert amr(again["accessToken"]) == ["pwd", "otp", "mfa"]
    assert "errors" not in await api.gql(ME, token=again["accessToken"])


async def test_a_code_is_accepted_once_and_one_step_of_skew(
    start_api: StartApi, clock: FrozenClock
) -> None:
    api = await start_api(clock=clock)
    token = (await api.register(ADA))["accessToken"]
    secret = (await enrol(api, token, clock)).secret

    now_code = totp_code(secret, clock)
    assert "errors" not in await sign_in(api, ADA, now_code)
    replay = await sign_in(api, ADA, now_code)  # the same code again, within its window
    assert code(replay) == "INVALID_CREDENTIALS"

    clock.advance(30)
    # A phone a step ahead works, and then no code of that step or before it does.
    ahead = totp_code(secret, clock, steps=1)
    assert "errors" not in await sign_in(api, ADA, ahead)
    assert code(await sign_in(api, ADA, totp_code(secret, clock))) == "INVALID_CREDENTIALS"
    clock.advance(90)
    behind = totp_code(secret, clock, steps=-1)
    assert "errors" not in await sign_in(api, ADA, behind)
    assert code(await sign_in(api, ADA, totp_code(secret, clock, steps=-2))) == (
        "INVALID_CREDENTIALS"
    )  # two steps off: refused


async def test_a_recovery_code_works_once_even_twice_at_the_same_time(
    start_api: StartApi, clock: FrozenClock
) -> None:
    api = await start_api(clock=clock)
    token = (await api.register(ADA))["accessToken"]
    codes = (await enrol(api, token, clock)).recovery_codes

    first, second = await mfa_token(api, ADA), await mfa_token(api, ADA)
    answers = await asyncio.gather(
        api.gql(VERIFY, {"t": first["mfaToken"], "c": codes[0]}),
        api.gql(VERIFY, {"t": second["mfaToken"], "c": codes[0].upper()}),
    )
    assert sorted(code(a) or "ok" for a in answers) == ["INVALID_CREDENTIALS", "ok"]
    assert code(await sign_in(api, ADA, codes[0])) == "INVALID_CREDENTIALS"
    status = await api.gql(STATUS, token=token)
    assert status["data"]["me"]["mfa"]["recoveryCodesLeft"] == 9

    fresh = (await api.gql(REGENERATE, token=token))["data"]["regenerateRecoveryCodes"]
    assert code(await sign_in(api, ADA, codes[1])) == "INVALID_CREDENTIALS"  # old ones: gone
    assert "errors" not in await sign_in(api, ADA, fresh[0])


async def test_an_mfa_token_is_single_use_bound_and_short_lived(
    start_api: StartApi, clock: FrozenClock
) -> None:
    api = await start_api(clock=clock)
    token = (await api.register(ADA))["accessToken"]
    enrolled = await enrol(api, token, clock)

    step = await mfa_token(api, ADA)
    ok = await api.gql(VERIFY, {"t": step["mfaToken"], "c": totp_code(enrolled.secret, clock)})
    assert "errors" not in ok
    clock.advance(30)
    reused = await api.gql(VERIFY, {"t": step["mfaToken"], "c": totp_code(enrolled.secret, clock)})
    assert code(reused) == "INVALID_TOKEN"

    late = await mfa_token(api, ADA)
    clock.advance(301)  # past MFA_TOKEN_TTL
    expired = await api.gql(VERIFY, {"t": late["mfaToken"], "c": totp_code(enrolled.secret, clock)})
    assert code(expired) == "INVALID_TOKEN"

    # Bound to the client that proved the password: another browser cannot finish it.
    other = await mfa_token(api, ADA)
    status, body, _ = await api.post(
        VERIFY,
        {"t": other["mfaToken"], "c": totp_code(enrolled.secret, clock)},
        **{"User-Agent": "someone else"},
    )
    assert code(body) == "INVALID_TOKEN"
    assert code(await api.gql(VERIFY, {"t": "made-up", "c": "123456"})) == "INVALID_TOKEN"


async def test_wrong_codes_spend_the_token_and_count_like_wrong_passwords(
    start_api: StartApi, clock: FrozenClock
) -> None:
    api = await start_api(clock=clock, RATE_LIMIT_PER_EMAIL="8 per 15 minutes")
    token = (await api.register(ADA))["accessToken"]
    secret = (await enrol(api, token, clock)).secret

    step = await mfa_token(api, ADA)
    for _ in range(4):
        wrong = await api.gql(VERIFY, {"t": step["mfaToken"], "c": "000000"})
        assert code(wrong) == "INVALID_CREDENTIALS"
    fifth = await api.gql(VERIFY, {"t": step["mfaToken"], "c": "000000"})
    assert code(fifth) == "INVALID_CREDENTIALS" and "spent" in fifth["errors"][0]["message"]
    right = await api.gql(VERIFY, {"t": step["mfaToken"], "c": totp_code(secret, clock)})
    assert code(right) == "INVALID_TOKEN"  # five wrong codes spent it

    # Five failures already count against the email: three more wrong guesses (codes or
    # passwords, it is one budget) reach the limit of 8, then even the right code waits.
    step = await mfa_token(api, ADA)
    for _ in range(3):
        await api.gql(VERIFY, {"t": step["mfaToken"], "c": "000000"})
    limited = await api.gql(VERIFY, {"t": step["mfaToken"], "c": totp_code(secret, clock)})
    assert code(limited) == "RATE_LIMITED"
    assert limited["errors"][0]["extensions"]["retryAfter"] >= 1


async def test_disable_needs_a_code_the_password_or_a_fresh_sign_in(
    start_api: StartApi, clock: FrozenClock
) -> None:
    api = await start_api(clock=clock, FRESH_AUTH_MAX_AGE="300")
    pair = await api.register(ADA)
    secret = (await enrol(api, pair["accessToken"], clock)).secret
    token = (await sign_in(api, ADA, totp_code(secret, clock)))["data"]["verifyMfa"]["accessToken"]
    clock.advance(301)  # no longer fresh
    assert code(await api.gql(DISABLE, token=token)) == "FRESH_LOGIN_REQUIRED"
    assert code(await api.gql(REGENERATE, token=token)) == "FRESH_LOGIN_REQUIRED"
    assert code(await api.gql(DISABLE, {"c": "000000"}, token=token)) == "INVALID_CREDENTIALS"
    disabled = await api.gql(DISABLE, {"c": totp_code(secret, clock)}, token=token)
    assert disabled["data"] == {"disableTotp": True}
    assert amr((await api.login(ADA))["accessToken"]) == ["pwd"]  # the password alone again


async def test_a_code_makes_a_sign_in_fresh_for_sensitive_changes(
    start_api: StartApi, clock: FrozenClock
) -> None:
    api = await start_api(clock=clock, FRESH_AUTH_MAX_AGE="300")
    token = (await api.register(ADA))["accessToken"]
    secret = (await enrol(api, token, clock)).secret
    clock.advance(301)
    delete = "mutation($c: String) { deleteAccount(code: $c) }"
    assert code(await api.gql(delete, token=token)) == "FRESH_LOGIN_REQUIRED"
    assert code(await api.gql(delete, {"c": "123456"}, token=token)) == "INVALID_CREDENTIALS"
    assert (await api.gql(delete, {"c": totp_code(secret, clock)}, token=token))["data"] == {
        "deleteAccount": True
    }


async def test_roles_that_must_use_a_second_factor(start_api: StartApi, clock: FrozenClock) -> None:
    api = await start_api(clock=clock, MFA_REQUIRED_ROLES="admin")
    admin = await make_admin(api)
    users = "{ users { edges { node { id } } } }"
    refused = await api.gql(users, token=admin["accessToken"])
    assert code(refused) == "INSUFFICIENT_AUTHENTICATION"
    assert refused["errors"][0]["extensions"]["enrolled"] is False
    assert "startTotpEnrollment" in refused["errors"][0]["message"]
    # Ordinary users are not asked; `me` and enrolment stay reachable for the admin.
    ada = (await api.register(ADA))["accessToken"]
    assert "errors" not in await api.gql("{ mySessions { id } }", token=ada)
    assert "errors" not in await api.gql(ME, token=admin["accessToken"])

    enrolled = await enrol(api, admin["accessToken"], clock)
    still = await api.gql(users, token=admin["accessToken"])  # this token predates it
    assert still["errors"][0]["extensions"] == {
        "code": "INSUFFICIENT_AUTHENTICATION",
        "enrolled": True,
    }
    refreshed = (await api.refresh(admin["refreshToken"]))["data"]["refresh"]
    assert "errors" not in await api.gql(users, token=refreshed["accessToken"])
    again = await sign_in(
        api, "root@example.com", totp_code(enrolled.secret, clock), "admin password"
    )
    assert "errors" not in await api.gql(users, token=again["data"]["verifyMfa"]["accessToken"])


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_mfa_status_is_private(start_api: StartApi) -> None:
    api = await start_api()
    ada = await api.register(ADA)
    bob = await api.register("bob@example.com")
    peek = "query($id: ID!) { user(id: $id) { mfa { totpEnabled } } }"
    other = await api.gql(peek, {"id": ada["user"]["id"]}, token=bob["accessToken"])
    assert code(other) == "NOT_FOUND"
    admin = await make_admin(api)
    seen = await api.gql(peek, {"id": ada["user"]["id"]}, token=admin["accessToken"])
    assert seen["data"]["user"]["mfa"] == {"totpEnabled": False}


async def test_an_admin_resets_a_lost_second_factor(
    start_api: StartApi, clock: FrozenClock
) -> None:
    api = await start_api(clock=clock)
    ada = await api.register(ADA)
    secret = (await enrol(api, ada["accessToken"], clock)).secret
    ada_mfa = (await sign_in(api, ADA, totp_code(secret, clock)))["data"]["verifyMfa"]
    pending = await mfa_token(api, ADA)  # a sign-in half-way when the reset lands

    admin = await make_admin(api)
    reset = "mutation($u: ID!) { resetUserMfa(userId: $u) }"
    password_only = await api.gql(reset, {"u": ada["user"]["id"]}, token=admin["accessToken"])
    assert code(password_only) == "INSUFFICIENT_AUTHENTICATION"
    assert password_only["errors"][0]["extensions"]["enrolled"] is False
    admin_secret = (await enrol(api, admin["accessToken"], clock)).secret
    admin_mfa = await sign_in(
        api, "root@example.com", totp_code(admin_secret, clock), "admin password"
    )
    admin_token = admin_mfa["data"]["verifyMfa"]["accessToken"]
    nobody = await api.gql(reset, {"u": "6d9a1c1e-0000-4000-8000-000000000000"}, token=admin_token)
    assert code(nobody) == "NOT_FOUND"
    by_ada = await api.gql(reset, {"u": ada["user"]["id"]}, token=ada_mfa["accessToken"])
    assert code(by_ada) == "FORBIDDEN"

    assert (await api.gql(reset, {"u": ada["user"]["id"]}, token=admin_token))["data"] == {
        "resetUserMfa": True
    }
    # Every session of Ada ended; the half-way sign-in cannot finish; the password alone
    # signs in again, and she can enrol anew.
    assert code(await api.gql(ME, token=ada_mfa["accessToken"])) == "TOKEN_REVOKED"
    assert code(await api.refresh(ada_mfa["refreshToken"])) == "TOKEN_REVOKED"
    clock.advance(30)
    late = await api.gql(VERIFY, {"t": pending["mfaToken"], "c": totp_code(secret, clock)})
    assert code(late) == "INVALID_TOKEN"
    assert amr((await api.login(ADA))["accessToken"]) == ["pwd"]
    events = "{ auditEvents(first: 50) { edges { node { kind } } } }"
    kinds = [
        e["node"]["kind"]
        for e in (await api.gql(events, token=admin_token))["data"]["auditEvents"]["edges"]
    ]
    assert "mfa_reset" in kinds and "mfa_reset_by_admin" in kinds and "totp_enabled" in kinds


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_no_secret_code_or_mfa_token_reaches_the_log(
    start_api: StartApi, clock: FrozenClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    api = await start_api(clock=clock)
    token = (await api.register(ADA))["accessToken"]
    enrolled = await enrol(api, token, clock)
    step = await mfa_token(api, ADA)
    await api.gql(VERIFY, {"t": step["mfaToken"], "c": "000000"})
    await api.gql(VERIFY, {"t": step["mfaToken"], "c": enrolled.recovery_codes[0]})
    logged = caplog.text
    assert caplog.records  # the access log ran
    for value in (enrolled.secret, step["mfaToken"], *enrolled.recovery_codes, "000000"):
        assert value not in logged
