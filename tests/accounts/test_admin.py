"""Admin lookups (users, user, auditEvents) and the last-admin rule, over HTTP."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from api.db.models import User
from tests.helpers.api import Api, QueryCounter, make_admin
from tests.helpers.graphql import SET_ACTIVE, SET_ROLES, code, field

USERS = """query($first: Int, $after: String, $search: String) {
  users(first: $first, after: $after, search: $search) {
    totalCount edges { cursor node { id email displayName roles } }
    pageInfo { hasNextPage endCursor } } }"""
USER = "query($id: ID!) { user(id: $id) { id email displayName roles isActive } }"
AUDIT = """query($first: Int, $after: String, $userId: ID) {
  auditEvents(first: $first, after: $after, userId: $userId) {
    totalCount edges { node { id kind ip at detail user { id email } } }
    pageInfo { hasNextPage endCursor } } }"""


def emails(body: dict[str, Any]) -> list[str]:
    return [edge["node"]["email"] for edge in body["data"]["users"]["edges"]]


async def test_users_is_for_admins_only(api: Api) -> None:
    ada = await api.register()
    assert code(await api.gql(USERS)) == "UNAUTHENTICATED"
    assert code(await api.gql(USERS, token=ada["accessToken"])) == "FORBIDDEN"
    admin = await make_admin(api)
    body = await api.gql(USERS, token=admin["accessToken"])
    assert body["data"]["users"]["totalCount"] == 2
    assert emails(body) == ["root@example.com", "ada@example.com"]  # newest first


async def test_users_search_is_a_case_insensitive_substring(api: Api) -> None:
    admin = await make_admin(api)
    await api.register("ada.lovelace@example.com", "correct horse", displayName="Countess")
    await api.register("grace@navy.example", "correct horse", displayName="Grace HOPPER")
    await api.register("under_score@example.com", "correct horse")
    await api.register("underXscore@example.com", "correct horse")
    token = admin["accessToken"]

    async def search(term: str) -> list[str]:
        return sorted(emails(await api.gql(USERS, {"search": term}, token=token)))

    assert await search("LOVELACE") == ["ada.lovelace@example.com"]
    assert await search("hopper") == ["grace@navy.example"]  # display name
    assert await search("count") == ["ada.lovelace@example.com"]
    assert await search("under_") == ["under_score@example.com"]  # `_` is literal, not LIKE's
    assert await search("%") == []
    assert len(await search("  ")) == 5  # blank: no filter
    counted = await api.gql(USERS, {"search": "example.com"}, token=token)
    assert counted["data"]["users"]["totalCount"] == 4
    too_long = await api.gql(USERS, {"search": "x" * 255}, token=token)
    assert (code(too_long), field(too_long)) == ("BAD_USER_INPUT", "search")


async def test_users_pages_through_everyone(api: Api) -> None:
    admin = await make_admin(api)
    for n in range(5):
        await api.register(f"user{n}@example.com", "correct horse")
    seen: list[str] = []
    after = None
    while True:
        body = await api.gql(USERS, {"first": 2, "after": after}, token=admin["accessToken"])
        page = body["data"]["users"]
        seen += [edge["node"]["email"] for edge in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert len(seen) == len(set(seen)) == 6
    bad = await api.gql(USERS, {"first": 101}, token=admin["accessToken"])
    assert (code(bad), field(bad)) == ("BAD_USER_INPUT", "first")


async def test_user_by_id_is_self_or_admin(api: Api) -> None:
    ada = await api.register(displayName="Ada")
    eve = await api.register("eve@example.com", "eve password")
    admin = await make_admin(api)
    ada_id = ada["user"]["id"]

    own = await api.gql(USER, {"id": ada_id}, token=ada["accessToken"])
    assert own["data"]["user"]["email"] == "ada@example.com"
    by_admin = await api.gql(USER, {"id": ada_id}, token=admin["accessToken"])
    assert by_admin["data"]["user"] == {
        "id": ada_id,
        "email": "ada@example.com",
        "displayName": "Ada",
        "roles": ["user"],
        "isActive": True,
    }
    for other in (ada_id, "00000000-0000-0000-0000-000000000000", "nope"):
        body = await api.gql(USER, {"id": other}, token=eve["accessToken"])
        assert code(body) == "NOT_FOUND"
        assert body["data"] == {"user": None}
    assert code(await api.gql(USER, {"id": ada_id})) == "UNAUTHENTICATED"


async def test_audit_events_for_admins_with_user_filter(api: Api, sql: QueryCounter) -> None:
    admin = await make_admin(api)
    token = admin["accessToken"]
    users = [await api.register(f"user{n}@example.com", "correct horse") for n in range(6)]
    assert code(await api.gql(AUDIT, token=users[0]["accessToken"])) == "FORBIDDEN"
    assert code(await api.gql(AUDIT)) == "UNAUTHENTICATED"

    sql.statements.clear()
    everything = (await api.gql(AUDIT, token=token))["data"]["auditEvents"]
    # One page of events by several users: the events, their users in one batch, the count.
    assert len(sql.statements) <= 3, sql.statements
    kinds = [edge["node"]["kind"] for edge in everything["edges"]]
    assert kinds[:6] == ["register"] * 6  # newest first
    assert kinds[-1] == "login"  # the admin's, the oldest
    assert everything["totalCount"] == len(kinds) == 7
    assert everything["edges"][0]["node"]["user"]["email"] == "user5@example.com"
    assert everything["edges"][0]["node"]["ip"] == "127.0.0.1"

    mine = await api.gql(AUDIT, {"userId": users[2]["user"]["id"]}, token=token)
    events = mine["data"]["auditEvents"]["edges"]
    assert [e["node"]["kind"] for e in events] == ["register"]
    assert events[0]["node"]["user"]["id"] == users[2]["user"]["id"]
    first_page = (await api.gql(AUDIT, {"first": 4}, token=token))["data"]["auditEvents"]
    after = first_page["pageInfo"]["endCursor"]
    rest = await api.gql(AUDIT, {"first": 4, "after": after}, token=token)
    assert len(first_page["edges"]) + len(rest["data"]["auditEvents"]["edges"]) == 7
    bad = await api.gql(AUDIT, {"userId": "someone"}, token=token)
    assert (code(bad), field(bad)) == ("BAD_USER_INPUT", "userId")


async def test_audit_events_default_page_is_fifty(api: Api) -> None:
    admin = await make_admin(api)
    from api.web.appkeys import SERVICES_KEY

    audit = api.app[SERVICES_KEY].audit
    for _ in range(55):
        await audit.record("test_event", ip="10.0.0.1")
    page = (await api.gql(AUDIT, token=admin["accessToken"]))["data"]["auditEvents"]
    assert len(page["edges"]) == 50
    assert page["pageInfo"]["hasNextPage"] is True
    assert page["totalCount"] == 56
    assert page["edges"][0]["node"]["user"] is None


async def test_two_admins_one_can_demote_the_other_but_not_the_last(api: Api) -> None:
    first = await make_admin(api)
    second = await make_admin(api, "second@example.com")
    body = await api.gql(
        SET_ROLES, {"u": second["user"]["id"], "r": ["user"]}, token=first["accessToken"]
    )
    assert body["data"]["setUserRoles"]["roles"] == ["user"]
    last = await api.gql(
        SET_ROLES, {"u": first["user"]["id"], "r": ["user"]}, token=first["accessToken"]
    )
    assert (code(last), field(last)) == ("BAD_USER_INPUT", "roles")
    assert "admin" in (await User.get(id=first["user"]["id"])).roles


@pytest.mark.parametrize("attempt", range(3))
@pytest.mark.parametrize("how", ["demote", "deactivate"])
async def test_two_admins_removing_each_other_at_once_leave_one(
    api: Api, how: str, attempt: int
) -> None:
    one = await make_admin(api)
    two = await make_admin(api, "two@example.com")

    def remove(target: dict[str, Any], actor: dict[str, Any]) -> Any:
        uid = target["user"]["id"]
        if how == "demote":
            return api.gql(SET_ROLES, {"u": uid, "r": ["user"]}, token=actor["accessToken"])
        return api.gql(SET_ACTIVE, {"u": uid, "a": False}, token=actor["accessToken"])

    results = await asyncio.gather(remove(two, one), remove(one, two))
    # The one served second is no admin any more when its turn comes: refused as such
    # (its token cut or its session ended), or by the last-admin rule; never both done.
    winner, loser = sorted((str(code(r)) for r in results), key=lambda c: c != "None")
    assert winner == "None"
    assert loser in ("TOKEN_REVOKED", "FORBIDDEN", "BAD_USER_INPUT"), results
    admins = [u for u in await User.filter(is_active=True) if "admin" in u.roles]
    assert len(admins) == 1
