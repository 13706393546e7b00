"""A token the server has just issued works at once, even with JWT_LEEWAY=0: the pair
changePassword returns, and a refresh right after a role change."""

from __future__ import annotations

from tests.helpers.api import StartApi, make_admin
from tests.helpers.graphql import CHANGE_PASSWORD, ME, code

SET_ROLES = "mutation($id: ID!, $r: [String!]!) { setUserRoles(userId: $id, roles: $r) { id } }"
ADMIN_FIELD = "{ users(first: 1) { totalCount } }"


async def test_the_pair_change_password_returns_works_at_once(start_api: StartApi) -> None:
    api = await start_api(JWT_LEEWAY="0")
    pair = await api.register()
    body = await api.gql(
        CHANGE_PASSWORD, {"c": "correct horse", "n": "a new password"}, pair["accessToken"]
    )
    assert "errors" not in body, body
    new = body["data"]["changePassword"]
    for _ in range(5):
        assert code(await api.gql(ME, token=new["accessToken"])) is None
    refreshed = await api.refresh(new["refreshToken"])
    assert "errors" not in refreshed, refreshed
    assert code(await api.gql(ME, token=refreshed["data"]["refresh"]["accessToken"])) is None


async def test_a_refresh_right_after_a_role_change_works_at_once(start_api: StartApi) -> None:
    api = await start_api(JWT_LEEWAY="0")
    admin = await make_admin(api)
    ada = await api.register()
    promote = {"id": ada["user"]["id"], "r": ["user", "admin"]}
    assert "errors" not in await api.gql(SET_ROLES, promote, token=admin["accessToken"])
    refreshed = await api.refresh(ada["refreshToken"])
    assert "errors" not in refreshed, refreshed
    for _ in range(5):
        body = await api.gql(ADMIN_FIELD, token=refreshed["data"]["refresh"]["accessToken"])
        assert code(body) is None, body
