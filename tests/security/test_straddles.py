"""A request authorised before an account change, whose transaction runs after it, does
nothing: the service re-checks the caller under the user row's lock (`lock_caller`).

Over HTTP the race needs luck (tests/security/test_races.py drives it); here the straddle is
made exact by calling the service with the claims the bearer check had verified, after the
owner's change committed. Each test failed before the re-check existed.
"""

from __future__ import annotations

from typing import Any

import pytest

from api.clock import FrozenClock
from api.db.models import ActionToken, User
from api.errors import TokenRevokedError
from api.identity import AccessClaims, ClientInfo
from api.web.appkeys import SERVICES_KEY
from tests.helpers.api import Api, StartApi, make_admin
from tests.helpers.graphql import CHANGE_PASSWORD, ME, SET_ACTIVE, SET_ROLES, code

OLD, NEW = "correct horse", "a brand new password"
ADMIN_FIELD = "{ users(first: 1) { totalCount } }"
CLIENT = ClientInfo(ip="203.0.113.7")


def claims_of(api: Api, token: str) -> AccessClaims:
    """What the bearer check verified when the thief's request arrived."""
    return api.app[SERVICES_KEY].tokens.verify_access(token)


async def thief_and_owner(api: Api) -> tuple[dict[str, Any], dict[str, Any]]:
    owner = await api.register(password=OLD)
    thief = await api.login(password=OLD)  # the leaked password, another session
    return owner, thief


async def test_an_email_change_authorised_before_a_password_change_is_refused(api: Api) -> None:
    owner, thief = await thief_and_owner(api)
    stolen = claims_of(api, thief["accessToken"])
    user = await User.get(id=owner["user"]["id"])  # as the thief's request read it
    body = await api.gql(CHANGE_PASSWORD, {"c": OLD, "n": NEW}, token=owner["accessToken"])
    assert "errors" not in body, body
    services = api.app[SERVICES_KEY]
    with pytest.raises(TokenRevokedError):
        await services.lifecycle.request_email_change(user, "eve@example.net", OLD, stolen, CLIENT)
    assert not await ActionToken.filter(user_id=user.id, purpose="change_email").exists()


async def test_a_deletion_authorised_before_a_password_change_deletes_nothing(api: Api) -> None:
    owner, thief = await thief_and_owner(api)
    stolen = claims_of(api, thief["accessToken"])
    user = await User.get(id=owner["user"]["id"])
    body = await api.gql(CHANGE_PASSWORD, {"c": OLD, "n": NEW}, token=owner["accessToken"])
    assert "errors" not in body, body
    with pytest.raises(TokenRevokedError):
        await api.app[SERVICES_KEY].deletion.delete(user, OLD, stolen, CLIENT)
    assert (await User.get(id=user.id)).is_active
    await api.login(password=NEW)  # the owner still signs in


async def test_a_password_change_of_a_demoted_admin_carries_the_new_roles(api: Api) -> None:
    root = await make_admin(api)
    ada = await api.register(password=OLD)
    promote = {"u": ada["user"]["id"], "r": ["user", "admin"]}
    assert code(await api.gql(SET_ROLES, promote, token=root["accessToken"])) is None
    ada = await api.login(password=OLD)  # an admin token
    demote = {"u": ada["user"]["id"], "r": ["user"]}
    assert code(await api.gql(SET_ROLES, demote, token=root["accessToken"])) is None
    services = api.app[SERVICES_KEY]
    claims = claims_of(api, ada["accessToken"])  # verified before the demotion committed
    with pytest.raises(TokenRevokedError):  # its access tokens were cut by the demotion
        await services.accounts.change_password(claims, OLD, NEW, CLIENT)


async def test_a_cut_off_in_the_same_second_refuses_tokens_issued_after_the_last(
    start_api: StartApi,
) -> None:
    clock = FrozenClock()  # promote, refresh, demote: all in one second
    api = await start_api(clock=clock)
    root = await make_admin(api)
    ada = await api.register(password=OLD)
    uid = ada["user"]["id"]
    promote, demote = {"u": uid, "r": ["user", "admin"]}, {"u": uid, "r": ["user"]}
    assert code(await api.gql(SET_ROLES, promote, token=root["accessToken"])) is None
    refreshed = (await api.refresh(ada["refreshToken"]))["data"]["refresh"]
    assert code(await api.gql(ADMIN_FIELD, token=refreshed["accessToken"])) is None
    assert code(await api.gql(SET_ROLES, demote, token=root["accessToken"])) is None
    assert code(await api.gql(ADMIN_FIELD, token=refreshed["accessToken"])) == "TOKEN_REVOKED"
    again = (await api.refresh(refreshed["refreshToken"]))["data"]["refresh"]
    assert code(await api.gql(ADMIN_FIELD, token=again["accessToken"])) == "FORBIDDEN"


async def test_a_deactivated_admin_acts_no_more_with_requests_already_authorised(
    api: Api,
) -> None:
    root = await make_admin(api)
    eve = await api.register(email="eve@example.com", password=OLD)
    uid = eve["user"]["id"]
    promote = {"u": uid, "r": ["user", "admin"]}
    assert code(await api.gql(SET_ROLES, promote, token=root["accessToken"])) is None
    eve = await api.login(email="eve@example.com", password=OLD)
    queued = claims_of(api, eve["accessToken"])  # her request, authorised, waits its turn
    off = {"u": uid, "a": False}
    assert code(await api.gql(SET_ACTIVE, off, token=root["accessToken"])) is None
    services = api.app[SERVICES_KEY]
    victim = await api.register(email="victim@example.com", password=OLD)
    with pytest.raises(TokenRevokedError):
        await services.admin.set_roles(
            queued, victim["user"]["id"], ["user", "admin"], ("user", "admin"), CLIENT
        )
    assert (await User.get(id=victim["user"]["id"])).roles == ["user"]


async def test_role_changes_in_a_row_do_not_pile_up_cut_offs(start_api: StartApi) -> None:
    clock = FrozenClock()  # ten role changes within one second, no token issued between
    api = await start_api(clock=clock)
    root = await make_admin(api)
    ada = await api.register(password=OLD)
    uid = ada["user"]["id"]
    for n in range(10):
        roles = ["user", "admin"] if n % 2 == 0 else ["user"]
        assert code(await api.gql(SET_ROLES, {"u": uid, "r": roles}, root["accessToken"])) is None
    assert code(await api.gql(ME, token=ada["accessToken"])) == "TOKEN_REVOKED"
    body = await api.refresh(ada["refreshToken"])  # waits a second at most, then works
    assert "errors" not in body, body
    assert code(await api.gql(ME, token=body["data"]["refresh"]["accessToken"])) is None


async def test_a_sign_out_everywhere_authorised_before_a_password_change_does_nothing(
    api: Api,
) -> None:
    owner, thief = await thief_and_owner(api)
    stolen = claims_of(api, thief["accessToken"])
    body = await api.gql(CHANGE_PASSWORD, {"c": OLD, "n": NEW}, token=owner["accessToken"])
    kept = body["data"]["changePassword"]
    services = api.app[SERVICES_KEY]
    with pytest.raises(TokenRevokedError):
        await services.accounts.sign_out_everywhere(stolen, CLIENT)
    with pytest.raises(TokenRevokedError):
        await services.sessions.revoke_own(stolen, claims_of(api, kept["accessToken"]).sid, CLIENT)
    assert code(await api.gql(ME, token=kept["accessToken"])) is None  # the owner stays in
