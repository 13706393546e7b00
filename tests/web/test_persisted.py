"""Persisted and trusted documents over HTTP: APQ as Apollo Client speaks it, `documentId`,
trusted-documents manifests in `allow` and `only` mode, and the budget of every input."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from api.infra.metrics import is_operation_name
from api.settings import SettingsError
from schema.manifest import ManifestError
from tests.helpers.api import Api
from tests.helpers.graphql import code
from tests.helpers.metrics import scrape, value

StartApi = Callable[..., Awaitable[Api]]
GRAPHQL_RESPONSE = "application/graphql-response+json"

HEALTH = "query Health { __typename }"
ME = "query Me { me { id email } }"
LOGOUT = "mutation Logout { logout }"


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """Documents are resolved before any SQL: SQLite alone is enough here."""
    return f"sqlite://{tmp_path}/test.sqlite3"


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def apq(text: str, with_query: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {
        "extensions": {"persistedQuery": {"version": 1, "sha256Hash": sha(text)}}
    }
    if with_query:
        body["query"] = text
    return body


async def send(
    api: Api, body: dict[str, Any], accept: str = "application/json", **headers: str
) -> tuple[int, dict[str, Any]]:
    resp = await api.client.post("/graphql", json=body, headers={"Accept": accept, **headers})
    return resp.status, await resp.json(content_type=None)


def apollo_manifest(tmp_path: Path, *texts: str, name: str = "manifest.json") -> Path:
    operations = [
        {"id": sha(text), "name": text.split()[1], "type": text.split()[0], "body": text}
        for text in texts
    ]
    path = tmp_path / name
    path.write_text(
        json.dumps(
            {"format": "apollo-persisted-query-manifest", "version": 1, "operations": operations}
        )
    )
    return path


def codegen_manifest(tmp_path: Path, *texts: str) -> Path:
    path = tmp_path / "persisted-documents.json"
    path.write_text(json.dumps({sha(text): text for text in texts}))
    return path


# --- Automatic persisted queries -------------------------------------------------------


async def test_apq_misses_then_registers_then_runs_from_the_hash(start_api: StartApi) -> None:
    api = await start_api()
    status, body = await send(api, apq(HEALTH))
    assert status == 200  # application/json: every well-formed request is a 200
    assert body["errors"][0]["message"] == "PersistedQueryNotFound"  # what Apollo Client reads
    assert code(body) == "PERSISTED_QUERY_NOT_FOUND"
    assert "data" not in body or body["data"] is None

    status, body = await send(api, apq(HEALTH, with_query=True))
    assert (status, body) == (200, {"data": {"__typename": "Query"}})

    status, body = await send(api, apq(HEALTH))
    assert (status, body) == (200, {"data": {"__typename": "Query"}})
    # the same document by the persisted-documents form, prefixed or bare
    for document_id in (f"sha256:{sha(HEALTH)}", sha(HEALTH), sha(HEALTH).upper()):
        status, body = await send(api, {"documentId": document_id})
        assert (status, body) == (200, {"data": {"__typename": "Query"}}), document_id


async def test_not_found_is_a_404_for_graphql_response_json(start_api: StartApi) -> None:
    api = await start_api()
    status, body = await send(api, apq(HEALTH), accept=GRAPHQL_RESPONSE)
    assert status == 404
    assert "data" not in body
    assert body["errors"][0]["message"] == "PersistedQueryNotFound"
    status, body = await send(api, {"documentId": sha("{ nothing }")}, accept=GRAPHQL_RESPONSE)
    assert (status, code(body)) == (404, "PERSISTED_QUERY_NOT_FOUND")


async def test_a_hash_that_does_not_match_is_bad_input_and_registers_nothing(
    start_api: StartApi,
) -> None:
    api = await start_api()
    body = apq(HEALTH)
    body["query"] = "query Other { __typename }"
    status, answer = await send(api, body, accept=GRAPHQL_RESPONSE)
    assert status == 400
    assert code(answer) == "BAD_USER_INPUT"
    assert answer["errors"][0]["extensions"]["field"] == "extensions.persistedQuery.sha256Hash"
    for text in (HEALTH, "query Other { __typename }"):
        assert code((await send(api, apq(text)))[1]) == "PERSISTED_QUERY_NOT_FOUND"


async def test_an_invalid_document_is_not_registered(start_api: StartApi) -> None:
    api = await start_api()
    text = "query Bad { noSuchField }"
    _, body = await send(api, apq(text, with_query=True))
    assert body["errors"] and "noSuchField" in body["errors"][0]["message"]
    assert code((await send(api, apq(text)))[1]) == "PERSISTED_QUERY_NOT_FOUND"


@pytest.mark.parametrize(
    ("persisted", "field"),
    [
        ({"version": 2, "sha256Hash": "a" * 64}, "extensions.persistedQuery"),
        ({"version": 1, "sha256Hash": "a" * 63}, "extensions.persistedQuery.sha256Hash"),
        ({"version": 1, "sha256Hash": "g" * 64}, "extensions.persistedQuery.sha256Hash"),
        ({"version": 1, "sha256Hash": "a" * 100_000}, "extensions.persistedQuery.sha256Hash"),
        ({"version": 1}, "extensions.persistedQuery.sha256Hash"),
        ("a" * 64, "extensions.persistedQuery"),
    ],
)
async def test_a_malformed_persisted_query_extension_is_bad_input(
    start_api: StartApi, persisted: Any, field: str
) -> None:
    api = await start_api()
    status, body = await send(api, {"extensions": {"persistedQuery": persisted}})
    assert status == 200
    assert code(body) == "BAD_USER_INPUT"
    assert body["errors"][0]["extensions"]["field"] == field


@pytest.mark.parametrize(
    "document_id",
    [
        "sha256:" + "a" * 63,
        "md5:" + "a" * 64,
        "a" * 65,
        "sha256:" + "a" * 10_000,
        42,
        ["a" * 64],
        "a" * 64 + "\n",  # `$` alone would let a trailing newline through
        "sha256:" + "a" * 63 + "\n",
    ],
)
async def test_a_malformed_document_id_is_bad_input(start_api: StartApi, document_id: Any) -> None:
    api = await start_api()
    status, body = await send(api, {"documentId": document_id}, accept=GRAPHQL_RESPONSE)
    assert status == 400
    assert code(body) == "BAD_USER_INPUT"
    assert body["errors"][0]["extensions"]["field"] == "documentId"
    assert len(json.dumps(body)) < 400  # the id is not echoed back


async def test_document_id_and_query_together_are_refused(start_api: StartApi) -> None:
    api = await start_api()
    _, body = await send(api, {"documentId": sha(HEALTH), "query": HEALTH})
    assert code(body) == "BAD_USER_INPUT"


async def test_an_oversized_document_is_refused_before_it_is_hashed(start_api: StartApi) -> None:
    api = await start_api(MAX_QUERY_BYTES="200")
    text = "query Big { __typename } " + "#" * 300
    status, body = await send(api, apq(text, with_query=True), accept=GRAPHQL_RESPONSE)
    assert (status, code(body)) == (400, "QUERY_TOO_COMPLEX")
    assert code((await send(api, apq(text)))[1]) == "PERSISTED_QUERY_NOT_FOUND"


@pytest.mark.parametrize("name", [5, ["Health"], {"a": 1}, "Health\n"])
async def test_an_odd_operation_name_beside_a_named_document_is_no_crash(
    start_api: StartApi, tmp_path: Path, name: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """The operation name goes into the access log and a metric label: a number, a list or a
    trailing newline there was a 500 with a traceback (or a line break in the log)."""
    api = await start_api(
        TRUSTED_DOCUMENTS=str(codegen_manifest(tmp_path, HEALTH)), TRUSTED_DOCUMENTS_MODE="only"
    )
    with caplog.at_level(logging.INFO):
        for body in (
            {"documentId": sha(HEALTH)},
            apq(HEALTH),
            {"query": HEALTH},
            {"query": "{ __typename }"},  # refused: DOCUMENT_NOT_TRUSTED
        ):
            resp = await api.client.post("/graphql", json={**body, "operationName": name})
            assert resp.status < 500, (body, await resp.text())
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not [r for r in caplog.records if "\n" in r.getMessage()]
    assert not is_operation_name(name)  # neither a log field nor a metric label


async def test_apq_off_answers_not_supported(start_api: StartApi) -> None:
    api = await start_api(PERSISTED_QUERIES="off")
    status, body = await send(api, apq(HEALTH))
    assert body["errors"][0]["message"] == "PersistedQueryNotSupported"
    assert code(body) == "PERSISTED_QUERY_NOT_SUPPORTED"
    # Apollo Client then sends the text alone: an ordinary request.
    assert (await send(api, {"query": HEALTH}))[1] == {"data": {"__typename": "Query"}}
    # with the text and the hash, the text runs and nothing is kept
    assert (await send(api, apq(HEALTH, with_query=True)))[1] == {"data": {"__typename": "Query"}}
    assert code((await send(api, apq(HEALTH)))[1]) == "PERSISTED_QUERY_NOT_SUPPORTED"


async def test_apq_over_get_runs_queries_and_never_mutations(start_api: StartApi) -> None:
    api = await start_api(GET_QUERIES="on")
    extensions = json.dumps(apq(HEALTH)["extensions"])
    resp = await api.client.get("/graphql", params={"extensions": extensions})
    assert code(await resp.json()) == "PERSISTED_QUERY_NOT_FOUND"
    await send(api, apq(HEALTH, with_query=True))
    resp = await api.client.get("/graphql", params={"extensions": extensions})
    assert (resp.status, await resp.json()) == (200, {"data": {"__typename": "Query"}})
    resp = await api.client.get("/graphql", params={"documentId": f"sha256:{sha(HEALTH)}"})
    assert (resp.status, await resp.json()) == (200, {"data": {"__typename": "Query"}})

    # A mutation named by its hash over GET: 405, whether registered or not, and a GET
    # never registers one.
    mutation = json.dumps(apq(LOGOUT)["extensions"])
    resp = await api.client.get("/graphql", params={"extensions": mutation, "query": LOGOUT})
    assert resp.status == 405
    assert code((await send(api, apq(LOGOUT)))[1]) == "PERSISTED_QUERY_NOT_FOUND"
    await send(api, apq(LOGOUT, with_query=True))  # registered over POST (UNAUTHENTICATED)
    resp = await api.client.get("/graphql", params={"extensions": mutation})
    assert resp.status == 405


async def test_get_stays_off_where_get_queries_are_off(start_api: StartApi) -> None:
    api = await start_api(GET_QUERIES="off")
    await send(api, apq(HEALTH, with_query=True))
    resp = await api.client.get("/graphql", params={"documentId": sha(HEALTH)})
    assert resp.status == 405


async def test_guards_run_for_persisted_documents(start_api: StartApi) -> None:
    api = await start_api()
    _, body = await send(api, apq(ME, with_query=True))
    assert code(body) == "UNAUTHENTICATED"
    _, body = await send(api, apq(ME))
    assert code(body) == "UNAUTHENTICATED"
    token = (await api.register())["accessToken"]
    _, body = await send(api, apq(ME), Authorization=f"Bearer {token}")
    assert body["data"]["me"]["email"] == "ada@example.com"


# --- Trusted documents -----------------------------------------------------------------


@pytest.mark.parametrize("write", [apollo_manifest, codegen_manifest])
async def test_only_mode_runs_the_manifest_and_refuses_anything_else(
    start_api: StartApi, tmp_path: Path, write: Callable[..., Path]
) -> None:
    manifest = write(tmp_path, HEALTH, ME)
    api = await start_api(TRUSTED_DOCUMENTS=str(manifest), TRUSTED_DOCUMENTS_MODE="only")
    ok = {"data": {"__typename": "Query"}}
    assert (await send(api, {"documentId": f"sha256:{sha(HEALTH)}"}))[1] == ok
    assert (await send(api, apq(HEALTH)))[1] == ok  # Apollo's hash names it too
    assert (await send(api, {"query": HEALTH}))[1] == ok  # its exact text is trusted

    hand_written = "query Mine { __typename }"
    for body in ({"query": hand_written}, apq(hand_written, with_query=True)):
        status, answer = await send(api, body, accept=GRAPHQL_RESPONSE)
        assert (status, code(answer)) == (403, "DOCUMENT_NOT_TRUSTED"), body
    # registration was refused: the hash stays unknown
    assert code((await send(api, apq(hand_written)))[1]) == "PERSISTED_QUERY_NOT_FOUND"
    # introspection (GraphiQL's first request) is a hand-written document too
    _, answer = await send(api, {"query": "{ __schema { queryType { name } } }"})
    assert code(answer) == "DOCUMENT_NOT_TRUSTED"


async def test_allow_mode_runs_the_manifest_and_ad_hoc_documents(
    start_api: StartApi, tmp_path: Path
) -> None:
    manifest = apollo_manifest(tmp_path, HEALTH)
    api = await start_api(TRUSTED_DOCUMENTS=str(manifest), PERSISTED_QUERIES="off")
    ok = {"data": {"__typename": "Query"}}
    assert (await send(api, {"documentId": sha(HEALTH)}))[1] == ok
    assert (await send(api, {"query": "query Mine { __typename }"}))[1] == ok
    # APQ off but a manifest loaded: an unknown hash is not found (not "unsupported")
    assert code((await send(api, apq("query X { __typename }")))[1]) == (
        "PERSISTED_QUERY_NOT_FOUND"
    )


async def test_trusted_documents_skip_parse_and_validation(
    start_api: StartApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest = apollo_manifest(tmp_path, HEALTH)
    api = await start_api(TRUSTED_DOCUMENTS=str(manifest), TRUSTED_DOCUMENTS_MODE="only")

    def no_parsing(*args: Any) -> Any:
        raise AssertionError("a trusted document was parsed again")

    monkeypatch.setattr("schema.documents.parse_unlinked", no_parsing)
    monkeypatch.setattr("schema.limits.Limits.validate", no_parsing)
    for _ in range(3):
        assert (await send(api, {"documentId": sha(HEALTH)}))[1] == {
            "data": {"__typename": "Query"}
        }


async def test_log_and_metrics_carry_the_document_id_and_operation(
    start_api: StartApi, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    manifest = apollo_manifest(tmp_path, HEALTH)
    api = await start_api(TRUSTED_DOCUMENTS=str(manifest))
    with caplog.at_level(logging.INFO, logger="graphgate.access"):
        await send(api, {"documentId": sha(HEALTH)})
    access = [r for r in caplog.records if r.name == "graphgate.access"]
    assert getattr(access[-1], "document_id", None) == f"sha256:{sha(HEALTH)}"
    assert getattr(access[-1], "operation", None) == "Health"
    await send(api, apq("query Other { __typename }"))  # a refusal is counted too
    samples = await scrape(api)
    assert (
        value(
            samples,
            "graphgate_persisted_documents_total",
            source="manifest",
            document=f"sha256:{sha(HEALTH)}",
            operation="Health",
            outcome="ran",
        )
        == 1
    )
    assert (
        value(
            samples,
            "graphgate_persisted_documents_total",
            source="refused",
            document="",
            operation="anonymous",
            outcome="PERSISTED_QUERY_NOT_FOUND",
        )
        == 1
    )


async def test_a_manifest_with_an_invalid_document_refuses_to_start(
    start_api: StartApi, tmp_path: Path
) -> None:
    broken = "query Broken { me { noSuchField } }"
    manifest = apollo_manifest(tmp_path, HEALTH, broken)
    with pytest.raises(ManifestError, match=r"operation 'Broken' \(sha256:[0-9a-f]{16}…\)"):
        await start_api(TRUSTED_DOCUMENTS=str(manifest))


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("query Deep { me { id } " + "}" * 3, "does not parse"),
        ("fragment F on User { id }", "holds no operation"),
        ("query " + "A" * 10 + " { " + "__typename " * 50 + "}", "is invalid"),
    ],
)
async def test_manifest_documents_meet_the_request_limits(
    start_api: StartApi, tmp_path: Path, text: str, problem: str
) -> None:
    manifest = codegen_manifest(tmp_path, text)
    with pytest.raises(ManifestError, match=problem):
        await start_api(TRUSTED_DOCUMENTS=str(manifest), MAX_ALIASES="5")


def test_only_mode_needs_a_manifest(make_settings: Callable[..., Any]) -> None:
    with pytest.raises(SettingsError, match="TRUSTED_DOCUMENTS"):
        make_settings(TRUSTED_DOCUMENTS_MODE="only")


async def test_only_mode_holds_over_websockets_too(start_api: StartApi, tmp_path: Path) -> None:
    from tests.helpers.graphql import REGISTER
    from tests.helpers.sockets import bearer, open_socket

    me = "query Me { me { email } }"
    api = await start_api(
        TRUSTED_DOCUMENTS=str(codegen_manifest(tmp_path, me, REGISTER)),
        TRUSTED_DOCUMENTS_MODE="only",
    )
    token = (await api.register())["accessToken"]
    ws = await open_socket(api, bearer(token))
    assert await ws.receive_json(timeout=2) == {"type": "connection_ack"}
    await ws.send_json({"id": "t", "type": "subscribe", "payload": {"documentId": sha(me)}})
    message = await ws.receive_json(timeout=2)
    assert message["payload"]["data"] == {"me": {"email": "ada@example.com"}}
    assert (await ws.receive_json(timeout=2))["type"] == "complete"
    hand_written = "subscription { noteEvents { kind } }"
    await ws.send_json({"id": "h", "type": "subscribe", "payload": {"query": hand_written}})
    refused = await ws.receive_json(timeout=2)
    assert refused["type"] == "error" and refused["id"] == "h"
    assert refused["payload"][0]["extensions"]["code"] == "DOCUMENT_NOT_TRUSTED"
    await ws.close()


async def test_apq_documents_are_shared_by_replicas_through_redis(start_api: StartApi) -> None:
    import uuid

    from redis.asyncio import Redis

    from api.infra.docstore import REDIS_PREFIX
    from tests.helpers.env import redis_or_skip

    url = redis_or_skip()
    one = await start_api(REDIS_URL=url)
    other = await start_api(REDIS_URL=url)
    text = f"query Shared {{ __typename }} # {uuid.uuid4().hex}"  # no other run's document
    try:
        assert code((await send(other, apq(text)))[1]) == "PERSISTED_QUERY_NOT_FOUND"
        assert (await send(one, apq(text, with_query=True)))[1] == {"data": {"__typename": "Query"}}
        assert (await send(other, apq(text)))[1] == {"data": {"__typename": "Query"}}
    finally:
        redis = Redis.from_url(url)
        await redis.delete(REDIS_PREFIX + sha(text))
        await redis.aclose()


async def test_manifest_documents_meet_the_same_rules_as_requests(
    start_api: StartApi, tmp_path: Path
) -> None:
    introspection = "query Schema { __schema { queryType { name } } }"
    manifest = str(apollo_manifest(tmp_path, introspection))
    api = await start_api(TRUSTED_DOCUMENTS=manifest, INTROSPECTION="on")
    assert (await send(api, {"documentId": sha(introspection)}))[1] == {
        "data": {"__schema": {"queryType": {"name": "Query"}}}
    }
    with pytest.raises(ManifestError, match="operation 'Schema'"):
        await start_api(TRUSTED_DOCUMENTS=manifest, INTROSPECTION="off")
