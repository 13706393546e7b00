"""graphql-cop's checks, reproduced against production settings (and a few in development)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from aiohttp import FormData
from graphql import get_introspection_query

from tests.helpers.api import Api, StartApi
from tests.helpers.graphql import LOGIN, REGISTER, code

CIRCULAR = (
    "query cop { __schema { types { fields { type { fields { type { fields { type "
    "{ fields { type { name } } } } } } } } } } }"
)


@pytest.fixture
async def prod(start_api: StartApi) -> Api:
    return await start_api(APP_ENV="production")


def messages(body: dict[str, Any]) -> str:
    return " ".join(error.get("message", "") for error in body.get("errors") or [])


async def test_introspection_is_refused(prod: Api) -> None:
    for query in (
        "query cop { __schema { types { name } } }",
        '{ __type(name: "User") { fields { name } } }',
        "{ a: __schema { queryType { name } } }",
    ):
        status, body, _ = await prod.post(query)
        assert status == 200
        assert body.get("data") is None, body
        assert "introspection" in messages(body).lower()
    # __typename is not introspection of the schema: still answered (clients rely on it).
    assert (await prod.gql("{ __typename }"))["data"] == {"__typename": "Query"}


@pytest.mark.parametrize(
    "query",
    [
        "{ mee { id } }",
        "query cop { __schema { directive } }",
        'mutation { logn(email: "a@b.c", password: "xxxxxxxx") { accessToken } }',
        'mutation { login(emial: "a@b.c", password: "xxxxxxxx") { accessToken } }',
        'mutation { login(email: "a@b.c", password: "xxxxxxxx") { accesToken } }',
        "query($x: Strin) { __typename }",
        "{ me { ... on Usr { id } } }",
    ],
)
async def test_no_field_suggestions(prod: Api, query: str) -> None:
    _, body, _ = await prod.post(query)
    assert body.get("errors"), body
    assert "did you mean" not in messages(body).lower(), body


async def test_graphiql_is_not_served(prod: Api) -> None:
    for headers in ({"Accept": "text/html"}, {"Accept": "text/html,application/xhtml+xml,*/*"}):
        resp = await prod.client.get("/graphql", headers=headers)
        text = await resp.text()
        assert resp.status >= 400
        assert "graphiql" not in text.lower()
        assert "<html" not in text.lower()


async def test_alias_overloading_101(prod: Api) -> None:
    query = "query cop { " + " ".join(f"alias{n}: __typename" for n in range(101)) + " }"
    _, body, _ = await prod.post(query)
    assert code(body) == "QUERY_TOO_COMPLEX"
    assert body.get("data") is None


async def test_a_batch_of_10_is_refused(prod: Api) -> None:
    batch = [{"query": "query cop { __typename }"}] * 10
    resp = await prod.client.post("/graphql", json=batch)
    body = await resp.json()
    assert resp.status == 400
    assert isinstance(body, dict)  # not a list of 10 answers
    assert code(body) == "QUERY_TOO_COMPLEX"
    assert "data" not in body


@pytest.mark.parametrize(
    "query",
    [
        pytest.param("query cop { __typename " + "@aa" * 10 + " }", id="unknown-repeated"),
        pytest.param("{ __typename " + "@skip(if: false)" * 10 + " }", id="skip-repeated"),
        pytest.param(
            "{ " + " ".join(f"a{n}: __typename @include(if: true)" for n in range(10)) + " }",
            id="spread-over-fields",
        ),
        pytest.param("query cop { __typename " + "@aa" * 500 + " }", id="unknown-500"),
    ],
)
async def test_directive_overloading(prod: Api, query: str) -> None:
    _, body, _ = await prod.post(query)
    assert code(body) == "QUERY_TOO_COMPLEX", body
    assert body.get("data") is None
    assert len(body["errors"]) == 1, body  # refused once, not an error per directive


@pytest.mark.parametrize("env", ["production", "development"])
async def test_circular_introspection(start_api: StartApi, env: str) -> None:
    api = await start_api(APP_ENV=env)
    _, body, _ = await api.post(CIRCULAR)
    assert code(body) == "QUERY_TOO_COMPLEX", body
    assert body.get("data") is None


async def test_deep_query(start_api: StartApi) -> None:
    """No type of the schema nests deeper than the default limit: a lowered one shows the rule
    at work, through fragments too."""
    login = 'login(email: "ada@example.com", password: "correct horse")'
    two_deep = f"mutation {{ {login} {{ user {{ id }} }} }}"
    through_fragment = (
        f"fragment F on TokenPair {{ user {{ id }} }} mutation {{ {login} {{ ...F }} }}"
    )
    api = await start_api(APP_ENV="production", MAX_QUERY_DEPTH="2")
    await api.register()
    for query in (two_deep, through_fragment):
        _, body, _ = await api.post(query)
        assert "errors" not in body, body
    tight = await start_api(APP_ENV="production", MAX_QUERY_DEPTH="1")
    for query in (two_deep, through_fragment):
        _, body, _ = await tight.post(query)
        assert code(body) == "QUERY_TOO_COMPLEX", body
        assert body.get("data") is None


async def test_graphiql_introspection_passes_the_limits_in_development(api: Api) -> None:
    query = get_introspection_query(
        descriptions=True,
        specified_by_url=True,
        directive_is_repeatable=True,
        schema_description=True,
        input_value_deprecation=True,
    )
    body = await api.gql(query)
    assert "errors" not in body, body
    names = {t["name"] for t in body["data"]["__schema"]["types"]}
    assert {"Query", "Mutation", "User", "TokenPair"} <= names


@pytest.mark.parametrize("env", ["production", "development"])
async def test_mutations_never_over_get(start_api: StartApi, env: str) -> None:
    api = await start_api(APP_ENV=env)
    await api.register()
    for query in (
        'mutation { login(email: "ada@example.com", password: "correct horse") { accessToken } }',
        "mutation cop { __typename }",
    ):
        resp = await api.client.get("/graphql", params={"query": query})
        text = await resp.text()
        assert resp.status == 405, text
        assert "accessToken" not in text
        assert '"data"' not in text


async def test_get_queries_are_off_in_production(prod: Api) -> None:
    resp = await prod.client.get("/graphql", params={"query": "{ __typename }"})
    assert resp.status == 405
    assert "__typename" not in await resp.text()


async def test_form_encoded_post_is_refused(prod: Api) -> None:
    """A cross-site <form> can POST this without a preflight: it must do nothing."""
    variables = '{"email": "csrf@example.com", "password": "correct horse"}'
    for content_type in ("application/x-www-form-urlencoded", "text/plain"):
        if content_type == "text/plain":
            data: Any = f'{{"query": {REGISTER!r}, "variables": {variables}}}'.replace("'", '"')
        else:
            data = {"query": REGISTER, "variables": variables}
        resp = await prod.client.post("/graphql", data=data, headers={"Content-Type": content_type})
        text = await resp.text()
        assert 400 <= resp.status < 500, (content_type, text)
        assert '"data"' not in text
    # Nothing happened: the address is still free.
    assert (await prod.register("csrf@example.com"))["user"]["email"] == "csrf@example.com"


async def test_multipart_post_is_refused(prod: Api) -> None:
    form = FormData()
    form.add_field("operations", '{"query": "{ __typename }"}')
    form.add_field("map", "{}")
    resp = await prod.client.post("/graphql", data=form)
    text = await resp.text()
    assert 400 <= resp.status < 500
    assert '"data"' not in text


async def test_no_tracing_in_responses(prod: Api) -> None:
    resp = await prod.client.post(
        "/graphql",
        json={"query": "query cop { __typename }", "extensions": {"tracing": True}},
        headers={"apollo-federation-include-trace": "ftv1", "X-Apollo-Tracing": "1"},
    )
    body = await resp.json()
    assert body == {"data": {"__typename": "Query"}}  # no `extensions` at all
    assert not any(name.lower().startswith(("x-trace", "server-timing")) for name in resp.headers)


async def test_unhandled_errors_are_masked(
    prod: Api, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from api.auth.sessions import SessionService

    async def boom(*args: Any, **kwargs: Any) -> Any:
        raise ZeroDivisionError("division by zero in /srv/app/secret_module.py line 42")

    pair = await prod.register()
    monkeypatch.setattr(SessionService, "live", boom)
    _, body, _ = await prod.post("{ mySessions { id } }", token=pair["accessToken"])
    assert code(body) == "INTERNAL_SERVER_ERROR"
    error = body["errors"][0]
    assert error["message"] == "Internal server error."
    assert error["extensions"] == {"code": "INTERNAL_SERVER_ERROR"}
    text = str(body)
    for leak in ("ZeroDivision", "secret_module", "Traceback", "division", "exception"):
        assert leak.lower() not in text.lower(), text
    assert "ZeroDivisionError" in caplog.text  # the details go to the log


@pytest.mark.parametrize(
    "payload",
    [
        b"{not json",
        b'{"query": 12}',
        b'{"query": "{ __typename }", "variables": "x"}',
        b"[]",
        b'{"query": "{ __typename }", "variables": {"a": '
        + b"[" * 100_000
        + b"]" * 100_000
        + b"}}",
        b'{"query": "{ __typename }", "extensions": ' + b'{"a":' * 50_000 + b"1" + b"}" * 50_001,
    ],
    ids=["not-json", "query-int", "variables-string", "empty-batch", "deep-list", "deep-object"],
)
async def test_malformed_requests_leak_nothing(prod: Api, payload: bytes) -> None:
    resp = await prod.client.post(
        "/graphql", data=payload, headers={"Content-Type": "application/json"}
    )
    text = await resp.text()
    assert 400 <= resp.status < 500, text
    assert "Traceback" not in text
    assert 'File "' not in text


async def test_token_limit(prod: Api) -> None:
    query = "{ " + " ".join(["__typename"] * 2100) + " }"
    _, body, _ = await prod.post(query)
    assert code(body) == "QUERY_TOO_COMPLEX"
    assert body.get("data") is None


async def test_execution_timeout(start_api: StartApi, monkeypatch: pytest.MonkeyPatch) -> None:
    from api.auth.sessions import SessionService

    async def slow(*args: Any, **kwargs: Any) -> Any:
        await asyncio.sleep(30)

    api = await start_api(APP_ENV="production", EXECUTION_TIMEOUT="1")
    pair = await api.register()
    monkeypatch.setattr(SessionService, "live", slow)
    started = time.monotonic()
    _, body, _ = await api.post("{ mySessions { id } }", token=pair["accessToken"])
    assert time.monotonic() - started < 5
    assert code(body) == "QUERY_TOO_COMPLEX"
    assert body.get("data") is None


async def test_login_still_works_in_production(prod: Api) -> None:
    await prod.register()
    body = await prod.gql(LOGIN, {"email": "ada@example.com", "password": "correct horse"})
    assert body["data"]["login"]["accessToken"]


@pytest.mark.parametrize(
    "query",
    [
        pytest.param("query cop { " + "__typename " * 500 + "}", id="graphql-cop-500"),
        pytest.param("{ " + "me { id } " * 490 + "}", id="composite-490"),
        pytest.param("{ me { " + "id " * 1990 + "} }", id="leaf-1990"),
    ],
)
async def test_field_duplication_is_refused_before_the_costly_rules(
    prod: Api, query: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """graphql-core's overlapping-fields check is quadratic in repeated fields (about a second
    of CPU, on the event loop, for 490 copies): an operation over the limits never reaches it."""
    from graphql.validation.rules.overlapping_fields_can_be_merged import (
        OverlappingFieldsCanBeMergedRule,
    )

    calls: list[object] = []
    original = OverlappingFieldsCanBeMergedRule.enter_selection_set

    def counting(self: Any, *args: Any) -> Any:
        calls.append(args[0])
        return original(self, *args)

    monkeypatch.setattr(OverlappingFieldsCanBeMergedRule, "enter_selection_set", counting)
    _, body, _ = await prod.post(query)
    assert code(body) == "QUERY_TOO_COMPLEX", body
    assert body.get("data") is None
    assert calls == []
    # Self-check: an ordinary operation does go through the full rules.
    await prod.post("{ __typename }")
    assert calls


async def test_a_few_repeated_fields_are_fine(prod: Api) -> None:
    """Fragments legitimately repeat fields: `id` three times in one selection is allowed."""
    body = await prod.gql("fragment F on Query { __typename } { __typename __typename ...F }")
    assert body == {"data": {"__typename": "Query"}}


async def test_an_error_before_execution_is_masked_too(
    prod: Api, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """An exception in validation (not in a resolver) bypasses strawberry's MaskErrors."""
    import schema.limits

    def boom(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("secret detail from a validation rule")

    monkeypatch.setattr(schema.limits, "check_document", boom)
    _, body, _ = await prod.post("{ __typename }")
    assert code(body) == "INTERNAL_SERVER_ERROR", body
    assert body["errors"][0]["message"] == "Internal server error."
    assert "secret detail" not in str(body)
    assert "secret detail from a validation rule" in caplog.text


async def test_an_unknown_fragment_is_a_plain_validation_error(prod: Api) -> None:
    _, body, _ = await prod.post("{ ...Missing }")
    assert body["errors"][0]["message"] == "Unknown fragment 'Missing'.", body
    assert code(body) is None
