"""Passkeys under concurrency, on SQLite and PostgreSQL (the real app, in process): one
challenge is answered once, one MFA token is spent once whether by a code or a passkey, a
credential is registered to one account only, and a passkey sign-in racing an admin's reset
keeps no session."""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field
from typing import Any

from api.clock import FrozenClock
from api.db.models import Passkey
from tests.helpers.api import StartApi, make_admin
from tests.helpers.graphql import LOGIN, code
from tests.helpers.mfa import RESET, VERIFY, amr, enrol, sign_in, totp_code
from tests.helpers.race import Op, Outcomes, race
from tests.helpers.webauthn import (
    FINISH_REGISTRATION,
    START_REGISTRATION,
    START_SIGN_IN,
    SoftPasskey,
    add_passkey,
    finish_sign_in,
    start_sign_in,
)
from tests.security.test_mfa_races import pairs_of, still_working

PASSWORD = "correct horse"
_emails = itertools.count()


async def test_one_challenge_signs_in_once(start_api: StartApi, clock: FrozenClock) -> None:
    api = await start_api(clock=clock)
    token = (await api.register("ada@example.com", PASSWORD))["accessToken"]
    key = SoftPasskey()
    await add_passkey(api, token, key)
    for _ in range(3):
        ceremony = await start_sign_in(api)
        assertions = [key.get(ceremony["options"]) for _ in range(4)]
        answers = await asyncio.gather(
            *(finish_sign_in(api, ceremony["challengeId"], a) for a in assertions)
        )
        assert sum("errors" not in a for a in answers) == 1, answers
        assert {code(a) for a in answers} == {None, "INVALID_CREDENTIALS"}


async def test_one_mfa_token_is_spent_once_by_a_passkey_and_codes(
    start_api: StartApi, clock: FrozenClock
) -> None:
    api = await start_api(clock=clock)
    pair = await api.register("cy@example.com", PASSWORD)
    key = SoftPasskey()
    await add_passkey(api, pair["accessToken"], key)
    enrolled = await enrol(api, pair["accessToken"], clock)
    for _ in range(3):
        step = await api.gql(LOGIN, {"email": "cy@example.com", "password": PASSWORD})
        token = step["errors"][0]["extensions"]["mfaToken"]
        ceremonies = [await start_sign_in(api, mfa_token=token) for _ in range(2)]
        answers = await asyncio.gather(
            *(finish_sign_in(api, c["challengeId"], key.get(c["options"])) for c in ceremonies),
            api.gql(VERIFY, {"t": token, "c": enrolled.recovery_codes.pop()}),
        )
        assert sum("errors" not in a for a in answers) == 1, answers
        assert {code(a) for a in answers} <= {None, "INVALID_TOKEN"}, answers
        clock.advance(30)


async def test_a_credential_is_registered_once(start_api: StartApi, clock: FrozenClock) -> None:
    api = await start_api(clock=clock)
    tokens = [(await api.register(f"u{n}@example.com", PASSWORD))["accessToken"] for n in range(3)]
    for _ in range(3):
        key = SoftPasskey()
        # The same credential, offered by three accounts at once (one in two sessions of a
        # ceremony each): one registration wins, the others are told it exists.
        started = [
            (await api.gql(START_REGISTRATION, token=t))["data"]["startPasskeyRegistration"]
            for t in [*tokens, tokens[0]]
        ]
        answers = await asyncio.gather(
            *(
                api.gql(
                    FINISH_REGISTRATION,
                    {"c": s["challengeId"], "cred": key.create(s["options"])},
                    token=t,
                )
                for s, t in zip(started, [*tokens, tokens[0]], strict=True)
            )
        )
        assert sum("errors" not in a for a in answers) == 1, answers
        assert {code(a) for a in answers} == {None, "BAD_USER_INPUT"}, answers
        assert await Passkey.filter(credential_id=key.id).count() == 1


@dataclass
class Person:
    email: str
    id: str
    key: SoftPasskey
    pending: list[str] = field(default_factory=list)


async def test_a_passkey_sign_in_racing_an_admin_reset_keeps_no_session(
    start_api: StartApi, clock: FrozenClock
) -> None:
    api = await start_api(clock=clock)
    admin = await make_admin(api)
    secret = (await enrol(api, admin["accessToken"], clock)).secret
    signed = await sign_in(api, "root@example.com", totp_code(secret, clock), "admin password")
    admin_token = signed["data"]["verifyMfa"]["accessToken"]

    async def setup(trial: int) -> Person:
        email = f"dee{next(_emails)}@example.com"
        pair = await api.register(email, PASSWORD)
        key = SoftPasskey()
        await add_passkey(api, pair["accessToken"], key)
        return Person(email, pair["user"]["id"], key)

    async def passwordless(person: Person) -> dict[str, Any]:
        ceremony = await start_sign_in(api)
        return await finish_sign_in(
            api, ceremony["challengeId"], person.key.get(ceremony["options"])
        )

    async def second_factor(person: Person) -> dict[str, Any]:
        step = await api.gql(LOGIN, {"email": person.email, "password": PASSWORD})
        if code(step) != "MFA_REQUIRED":
            return step  # after the reset: the password alone is the answer
        token = step["errors"][0]["extensions"]["mfaToken"]
        person.pending.append(token)
        started = await api.gql(START_SIGN_IN, {"e": None, "t": token})
        if "errors" in started:
            return started  # the reset spent the token between the password and the start
        ceremony = started["data"]["startPasskeySignIn"]
        return await finish_sign_in(
            api, ceremony["challengeId"], person.key.get(ceremony["options"])
        )

    async def admin_resets(person: Person) -> dict[str, Any]:
        return await api.gql(RESET, {"u": person.id}, token=admin_token)

    async def check(person: Person, outcomes: Outcomes) -> list[str]:
        answer = outcomes.one("admin")
        if "errors" in answer:
            return [f"resetUserMfa failed: {code(answer)}"]
        pairs = pairs_of(outcomes, "passwordless") + pairs_of(outcomes, "second_factor")
        multi = [p for p in pairs if "mfa" in amr(p["accessToken"])]
        broken = await still_working(api, multi, "passkey sign-in before the reset")
        if "errors" not in await passwordless(person):
            broken.append("the passkey signs in after the reset")
        for token in person.pending:
            late = await api.gql(
                "mutation($t: String) { startPasskeySignIn(mfaToken: $t) { challengeId } }",
                {"t": token},
            )
            if code(late) != "INVALID_TOKEN":
                broken.append(f"an MFA token from before the reset answered {code(late)}")
        return broken

    report = await race(
        setup,
        Op("passwordless", passwordless, loop=True),
        Op("second_factor", second_factor, loop=True),
        Op("admin", admin_resets),
        check=check,
        trials=4,
        spread=0.3,
    )
    report.assert_kept()
