"""Attacks on two-factor sign-in found by review: inputs that broke a code check, and code
checks that escaped the per-email limit."""

from __future__ import annotations

import pytest

from api.clock import FrozenClock
from tests.helpers.api import StartApi
from tests.helpers.graphql import code
from tests.helpers.mfa import DISABLE, VERIFY, enrol, mfa_token, totp_code

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
