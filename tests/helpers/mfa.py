"""Two-factor sign-in from a client's side: operations, enrolment and codes from pyotp."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

import pyotp

from api.clock import FrozenClock
from tests.helpers.api import Api
from tests.helpers.graphql import LOGIN, PAIR

START = "mutation { startTotpEnrollment { secret otpauthUri qrSvg } }"
CONFIRM = "mutation($c: String!) { confirmTotpEnrollment(code: $c) }"
DISABLE = "mutation($c: String, $p: String) { disableTotp(code: $c, password: $p) }"
REGENERATE = "mutation { regenerateRecoveryCodes }"
VERIFY = f"""mutation($t: String!, $c: String!, $d: String) {{
  verifyMfa(mfaToken: $t, code: $c, device: $d) {{ {PAIR} }} }}"""
RESET = "mutation($u: ID!) { resetUserMfa(userId: $u) }"
STATUS = "{ me { mfa { totpEnabled recoveryCodesLeft passkeys } } }"


def amr(access_token: str) -> list[str]:
    """The `amr` claim, read like a client would (no signature check)."""
    payload = access_token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return claims["amr"]  # type: ignore[no-any-return]


def totp_code(secret: str, clock: FrozenClock, steps: int = 0) -> str:
    """The app's code at the clock's time, `steps` 30-second steps away."""
    return pyotp.TOTP(secret).at(clock.now + 30 * steps)


@dataclass
class Enrolled:
    secret: str
    recovery_codes: list[str]


async def enrol(api: Api, token: str, clock: FrozenClock) -> Enrolled:
    """Turn TOTP on for the token's user; the clock moves one step on, so the next code
    (at the clock's time) is a new one."""
    started = await api.gql(START, token=token)
    assert "errors" not in started, started
    secret = started["data"]["startTotpEnrollment"]["secret"]
    confirmed = await api.gql(CONFIRM, {"c": totp_code(secret, clock)}, token=token)
    assert "errors" not in confirmed, confirmed
    clock.advance(30)
    return Enrolled(secret, confirmed["data"]["confirmTotpEnrollment"])


async def mfa_token(api: Api, email: str, password: str = "correct horse") -> dict[str, Any]:
    """The MFA_REQUIRED error of a right password (asserts that is the answer)."""
    body = await api.gql(LOGIN, {"email": email, "password": password})
    error = body["errors"][0]
    assert error["extensions"]["code"] == "MFA_REQUIRED", body
    return error["extensions"]  # type: ignore[no-any-return]


async def sign_in(api: Api, email: str, code: str, password: str = "correct horse") -> Any:
    """Both steps; the whole answer of verifyMfa."""
    step = await mfa_token(api, email, password)
    return await api.gql(VERIFY, {"t": step["mfaToken"], "c": code})
