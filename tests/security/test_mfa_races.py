"""Second factors under concurrency, on SQLite and PostgreSQL (the real app, in process):
a sign-in racing an enrolment or a reset never ends with a token that skips the second
factor, and one MFA token is spent once.

Guarantees checked after every trial:
- enrolment: every token a password-only login got while TOTP was being turned on is
  refused once the enrolment returns (access and refresh), and the password alone no longer
  signs in;
- reset: no multi-factor session of the user outlives the reset, and no MFA token handed
  out before it can be spent after it.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field
from typing import Any

from api.clock import FrozenClock
from tests.helpers.api import Api, StartApi, make_admin
from tests.helpers.graphql import LOGIN, ME, code
from tests.helpers.mfa import CONFIRM, RESET, START, VERIFY, amr, enrol, sign_in, totp_code
from tests.helpers.race import Op, Outcomes, race

TRIALS = 5
SPREAD = 0.3  # seconds: several password hashes, so racing logins land before and after
PASSWORD = "correct horse"
_emails = itertools.count()


@dataclass
class Person:
    email: str
    id: str
    token: str
    secret: str = ""
    codes: list[str] = field(default_factory=list)
    # The MFA tokens of password steps answered before the reset, to try after it.
    pending: list[str] = field(default_factory=list)


def pairs_of(outcomes: Outcomes, name: str) -> list[dict[str, Any]]:
    found = []
    for body in outcomes.values(name):
        found += [v for v in (body.get("data") or {}).values() if v and "accessToken" in v]
    return found


async def still_working(api: Api, pairs: list[dict[str, Any]], what: str) -> list[str]:
    broken = []
    for pair in pairs:
        if "errors" not in await api.gql(ME, token=pair["accessToken"]):
            broken.append(f"{what}: an access token ({amr(pair['accessToken'])}) still works")
        if "errors" not in await api.refresh(pair["refreshToken"]):
            broken.append(f"{what}: a refresh token still works")
    return broken


async def test_a_password_login_racing_enrolment_keeps_no_token(
    start_api: StartApi, clock: FrozenClock
) -> None:
    api = await start_api(clock=clock)

    async def setup(trial: int) -> Person:
        email = f"ada{next(_emails)}@example.com"
        pair = await api.register(email, PASSWORD)
        started = await api.gql(START, token=pair["accessToken"])
        secret = started["data"]["startTotpEnrollment"]["secret"]
        return Person(email, pair["user"]["id"], pair["accessToken"], secret)

    async def thief(person: Person) -> dict[str, Any]:  # knows the password, not the phone
        return await api.gql(LOGIN, {"email": person.email, "password": PASSWORD})

    async def owner(person: Person) -> dict[str, Any]:
        return await api.gql(CONFIRM, {"c": totp_code(person.secret, clock)}, token=person.token)

    async def check(person: Person, outcomes: Outcomes) -> list[str]:
        answer = outcomes.one("owner")
        if "errors" in answer:
            return [f"confirmTotpEnrollment failed: {code(answer)}"]
        broken = await still_working(api, pairs_of(outcomes, "thief"), "racing login")
        after = await api.gql(LOGIN, {"email": person.email, "password": PASSWORD})
        if code(after) != "MFA_REQUIRED":
            broken.append(f"after enrolment the password alone answers {code(after)}")
        codes = {code(body) for body in outcomes.values("thief")}
        if not codes <= {None, "MFA_REQUIRED"}:
            broken.append(f"racing logins answered {codes}")
        return broken

    report = await race(
        setup,
        Op("thief", thief, copies=3, loop=True),
        Op("owner", owner),
        check=check,
        trials=TRIALS,
        spread=SPREAD,
    )
    report.assert_kept()


async def test_a_sign_in_racing_an_admin_reset_keeps_no_multi_factor_session(
    start_api: StartApi, clock: FrozenClock
) -> None:
    api = await start_api(clock=clock)
    admin = await make_admin(api)
    admin_secret = (await enrol(api, admin["accessToken"], clock)).secret
    signed = await sign_in(
        api, "root@example.com", totp_code(admin_secret, clock), "admin password"
    )
    admin_token = signed["data"]["verifyMfa"]["accessToken"]

    async def setup(trial: int) -> Person:
        email = f"bob{next(_emails)}@example.com"
        pair = await api.register(email, PASSWORD)
        enrolled = await enrol(api, pair["accessToken"], clock)
        return Person(
            email, pair["user"]["id"], pair["accessToken"], enrolled.secret, enrolled.recovery_codes
        )

    async def user(person: Person) -> dict[str, Any]:
        """Both steps, with the next recovery code (each works once)."""
        step = await api.gql(LOGIN, {"email": person.email, "password": PASSWORD})
        if code(step) != "MFA_REQUIRED":
            return step  # after the reset: the password alone (a pair) is the answer
        token = step["errors"][0]["extensions"]["mfaToken"]
        person.pending.append(token)
        if not person.codes:
            return {}
        return await api.gql(VERIFY, {"t": token, "c": person.codes.pop()})

    async def admin_resets(person: Person) -> dict[str, Any]:
        return await api.gql(RESET, {"u": person.id}, token=admin_token)

    async def check(person: Person, outcomes: Outcomes) -> list[str]:
        answer = outcomes.one("admin")
        if "errors" in answer:
            return [f"resetUserMfa failed: {code(answer)}"]
        pairs = pairs_of(outcomes, "user")
        multi = [p for p in pairs if "mfa" in amr(p["accessToken"])]
        broken = await still_working(api, multi, "multi-factor sign-in before the reset")
        for token in person.pending:
            late = await api.gql(VERIFY, {"t": token, "c": totp_code(person.secret, clock, 1)})
            if code(late) != "INVALID_TOKEN":
                broken.append(f"an MFA token from before the reset answered {code(late)}")
        return broken

    report = await race(
        setup,
        Op("user", user, copies=2, loop=True),
        Op("admin", admin_resets),
        check=check,
        trials=TRIALS,
        spread=SPREAD,
    )
    report.assert_kept()


async def test_one_mfa_token_is_spent_once_by_concurrent_codes(
    start_api: StartApi, clock: FrozenClock
) -> None:
    api = await start_api(clock=clock)
    pair = await api.register("cy@example.com", PASSWORD)
    enrolled = await enrol(api, pair["accessToken"], clock)
    for _ in range(3):
        step = await api.gql(LOGIN, {"email": "cy@example.com", "password": PASSWORD})
        token = step["errors"][0]["extensions"]["mfaToken"]
        answers = await asyncio.gather(
            api.gql(VERIFY, {"t": token, "c": totp_code(enrolled.secret, clock)}),
            api.gql(VERIFY, {"t": token, "c": enrolled.recovery_codes.pop()}),
            api.gql(VERIFY, {"t": token, "c": enrolled.recovery_codes.pop()}),
        )
        assert sum("errors" not in a for a in answers) == 1, answers
        assert {code(a) for a in answers} == {None, "INVALID_TOKEN"}
        clock.advance(30)
