"""Notes over HTTP: who may do what, input limits, pagination, and the cost of a page."""

from __future__ import annotations

import base64
import uuid
from typing import Any

import pytest

from api.clock import FrozenClock
from tests.helpers.api import Api, QueryCounter, StartApi, make_admin
from tests.helpers.graphql import code, field
from tests.helpers.notes import CREATE, DELETE, NOTE, UPDATE, create_note

GET = f"query($id: ID!) {{ note(id: $id) {{ {NOTE} }} }}"
LIST = """query($first: Int, $after: String) { notes(first: $first, after: $after) {
  totalCount edges { cursor node { id title } } pageInfo { hasNextPage endCursor } } }"""


async def test_owner_creates_reads_updates_and_deletes(
    start_api: StartApi, clock: FrozenClock
) -> None:
    api = await start_api(clock=clock)
    ada = await api.register()
    body = await api.gql(CREATE, {"t": "  groceries ", "b": "eggs"}, token=ada["accessToken"])
    note = body["data"]["createNote"]
    assert note["title"] == "groceries"  # trimmed
    assert note["body"] == "eggs"
    assert note["owner"] == {"id": ada["user"]["id"], "email": "ada@example.com"}
    assert note["createdAt"] == note["updatedAt"]

    clock.advance(5)
    updated = await api.gql(UPDATE, {"id": note["id"], "b": "milk"}, token=ada["accessToken"])
    after = updated["data"]["updateNote"]
    assert (after["title"], after["body"]) == ("groceries", "milk")  # absent title stays
    assert after["updatedAt"] > after["createdAt"]
    read = await api.gql(GET, {"id": note["id"]}, token=ada["accessToken"])
    assert read["data"]["note"]["body"] == "milk"

    assert (await api.gql(DELETE, {"id": note["id"]}, token=ada["accessToken"]))["data"] == {
        "deleteNote": True
    }
    assert code(await api.gql(GET, {"id": note["id"]}, token=ada["accessToken"])) == "NOT_FOUND"


# What each kind of caller gets for each operation on a note owned by someone else
# (the owner's own column is the test above). None means success.
MATRIX = {
    "other user": {"read": "NOT_FOUND", "update": "NOT_FOUND", "delete": "NOT_FOUND"},
    "admin": {"read": None, "update": "FORBIDDEN", "delete": None},
    "anonymous": {
        "read": "UNAUTHENTICATED",
        "update": "UNAUTHENTICATED",
        "delete": "UNAUTHENTICATED",
    },
    "owner": {"read": None, "update": None, "delete": None},
}


@pytest.mark.parametrize("caller", list(MATRIX))
async def test_ownership_matrix(api: Api, caller: str) -> None:
    ada = await api.register()
    eve = await api.register("eve@example.com", "eve password")
    admin = await make_admin(api)
    token = {
        "owner": ada["accessToken"],
        "other user": eve["accessToken"],
        "admin": admin["accessToken"],
        "anonymous": None,
    }[caller]
    note_id = await create_note(api, ada["accessToken"], "diary", "secret")
    expected = MATRIX[caller]

    read = await api.gql(GET, {"id": note_id}, token=token)
    assert code(read) == expected["read"], read
    if expected["read"] is None:
        assert read["data"]["note"]["body"] == "secret"
        assert read["data"]["note"]["owner"]["email"] == "ada@example.com"
    else:
        assert read["data"] == {"note": None}

    update = await api.gql(UPDATE, {"id": note_id, "t": "mine now"}, token=token)
    assert code(update) == expected["update"], update
    still = await api.gql(GET, {"id": note_id}, token=ada["accessToken"])
    title = "mine now" if expected["update"] is None else "diary"
    assert still["data"]["note"]["title"] == title

    delete = await api.gql(DELETE, {"id": note_id}, token=token)
    assert code(delete) == expected["delete"], delete
    gone = code(await api.gql(GET, {"id": note_id}, token=ada["accessToken"])) == "NOT_FOUND"
    assert gone == (expected["delete"] is None)

    listed = await api.gql(LIST, token=token)
    if caller == "anonymous":
        assert code(listed) == "UNAUTHENTICATED"
        assert code(await api.gql(CREATE, {"t": "x", "b": "y"})) == "UNAUTHENTICATED"
    elif caller != "owner":
        # `notes` is always the caller's own notes, for admins too.
        assert listed["data"]["notes"]["totalCount"] == 0


async def test_another_users_note_looks_exactly_like_a_missing_one(api: Api) -> None:
    ada = await api.register()
    eve = await api.register("eve@example.com", "eve password")
    note_id = await create_note(api, ada["accessToken"])
    answers = [
        await api.gql(query, {"id": ident}, token=eve["accessToken"])
        for query in (GET, UPDATE, DELETE)
        for ident in (note_id, str(uuid.uuid4()), "not-a-uuid")
    ]
    assert {code(a) for a in answers} == {"NOT_FOUND"}
    assert len({a["errors"][0]["message"] for a in answers}) == 1


ZERO = b"00000000-0000-0000-0000-000000000000"


def cursor_of(raw: bytes) -> str:
    """A cursor as the server would encode `raw` (base64url, no padding)."""
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize(
    ("variables", "bad_field"),
    [
        ({"t": "", "b": "x"}, "title"),
        ({"t": "   ", "b": "x"}, "title"),
        ({"t": "x" * 201, "b": "x"}, "title"),
        ({"t": "x", "b": "x" * 100_001}, "body"),
    ],
    ids=["empty-title", "blank-title", "long-title", "long-body"],
)
async def test_create_refuses_bad_input(
    api: Api, variables: dict[str, str], bad_field: str
) -> None:
    ada = await api.register()
    body = await api.gql(CREATE, variables, token=ada["accessToken"])
    assert code(body) == "BAD_USER_INPUT"
    assert field(body) == bad_field
    assert (await api.gql(LIST, token=ada["accessToken"]))["data"]["notes"]["totalCount"] == 0


async def test_limits_are_inclusive_and_update_checks_them_too(api: Api) -> None:
    ada = await api.register()
    note_id = await create_note(api, ada["accessToken"], "x" * 200, "y" * 100_000)
    too_long = await api.gql(UPDATE, {"id": note_id, "t": "x" * 201}, token=ada["accessToken"])
    assert (code(too_long), field(too_long)) == ("BAD_USER_INPUT", "title")
    empty_body = await api.gql(UPDATE, {"id": note_id, "b": ""}, token=ada["accessToken"])
    assert empty_body["data"]["updateNote"]["body"] == ""


@pytest.mark.parametrize(
    ("variables", "bad_field"),
    [
        ({"first": -1}, "first"),
        ({"first": 101}, "first"),
        ({"after": "garbage!"}, "after"),
        ({"after": "WzEsMl0"}, "after"),  # valid base64 of [1,2]: not a position
        # Found by the fuzzer (tests/security/test_fuzz.py); both answered INTERNAL_SERVER_ERROR.
        ({"after": cursor_of(b"[" * 3000)}, "after"),  # RecursionError in the JSON decoder
        ({"after": cursor_of(b'["0001-01-01T00:00:00+14:00", "%s"]' % ZERO)}, "after"),
        ({"after": cursor_of(b'["9999-12-31T23:59:59-14:00", "%s"]' % ZERO)}, "after"),
    ],
    ids=[
        "negative",
        "over-100",
        "not-base64",
        "not-a-position",
        "nested-json",
        "before-year-1-in-utc",
        "after-year-9999-in-utc",
    ],
)
async def test_pagination_arguments_are_checked(
    api: Api, variables: dict[str, Any], bad_field: str
) -> None:
    ada = await api.register()
    body = await api.gql(LIST, variables, token=ada["accessToken"])
    assert code(body) == "BAD_USER_INPUT"
    assert field(body) == bad_field


async def test_pages_stay_stable_while_notes_are_added_and_removed(
    start_api: StartApi, clock: FrozenClock
) -> None:
    api = await start_api(clock=clock)
    token = (await api.register())["accessToken"]
    # Three notes in the same instant: the id breaks the tie, nothing is lost or repeated.
    first_ids = [await create_note(api, token, f"old {n}") for n in range(3)]
    clock.advance(1)
    first_ids += [await create_note(api, token, f"new {n}") for n in range(4)]

    page = (await api.gql(LIST, {"first": 3}, token=token))["data"]["notes"]
    assert page["totalCount"] == 7
    assert page["pageInfo"]["hasNextPage"] is True
    seen = [edge["node"]["id"] for edge in page["edges"]]
    assert [edge["cursor"] for edge in page["edges"]][-1] == page["pageInfo"]["endCursor"]

    clock.advance(1)
    await create_note(api, token, "newest, after the first page")  # must not shift the pages
    await api.gql(DELETE, {"id": seen[0]}, token=token)  # nor may deleting a seen one

    while page["pageInfo"]["hasNextPage"]:
        after = page["pageInfo"]["endCursor"]
        page = (await api.gql(LIST, {"first": 3, "after": after}, token=token))["data"]["notes"]
        seen += [edge["node"]["id"] for edge in page["edges"]]
    assert sorted(seen) == sorted(first_ids)
    assert len(seen) == len(set(seen)) == 7
    assert page["totalCount"] == 7  # 7 + 1 new - 1 deleted

    newest_first = (await api.gql(LIST, {"first": 100}, token=token))["data"]["notes"]["edges"]
    assert newest_first[0]["node"]["title"] == "newest, after the first page"
    assert {e["node"]["title"] for e in newest_first[-3:]} == {"old 0", "old 1", "old 2"}


async def test_default_and_zero_page_sizes(api: Api) -> None:
    token = (await api.register())["accessToken"]
    for n in range(21):
        await create_note(api, token, f"note {n}")
    default = (await api.gql(LIST, token=token))["data"]["notes"]
    assert len(default["edges"]) == 20
    assert default["pageInfo"]["hasNextPage"] is True
    explicit_null = (await api.gql(LIST, {"first": None}, token=token))["data"]["notes"]
    assert len(explicit_null["edges"]) == 20
    zero = (await api.gql(LIST, {"first": 0}, token=token))["data"]["notes"]
    assert zero["edges"] == []
    assert zero["pageInfo"] == {"hasNextPage": True, "endCursor": None}
    assert zero["totalCount"] == 21


async def test_a_page_of_notes_with_owners_costs_a_constant_number_of_queries(
    api: Api, sql: QueryCounter
) -> None:
    token = (await api.register())["accessToken"]
    for n in range(25):
        await create_note(api, token, f"note {n}")
    query = "{ notes(first: 20) { edges { node { title owner { email displayName } } } } }"
    sql.statements.clear()
    body = await api.gql(query, token=token)
    assert len(body["data"]["notes"]["edges"]) == 20
    assert len(sql.statements) <= 3, sql.statements
