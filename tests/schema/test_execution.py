"""Operations seen before run on the fast path (schema/execution.py): same answers, same
masking, same telemetry as on strawberry's full pipeline."""

from __future__ import annotations

import logging
from typing import Any

import pytest
import strawberry

from api.auth.sessions import SessionService
from tests.helpers.api import Api
from tests.helpers.graphql import LOGIN, code
from tests.helpers.metrics import scrape, value


class PipelineCalls:
    """Counts the operations that went through strawberry's full pipeline."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        full = strawberry.Schema.execute

        async def counted(schema: Any, *args: Any, **kwargs: Any) -> Any:
            self.count += 1
            return await full(schema, *args, **kwargs)

        monkeypatch.setattr(strawberry.Schema, "execute", counted)


@pytest.fixture
def pipeline(monkeypatch: pytest.MonkeyPatch) -> PipelineCalls:
    return PipelineCalls(monkeypatch)


async def send(api: Api, body: dict[str, Any], token: str | None = None) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    resp = await api.client.post("/graphql", json=body, headers=headers)
    return resp.status, await resp.json()


async def twice(
    api: Api, pipeline: PipelineCalls, body: dict[str, Any], token: str | None = None
) -> tuple[int, Any, int]:
    """Send the operation twice: the first answer from the full pipeline, the second from
    the fast path (or the pipeline again, when the text did not validate); both must agree.

    A text is kept from its second sighting on (schema/documents.py): one uncounted sending
    first makes this text a known one, as a client's operations are after their first use."""
    await send(api, body, token)
    before = pipeline.count
    first = await send(api, body, token)
    second = await send(api, body, token)
    assert first == second, (first, second)
    return first[0], first[1], pipeline.count - before


async def test_a_valid_operation_runs_on_the_pipeline_once_then_on_the_fast_path(
    api: Api, pipeline: PipelineCalls
) -> None:
    pair = await api.register()
    token = pair["accessToken"]
    status, body, calls = await twice(api, pipeline, {"query": "{ me { id roles } }"}, token)
    assert status == 200
    assert body == {"data": {"me": {"id": pair["user"]["id"], "roles": ["user"]}}}
    assert calls == 1

    # A guard's refusal is an answer of the prepared document, not a reason to leave it.
    status, body, calls = await twice(api, pipeline, {"query": "{ me { id roles } }"})
    assert code(body) == "UNAUTHENTICATED"
    assert body["data"] is None
    assert calls == 0  # the text was validated above

    # Contract errors from a resolver, with variables.
    bad = {"email": "ada@example.com", "password": "wrong password"}
    status, body, calls = await twice(api, pipeline, {"query": LOGIN, "variables": bad})
    assert code(body) == "INVALID_CREDENTIALS"
    assert calls == 1


async def test_operation_name_selection_and_errors_match_the_pipeline(
    api: Api, pipeline: PipelineCalls
) -> None:
    document = "query One { __typename } query Two { me { id } }"
    status, body, calls = await twice(api, pipeline, {"query": document, "operationName": "One"})
    assert (status, body, calls) == (200, {"data": {"__typename": "Query"}}, 1)
    status, body, calls = await twice(api, pipeline, {"query": document, "operationName": "Two"})
    assert code(body) == "UNAUTHENTICATED"
    assert calls == 0
    # No operation name for a document of two, or an unknown one: strawberry's own answer
    # (it runs the first operation when none is named, where the GraphQL spec asks for a
    # request error; the fast path leaves such requests to it, so the answer stays the same).
    status, missing, calls = await twice(api, pipeline, {"query": document})
    assert calls == 2, missing
    status, unknown, calls = await twice(
        api, pipeline, {"query": document, "operationName": "Three"}
    )
    assert (status, calls) == (400, 2), missing
    # Variables that do not fit: BAD_USER_INPUT naming the variable, on both paths.
    query = "query($first: Int, $after: String!) { notes(first: $first, after: $after) { edges { node { id } } } }"
    for variables, field in (({"first": "many", "after": ""}, "first"), ({"first": 1}, "after")):
        body = {"query": query, "variables": variables}
        status, answer, calls = await twice(api, pipeline, body)
        (error,) = answer["errors"]
        assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": field}, error
        assert f"${field}" in error["message"]
    # A validation rule's error about a variable is the document's fault: no input code.
    unused = "query($first: Int) { __typename }"
    status, answer, calls = await twice(api, pipeline, {"query": unused, "variables": {}})
    (error,) = answer["errors"]
    assert "never used" in error["message"]
    assert "code" not in (error.get("extensions") or {}), error


async def test_invalid_documents_never_reach_the_fast_path(
    api: Api, pipeline: PipelineCalls
) -> None:
    for query in ("{ me { nope } }", "{ me { id ", "{ }"):
        status, body, calls = await twice(api, pipeline, {"query": query})
        assert body["errors"], body
        assert calls == 2, query  # each time through strawberry's pipeline


async def test_unexpected_errors_are_masked_and_logged_on_the_fast_path(
    api: Api,
    pipeline: PipelineCalls,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def boom(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("secret detail from the database")

    pair = await api.register()
    monkeypatch.setattr(SessionService, "live", boom)
    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="graphgate.errors"):
        status, body, calls = await twice(
            api, pipeline, {"query": "{ mySessions { id } }"}, pair["accessToken"]
        )
    assert calls == 1
    assert code(body) == "INTERNAL_SERVER_ERROR"
    assert "secret detail" not in str(body)
    logged = [r for r in caplog.records if r.name == "graphgate.errors"]
    assert len(logged) == 3  # the details, once per request (3, see twice), in the log only
    assert all("secret detail" in str(r.exc_info) for r in logged)


async def test_telemetry_records_fast_path_operations(
    api: Api, pipeline: PipelineCalls, caplog: pytest.LogCaptureFixture
) -> None:
    pair = await api.register()
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="graphgate.access"):
        status, body, calls = await twice(
            api, pipeline, {"query": "query Who { me { id } }"}, pair["accessToken"]
        )
    assert calls == 1
    records = [r for r in caplog.records if r.name == "graphgate.access"]
    assert len(records) == 3  # one per request: the first sighting, the pipeline, fast path
    for record in records:
        assert record.operation == "Who"  # type: ignore[attr-defined]
        assert record.operation_type == "query"  # type: ignore[attr-defined]
        assert record.user_id == pair["user"]["id"]  # type: ignore[attr-defined]
    samples = await scrape(api)
    ok = {"operation": "Who", "type": "query", "outcome": "ok"}
    assert value(samples, "graphgate_graphql_requests_total", **ok) == 3


async def test_mutations_over_get_are_still_refused_when_get_is_on(
    start_api: Any, pipeline: PipelineCalls
) -> None:
    api = await start_api(GET_QUERIES="true")
    query = "mutation { logout }"
    await send(api, {"query": query})  # validated once, through POST
    resp = await api.client.get("/graphql", params={"query": query})
    assert resp.status == 405


async def test_a_prepared_operation_that_waits_is_still_cut_by_the_execution_timeout(
    start_api: Any, pipeline: PipelineCalls
) -> None:
    import time

    from api.web.appkeys import SERVICES_KEY

    api = await start_api(EXECUTION_TIMEOUT="1", PASSWORD_HASH_THREADS="1")
    await api.register()

    def slow_hash(*_: object) -> object:
        time.sleep(1.5)  # in the hashing thread: the event loop stays free
        return (True, None)

    api.app[SERVICES_KEY].hasher._timed = slow_hash  # type: ignore[method-assign]
    credentials = {"email": "ada@example.com", "password": "correct horse"}
    status, body, calls = await twice(api, pipeline, {"query": LOGIN, "variables": credentials})
    assert code(body) == "QUERY_TOO_COMPLEX", body
    assert calls == 1  # the second one ran on the fast path, and was cut all the same


async def test_plain_json_posts_skip_strawberrys_dispatch_and_the_rest_take_it(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """api/web/http.py answers a POST of one JSON operation itself; every other request
    (batch, malformed or ill-typed body, another content type) goes through `run`."""
    from strawberry.aiohttp.views import GraphQLView

    runs = 0
    run = GraphQLView.run

    async def counted(view: Any, *args: Any, **kwargs: Any) -> Any:
        nonlocal runs
        runs += 1
        return await run(view, *args, **kwargs)

    monkeypatch.setattr(GraphQLView, "run", counted)
    assert await send(api, {"query": "{ __typename }"}) == (200, {"data": {"__typename": "Query"}})
    status, body = await send(api, {"query": "{ me { id } }", "variables": None})
    assert code(body) == "UNAUTHENTICATED"
    assert runs == 0

    odd_bodies: list[tuple[Any, int]] = [
        ([{"query": "{ __typename }"}], 400),  # a batch: refused
        ({"query": 42}, 400),
        ({"query": "{ __typename }", "variables": [1]}, 400),
        ({"query": "{ __typename }", "extensions": "x"}, 400),
    ]
    for payload, expected in odd_bodies:
        resp = await api.client.post("/graphql", json=payload)
        assert resp.status == expected, (payload, await resp.text())
    resp = await api.client.post(
        "/graphql", data=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert resp.status == 400
    resp = await api.client.post("/graphql", data={"query": "{ __typename }"})  # a form
    assert resp.status >= 400
    assert runs == len(odd_bodies) + 2


def test_an_extension_the_fast_path_does_not_know_turns_it_off() -> None:
    from strawberry.extensions import SchemaExtension

    from schema.documents import ValidationResults
    from schema.execution import GraphGateSchema, MaskUnexpectedErrors
    from schema.telemetry import RequestTelemetry

    @strawberry.type
    class Query:
        ping: str = "pong"

    class Audit(SchemaExtension):
        pass

    class Middleware(SchemaExtension):
        def resolve(self, _next: Any, root: Any, info: Any, *args: Any, **kwargs: Any) -> Any:
            return _next(root, info, *args, **kwargs)

    def schema(*extensions: type[SchemaExtension]) -> GraphGateSchema:
        return GraphGateSchema(
            query=Query,
            extensions=list(extensions),
            hide_suggestions=True,
            prepared=ValidationResults(8, 1 << 20, 1 << 16),
            execution_timeout=10,
        )

    assert schema(MaskUnexpectedErrors, RequestTelemetry)._fast_path
    assert not schema(MaskUnexpectedErrors, RequestTelemetry, Audit)._fast_path
    assert not schema(MaskUnexpectedErrors, Middleware)._fast_path
    assert not schema(RequestTelemetry)._fast_path  # nothing would mask its errors
