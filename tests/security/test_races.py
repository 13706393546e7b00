"""Account changes that stick: a request racing a password, active-flag, role or deletion
change never leaves a token, session or password behind that the change should have ended.

Each test drives a real server (1 worker; 2 workers sharing Redis) on SQLite and PostgreSQL
with concurrent clients: logins (and refreshes) loop while the owner or an admin makes the
change, trial after trial; after the change returns, every token a racing request got must
be refused and the account must be in the state the change asked for.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
import pytest

from tests.helpers.graphql import CHANGE_PASSWORD, code
from tests.helpers.live import (
    DATABASES,
    ONE_WORKER,
    TWO_WORKERS_REDIS,
    Deployment,
    deployment,
    unique_email,
)
from tests.helpers.mailbox import REQUEST_RESET, RESET
from tests.helpers.race import Op, Outcomes, owner_state_kept, race
from tests.helpers.smtp import smtp_inbox

pytestmark = pytest.mark.live  # starts real server processes (see pyproject markers)

OLD = "old password one"
NEW = "new password two"
ROOT_PASSWORD = "root password"
TRIALS = 5  # main broke 6 of 6 in every scenario; each trial costs ~0.5-1 s
SPREAD = 0.06  # seconds: about two password hashes here, so starts land inside a hash
SET_ROLES = """mutation($id: ID!, $roles: [String!]!) {
  setUserRoles(userId: $id, roles: $roles) { id roles } }"""
SET_ACTIVE = "mutation($id: ID!, $a: Boolean!) { setUserActive(userId: $id, active: $a) { id } }"
USER = "query($id: ID!) { user(id: $id) { roles isActive } }"
ADMIN_FIELD = "{ users(first: 1) { totalCount } }"
DELETE = "mutation { deleteAccount }"

TOPOLOGIES = pytest.mark.parametrize(
    "topology", [pytest.param(t, id=t.id) for t in (ONE_WORKER, TWO_WORKERS_REDIS)]
)
ON_BOTH_DATABASES = pytest.mark.parametrize("database", DATABASES)
# Same mechanism as changePassword and deactivation (run on two workers): one worker suffices.
ONE_WORKER_ONLY = pytest.mark.parametrize("topology", [pytest.param(ONE_WORKER, id=ONE_WORKER.id)])


@dataclass
class Account:
    email: str
    id: str
    pair: dict[str, Any]
    refresh_pool: list[str] = field(default_factory=list)  # one refresh token per session
    extra_pairs: list[dict[str, Any]] = field(default_factory=list)


def pairs(outcomes: Outcomes, *names: str) -> list[dict[str, Any]]:
    """The token pairs the runs of `names` got."""
    found = []
    for name in names:
        for body in outcomes.values(name):
            found += [v for v in (body.get("data") or {}).values() if v and "accessToken" in v]
    return found


async def still_working(live: Deployment, racing: list[dict[str, Any]]) -> list[str]:
    """What broke: racing pairs whose access token or refresh token still works."""
    accepted = refreshed = 0
    for pair in racing:
        accepted += await live.live(pair["accessToken"])
        refreshed += "errors" not in await live.refresh(pair["refreshToken"])
    broken = []
    if accepted:
        broken.append(f"{accepted} of {len(racing)} racing access tokens still accepted")
    if refreshed:
        broken.append(f"{refreshed} of {len(racing)} racing refresh tokens still work")
    return broken


def failed(body: dict[str, Any], what: str) -> list[str]:
    return [f"{what} failed: {code(body)}"] if "errors" in body else []


async def start_root(live: Deployment) -> str:
    """An admin made by the operator, freshly signed in: its access token."""
    email = unique_email("root")
    live.create_user(email, ROOT_PASSWORD, "user", "admin")
    body = await live.login(email, ROOT_PASSWORD)
    assert "errors" not in body, body
    return body["data"]["login"]["accessToken"]  # type: ignore[no-any-return]


async def new_account(live: Deployment, admin_by: str | None = None) -> Account:
    email = unique_email()
    pair = await live.register(email, OLD)
    account = Account(email, pair["user"]["id"], pair)
    if admin_by is not None:
        body = await live.gql(
            SET_ROLES, {"id": account.id, "roles": ["user", "admin"]}, token=admin_by
        )
        assert "errors" not in body, body
    return account


async def logs_in(live: Deployment, email: str, password: str) -> str | None:
    """The contract code of a login (None: signed in)."""
    return code(await live.login(email, password))


@ON_BOTH_DATABASES
@TOPOLOGIES
async def test_a_login_with_the_old_password_does_not_outlive_change_password(
    tmp_path: Path, database: str, topology: Any
) -> None:
    async with deployment(tmp_path, database, topology) as live:

        async def setup(trial: int) -> Account:
            return await new_account(live)

        async def thief(account: Account) -> dict[str, Any]:
            return await live.login(account.email, OLD)

        async def owner(account: Account) -> dict[str, Any]:
            token = account.pair["accessToken"]
            return await live.gql(CHANGE_PASSWORD, {"c": OLD, "n": NEW}, token=token)

        async def check(account: Account, outcomes: Outcomes) -> list[str]:
            answer = outcomes.one("owner")
            if "errors" in answer:
                return failed(answer, "changePassword")
            broken = await still_working(live, pairs(outcomes, "thief"))
            found = {
                "old password": await logs_in(live, account.email, OLD),
                "new password": await logs_in(live, account.email, NEW),
                "the pair changePassword returned works": await live.live(
                    answer["data"]["changePassword"]["accessToken"]
                ),
            }
            wanted = {
                "old password": "INVALID_CREDENTIALS",
                "new password": None,
                "the pair changePassword returned works": True,
            }
            return broken + owner_state_kept(found, wanted)

        report = await race(
            setup,
            Op("thief", thief, copies=3, loop=True),
            Op("owner", owner),
            check=check,
            trials=TRIALS,
            spread=SPREAD,
        )
    report.assert_kept()


@ON_BOTH_DATABASES
@ONE_WORKER_ONLY
async def test_a_login_with_the_old_password_does_not_outlive_reset_password(
    tmp_path: Path, database: str, topology: Any
) -> None:
    with smtp_inbox() as inbox:
        async with deployment(tmp_path, database, topology, MAIL_URL=inbox.url) as live:

            async def setup(trial: int) -> tuple[Account, str]:
                account = await new_account(live)
                body = await live.gql(REQUEST_RESET, {"e": account.email})
                assert "errors" not in body, body
                return account, await inbox.token_for(account.email)

            async def thief(state: tuple[Account, str]) -> dict[str, Any]:
                return await live.login(state[0].email, OLD)

            async def owner(state: tuple[Account, str]) -> dict[str, Any]:
                return await live.gql(RESET, {"t": state[1], "p": NEW})

            async def check(state: tuple[Account, str], outcomes: Outcomes) -> list[str]:
                account, _ = state
                answer = outcomes.one("owner")
                if "errors" in answer:
                    return failed(answer, "resetPassword")
                racing = [account.pair, *pairs(outcomes, "thief")]
                broken = await still_working(live, racing)
                found = {
                    "old password": await logs_in(live, account.email, OLD),
                    "new password": await logs_in(live, account.email, NEW),
                }
                wanted = {"old password": "INVALID_CREDENTIALS", "new password": None}
                return broken + owner_state_kept(found, wanted)

            report = await race(
                setup,
                Op("thief", thief, copies=3, loop=True),
                Op("owner", owner),
                check=check,
                trials=TRIALS,
                spread=SPREAD,
            )
    report.assert_kept()


@ON_BOTH_DATABASES
@TOPOLOGIES
async def test_a_login_straddling_deactivation_leaves_no_way_back(
    tmp_path: Path, database: str, topology: Any
) -> None:
    async with deployment(tmp_path, database, topology) as live:
        root = await start_root(live)

        async def setup(trial: int) -> Account:
            return await new_account(live, admin_by=root)  # an admin: he could undo it

        async def thief(account: Account) -> dict[str, Any]:
            return await live.login(account.email, OLD)

        async def admin(account: Account) -> dict[str, Any]:
            return await live.gql(SET_ACTIVE, {"id": account.id, "a": False}, token=root)

        async def check(account: Account, outcomes: Outcomes) -> list[str]:
            answer = outcomes.one("admin")
            if "errors" in answer:
                return failed(answer, "setUserActive(false)")
            racing = pairs(outcomes, "thief")
            broken = await still_working(live, racing)
            for n, pair in enumerate(racing):
                again = {"id": account.id, "a": True}
                body = await live.gql(SET_ACTIVE, again, token=pair["accessToken"])
                if "errors" not in body:
                    broken.append(f"racing pair {n} re-activated its deactivated user")
            seen = await live.gql(USER, {"id": account.id}, token=root)
            found = {
                "isActive": seen["data"]["user"]["isActive"],
                "login": await logs_in(live, account.email, OLD),
            }
            return broken + owner_state_kept(
                found, {"isActive": False, "login": "ACCOUNT_DISABLED"}
            )

        report = await race(
            setup,
            Op("thief", thief, copies=3, loop=True),
            Op("admin", admin),
            check=check,
            trials=TRIALS,
            spread=SPREAD,
        )
    report.assert_kept()


@ON_BOTH_DATABASES
@TOPOLOGIES
async def test_no_token_minted_while_an_admin_is_demoted_keeps_the_admin_role(
    tmp_path: Path, database: str, topology: Any
) -> None:
    async with deployment(tmp_path, database, topology) as live:
        root = await start_root(live)

        async def setup(trial: int) -> Account:
            account = await new_account(live, admin_by=root)
            for _ in range(2):  # sessions that keep refreshing during the demotion
                body = await live.login(account.email, OLD)
                assert "errors" not in body, body
                account.extra_pairs.append(body["data"]["login"])
                account.refresh_pool.append(body["data"]["login"]["refreshToken"])
            return account

        async def signer(account: Account) -> dict[str, Any]:
            return await live.login(account.email, OLD)

        async def refresher(account: Account) -> dict[str, Any]:
            token = account.refresh_pool.pop()  # one copy per session: never a reuse
            body = await live.refresh(token)
            account.refresh_pool.append(
                token if "errors" in body else body["data"]["refresh"]["refreshToken"]
            )
            return body

        async def admin(account: Account) -> dict[str, Any]:
            wanted = {"id": account.id, "roles": ["user"]}
            return await live.gql(SET_ROLES, wanted, token=root)

        async def check(account: Account, outcomes: Outcomes) -> list[str]:
            answer = outcomes.one("admin")
            if "errors" in answer:
                return failed(answer, "setUserRoles")
            broken = []
            minted = [*account.extra_pairs, *pairs(outcomes, "signer", "refresher")]
            for n, pair in enumerate(minted):
                body = await live.gql(ADMIN_FIELD, token=pair["accessToken"])
                if code(body) not in ("FORBIDDEN", "TOKEN_REVOKED"):
                    roles = jwt.decode(pair["accessToken"], options={"verify_signature": False})
                    broken.append(
                        f"token {n} (roles {roles['roles']}) after the demotion: "
                        f"{code(body) or 'admin data'}"
                    )
            # Every session left refreshes to a token without the role.
            for token in account.refresh_pool:
                body = await live.refresh(token)
                if "errors" in body:
                    continue
                access = body["data"]["refresh"]["accessToken"]
                roles = jwt.decode(access, options={"verify_signature": False})["roles"]
                admin_field = code(await live.gql(ADMIN_FIELD, token=access))
                if "admin" in roles or admin_field != "FORBIDDEN":
                    broken.append(f"a refresh after the demotion: roles {roles}, {admin_field}")
            seen = await live.gql(USER, {"id": account.id}, token=root)
            return broken + owner_state_kept(
                {"roles": seen["data"]["user"]["roles"]}, {"roles": ["user"]}
            )

        report = await race(
            setup,
            Op("signer", signer, copies=2, loop=True),
            Op("refresher", refresher, copies=2, loop=True),
            Op("admin", admin),
            check=check,
            trials=TRIALS,
            spread=SPREAD,
        )
    report.assert_kept()


@ON_BOTH_DATABASES
@ONE_WORKER_ONLY
async def test_a_login_straddling_delete_account_leaves_no_live_token(
    tmp_path: Path, database: str, topology: Any
) -> None:
    async with deployment(tmp_path, database, topology) as live:

        async def setup(trial: int) -> Account:
            return await new_account(live)

        async def thief(account: Account) -> dict[str, Any]:
            return await live.login(account.email, OLD)

        async def owner(account: Account) -> dict[str, Any]:
            return await live.gql(DELETE, token=account.pair["accessToken"])

        async def check(account: Account, outcomes: Outcomes) -> list[str]:
            answer = outcomes.one("owner")
            if "errors" in answer:
                return failed(answer, "deleteAccount")
            broken = await still_working(live, [account.pair, *pairs(outcomes, "thief")])
            found = {"login": await logs_in(live, account.email, OLD)}
            return broken + owner_state_kept(found, {"login": "INVALID_CREDENTIALS"})

        report = await race(
            setup,
            Op("thief", thief, copies=3, loop=True),
            Op("owner", owner),
            check=check,
            trials=TRIALS,
            spread=SPREAD,
        )
    report.assert_kept()
