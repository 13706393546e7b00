"""The fixed-SQL reads (api/db/reads.py, api/db/rotation.py): the same answers and checks as
the ORM path they replaced, the statements they send, and the bench's database ceilings
sending exactly those statements (bench/ceiling_db.py)."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from api.db.models import User
from tests.helpers.api import Api, QueryCounter
from tests.helpers.graphql import ME, code
from tests.helpers.notes import create_note

BENCH = Path(__file__).resolve().parents[2] / "bench"
PAGE = "{ notes(first: 20) { edges { node { title owner { email } } } } }"
BY_FRAGMENTS = """query { notes(first: 20) { ...Page } }
fragment Page on NoteConnection { edges { ... on NoteEdge { node { title ...Who } } } }
fragment Who on Note { owner { email displayName } }"""
NO_OWNER = "{ notes(first: 20) { edges { node { title } } pageInfo { endCursor } } }"
ROTATE = "mutation R($t: String!) { refresh(refreshToken: $t) { accessToken refreshToken } }"


def _ceiling() -> ModuleType:
    spec = importlib.util.spec_from_file_location("ceiling_db", BENCH / "ceiling_db.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(BENCH))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(BENCH))
    return module


def _shape(statement: str) -> str:
    """A statement without its logged values, placeholders made alike (`?` for `$n`)."""
    return re.sub(r"\$\d+", "?", statement.split(": [", 1)[0].split(": None", 1)[0])


async def test_me_answers_every_field_from_one_read_as_the_model_has_it(
    api: Api, sql: QueryCounter
) -> None:
    pair = await api.register(displayName="Ada")
    sql.statements.clear()
    me = (await api.gql(ME, token=pair["accessToken"]))["data"]["me"]
    assert len(sql.statements) == 1, sql.statements
    assert "password_hash" not in sql.statements[0]  # only what the API shows is read
    row = await User.get(id=me["id"])
    assert me["email"] == row.email and me["displayName"] == "Ada"
    assert me["roles"] == row.roles and me["isActive"] is True and me["emailVerified"] is False
    assert me["createdAt"] == row.created_at.isoformat()
    assert me["lastLoginAt"] == (row.last_login_at and row.last_login_at.isoformat())


async def test_a_page_reads_its_owners_ahead_through_fragments_too(
    api: Api, sql: QueryCounter
) -> None:
    pair = await api.register(displayName="Ada")
    token = pair["accessToken"]
    for n in range(3):
        await create_note(api, token, f"note {n}")
    for query in (PAGE, BY_FRAGMENTS):
        sql.statements.clear()
        edges = (await api.gql(query, token=token))["data"]["notes"]["edges"]
        assert [e["node"]["title"] for e in edges] == ["note 2", "note 1", "note 0"]
        assert all(e["node"]["owner"]["email"] == "ada@example.com" for e in edges)
        assert len(sql.statements) == 2, sql.statements  # the page, then its owners
    sql.statements.clear()
    body = await api.gql(NO_OWNER, token=token)
    assert len(body["data"]["notes"]["edges"]) == 3
    assert len(sql.statements) == 1, sql.statements  # no owner asked: no owner read


async def test_a_deactivated_viewer_gets_no_owner_from_a_page_read_ahead(api: Api) -> None:
    pair = await api.register()
    await create_note(api, pair["accessToken"])
    # Deactivated behind the session's back (no revocation): the owner's row still refuses.
    await User.filter(email="ada@example.com").update(is_active=False)
    body = await api.gql(PAGE, token=pair["accessToken"])
    assert code(body) == "TOKEN_REVOKED"


async def test_a_rotation_answers_its_user_and_spends_the_token_once(api: Api) -> None:
    pair = await api.register(displayName="Ada")
    body = await api.refresh(pair["refreshToken"])
    assert "errors" not in body, body
    rotated = body["data"]["refresh"]
    assert rotated["user"]["email"] == "ada@example.com"
    again = await api.refresh(pair["refreshToken"])  # the spent token: reuse detected
    assert code(again) == "REFRESH_TOKEN_REUSED"
    assert code(await api.refresh(rotated["refreshToken"])) == "TOKEN_REVOKED"  # family ended


async def test_the_database_ceiling_sends_graphgates_statements(
    api: Api, sql: QueryCounter, database_url: str
) -> None:
    pair = await api.register()
    token = pair["accessToken"]
    await create_note(api, token)
    seen: dict[str, list[str]] = {}
    for name, query, variables in (
        ("me", "{ me { id email displayName } }", None),
        ("notes", PAGE, None),
        ("refresh", ROTATE, {"t": pair["refreshToken"]}),
    ):
        sql.include_sessions = True
        sql.statements.clear()
        body: dict[str, Any] = await api.gql(query, variables, token=token)
        assert "errors" not in body, body
        seen[name] = [_shape(s) for s in sql.statements if "SET id = id" not in s]
    ceiling = _ceiling().sql(database_url.startswith("postgres"))
    shaped = {key: _shape(text) for key, text in ceiling.items()}
    assert seen["me"] == [shaped["user_in"]]
    assert seen["notes"] == [shaped["notes"], shaped["user_in"]]
    assert seen["refresh"] == [
        shaped[k] for k in ("session", "lock_user", "session_again", "swap", "audit")
    ]


async def test_me_reads_the_viewers_row_only_when_the_document_asks_beyond_the_token(
    api: Api, sql: QueryCounter
) -> None:
    token = (await api.register())["accessToken"]
    await create_note(api, token)
    sql.statements.clear()
    body = await api.gql("{ me { id roles __typename } }", token=token)
    assert body["data"]["me"]["roles"] == ["user"] and sql.statements == []
    by_fragment = """query { me { id ...Who } }
    fragment Who on User { ... on User { email } }"""
    for _ in range(2):  # the second time from the walked document's memory
        sql.statements.clear()
        body = await api.gql(by_fragment, token=token)
        assert body["data"]["me"]["email"] == "ada@example.com"
        assert len(sql.statements) == 1, sql.statements
    # One read of the viewer's row serves `me` and the page's owners alike.
    sql.statements.clear()
    both = "{ me { email } notes(first: 5) { edges { node { owner { email } } } } }"
    body = await api.gql(both, token=token)
    assert body["data"]["notes"]["edges"][0]["node"]["owner"]["email"] == "ada@example.com"
    assert len(sql.statements) == 2, sql.statements  # the viewer's row, the page


async def test_a_deactivated_viewer_is_refused_where_the_row_is_read(api: Api) -> None:
    token = (await api.register())["accessToken"]
    await User.filter(email="ada@example.com").update(is_active=False)
    assert code(await api.gql("{ me { id email } }", token=token)) == "TOKEN_REVOKED"
