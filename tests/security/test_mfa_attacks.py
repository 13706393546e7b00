"""Attacks on two-factor sign-in found by review: inputs that broke a code check, and code
checks that escaped the per-email limit."""

from __future__ import annotations

import pytest

from api.clock import FrozenClock
from tests.helpers.api import StartApi
from tests.helpers.graphql import code
from tests.helpers.mfa import CONFIRM, DISABLE, START, STATUS, VERIFY, enrol, mfa_token, totp_code

ADA = "ada@example.com"

# Six characters for which str.isdigit() is true but that are not ASCII: hmac.compare_digest
# refuses to compare them with a code (TypeError), which once escaped as an internal error.
NOT_ASCII_DIGITS = [
    "\u00b9\u00b2\u00b3\u2074\u2075\u2076",  # superscript
    "\u0661\u0662\u0663\u0664\u0665\u0666",  # Arabic-Indic
    "\uff11\uff12\uff13\uff14\uff15\uff16",  # full width
]


@pytest.mark.parametrize("digits", NOT_ASCII_DIGITS)
async def test_digits_that_are_not_ascii_are_a_wrong_code(
    start_api: StartApi, clock: FrozenClock, digits: str
) -> None:
    api = await start_api(clock=clock, RATE_LIMIT_PER_EMAIL="3 per 15 minutes")
    token = (await api.register(ADA))["accessToken"]
    secret = (await enrol(api, token, clock)).secret

    step = await mfa_token(api, ADA)
    assert code(await api.gql(VERIFY, {"t": step["mfaToken"], "c": digits})) == (
        "INVALID_CREDENTIALS"
    )
    # The same input as a fresh sign-in's code.
    assert code(await api.gql(DISABLE, {"c": digits}, token=token)) == "INVALID_CREDENTIALS"
    # Both counted as wrong codes (limit 3): one more, and even the right code waits.
    assert code(await api.gql(VERIFY, {"t": step["mfaToken"], "c": "000000"})) == (
        "INVALID_CREDENTIALS"
    )
    right = await api.gql(VERIFY, {"t": step["mfaToken"], "c": totp_code(secret, clock)})
    assert code(right) == "RATE_LIMITED"


async def test_wrong_enrolment_codes_count_like_wrong_passwords(
    start_api: StartApi, clock: FrozenClock
) -> None:
    """A stolen session of a user with a pending enrolment could otherwise guess the first
    code at the per-IP rate from any number of addresses: a right guess turns on the owner's
    pending secret, hands the thief the recovery codes and makes the thief's session
    multi-factor."""
    api = await start_api(clock=clock, RATE_LIMIT_PER_EMAIL="3 per 15 minutes")
    token = (await api.register(ADA))["accessToken"]
    secret = (await api.gql(START, token=token))["data"]["startTotpEnrollment"]["secret"]
    for guess in ("000000", "111111", "222222"):
        assert code(await api.gql(CONFIRM, {"c": guess}, token=token)) == "INVALID_CREDENTIALS"
    limited = await api.gql(CONFIRM, {"c": totp_code(secret, clock)}, token=token)
    assert code(limited) == "RATE_LIMITED"
    assert limited["errors"][0]["extensions"]["retryAfter"] >= 1

    # Refused before the check: the right code did not turn anything on.
    status = await api.gql(STATUS, token=token)
    assert status["data"]["me"]["mfa"]["totpEnabled"] is False


async def test_a_right_enrolment_code_is_not_counted_as_a_failure(
    start_api: StartApi, clock: FrozenClock
) -> None:
    api = await start_api(clock=clock, RATE_LIMIT_PER_EMAIL="1 per 15 minutes")
    token = (await api.register(ADA))["accessToken"]
    await enrol(api, token, clock)
    # The one failure the limit allows is still there for a wrong code at sign-in.
    step = await mfa_token(api, ADA)
    assert code(await api.gql(VERIFY, {"t": step["mfaToken"], "c": "000000"})) == (
        "INVALID_CREDENTIALS"
    )
