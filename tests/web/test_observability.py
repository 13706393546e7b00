"""/metrics, request ids and log lines: what an operator scrapes and searches."""

from __future__ import annotations

import json
import logging
import urllib.parse
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from api.infra.metrics import MAX_OPERATION_NAMES, Metrics
from tests.helpers.api import Api
from tests.helpers.graphql import LOGIN, ME, REFRESH, REGISTER, code
from tests.helpers.live import live_server
from tests.helpers.metrics import scrape, value

PASSWORD = "correct horse battery"


async def test_metrics_count_operations_logins_refreshes_reuse_and_revocations(api: Api) -> None:
    pair = await api.register(password=PASSWORD)
    await api.login(password=PASSWORD)
    failed = await api.gql(LOGIN, {"email": "ada@example.com", "password": "wrong password"})
    assert code(failed) == "INVALID_CREDENTIALS"
    second = (await api.refresh(pair["refreshToken"]))["data"]["refresh"]
    assert code(await api.refresh(pair["refreshToken"])) == "REFRESH_TOKEN_REUSED"
    assert second["accessToken"]
    mine = await api.login(password=PASSWORD)
    await api.gql("query Who { me { email } }", token=mine["accessToken"])
    await api.gql("mutation Bye { logout }", token=mine["accessToken"])

    samples = await scrape(api)
    assert value(samples, "graphgate_logins_total", outcome="ok") == 2
    assert value(samples, "graphgate_logins_total", outcome="failed") == 1
    assert value(samples, "graphgate_token_refreshes_total") == 1
    assert value(samples, "graphgate_refresh_reuse_detected_total") == 1
    assert value(samples, "graphgate_sessions_revoked_total", reason="reuse") == 1
    assert value(samples, "graphgate_sessions_revoked_total", reason="logout") == 1
    ok = {"operation": "Who", "type": "query", "outcome": "ok"}
    assert value(samples, "graphgate_graphql_requests_total", **ok) == 1
    assert (
        value(
            samples,
            "graphgate_graphql_requests_total",
            operation="Bye",
            type="mutation",
            outcome="ok",
        )
        == 1
    )
    # The failed login and the reused refresh: anonymous mutations, counted as errors.
    assert (
        value(
            samples,
            "graphgate_graphql_requests_total",
            operation="anonymous",
            type="mutation",
            outcome="error",
        )
        == 2
    )
    count = value(
        samples, "graphgate_graphql_request_duration_seconds_count", operation="Who", type="query"
    )
    assert count == 1
    assert (
        value(
            samples, "graphgate_http_requests_total", method="POST", route="/graphql", status="200"
        )
        >= 8
    )


async def test_rate_limit_hits_are_counted(start_api: Callable[..., Awaitable[Api]]) -> None:
    api = await start_api(RATE_LIMIT_PER_EMAIL="2 per minute")
    # An email with no session from this IP: the owner's-IP exemption does not apply.
    answers = [
        await api.gql(LOGIN, {"email": "nobody@example.com", "password": "wrong password"})
        for _ in range(4)
    ]
    limited = sum(code(body) == "RATE_LIMITED" for body in answers)
    assert limited == 2
    assert value(await scrape(api), "graphgate_rate_limit_hits_total") == limited


def test_operation_labels_are_bounded() -> None:
    metrics = Metrics()
    names = [metrics.operation_label(f"Op{n}") for n in range(MAX_OPERATION_NAMES + 50)]
    assert len(set(names)) == MAX_OPERATION_NAMES + 1
    assert names[-1] == "other"
    assert metrics.operation_label("Op1") == "Op1"
    assert metrics.operation_label(None) == "anonymous"
    assert metrics.operation_label("bad name\n") == "invalid"


async def test_metrics_token_guards_the_endpoint(start_api: Callable[..., Awaitable[Api]]) -> None:
    api = await start_api(METRICS_TOKEN="scrape-me-please-0123456789")
    assert (await api.client.get("/metrics")).status == 401
    wrong = await api.client.get("/metrics", headers={"Authorization": "Bearer nope"})
    assert wrong.status == 401
    await scrape(api, Authorization="Bearer scrape-me-please-0123456789")


async def test_request_id_is_echoed_or_made(api: Api) -> None:
    status, _, headers = await api.post(ME, **{"X-Request-ID": "trace-42.a:b"})
    assert status == 200
    assert headers["X-Request-ID"] == "trace-42.a:b"
    _, _, headers = await api.post(ME, **{"X-Request-ID": "no spaces please " * 3})
    made = headers["X-Request-ID"]
    assert len(made) == 32
    assert " " not in made
    _, _, other = await api.post(ME)
    assert other["X-Request-ID"] != made
    resp = await api.client.get("/nowhere")
    assert resp.status == 404
    assert resp.headers["X-Request-ID"]


async def test_access_log_carries_request_operation_and_user(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    pair = await api.register(password=PASSWORD)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="graphgate.access"):
        await api.post(
            "query Who { me { id } }", token=pair["accessToken"], **{"X-Request-ID": "req-1"}
        )
    (record,) = [r for r in caplog.records if r.name == "graphgate.access"]
    assert record.request_id == "req-1"  # type: ignore[attr-defined]
    assert record.operation == "Who"  # type: ignore[attr-defined]
    assert record.operation_type == "query"  # type: ignore[attr-defined]
    assert record.user_id == pair["user"]["id"]  # type: ignore[attr-defined]
    assert record.status == 200  # type: ignore[attr-defined]
    assert record.duration_ms >= 0  # type: ignore[attr-defined]


@pytest.mark.live
def test_json_log_lines_never_carry_tokens_or_passwords(tmp_path: Path) -> None:
    with live_server(tmp_path, LOG_FORMAT="json") as server:
        pair = server.gql(REGISTER, {"email": "ada@example.com", "password": PASSWORD})["data"][
            "register"
        ]
        again = server.gql(LOGIN, {"email": "ada@example.com", "password": PASSWORD})["data"][
            "login"
        ]
        wrong = server.gql(LOGIN, {"email": "ada@example.com", "password": PASSWORD + "!"})
        assert code(wrong) == "INVALID_CREDENTIALS"
        rotated = server.gql(REFRESH, {"t": pair["refreshToken"]})["data"]["refresh"]
        assert code(server.gql(REFRESH, {"t": pair["refreshToken"]})) == "REFRESH_TOKEN_REUSED"
        assert "errors" not in server.gql(ME, token=again["accessToken"])
        server.gql(ME, token=pair["accessToken"] + "tampered")
        # A password in a GET query string: the URL must not reach the log either.
        query = urllib.parse.urlencode(
            {"query": "query Leak { __typename }", "variables": json.dumps({"p": PASSWORD})}
        )
        with urllib.request.urlopen(f"{server.graphql}?{query}", timeout=10) as resp:
            assert resp.status == 200
        server.gql("mutation Bye { logout }", token=again["accessToken"])
        log = server.log()

    lines = [line for line in log.splitlines() if line.strip()]
    entries = [json.loads(line) for line in lines]  # every line is one JSON object
    access = [e for e in entries if e["logger"] == "graphgate.access"]
    assert len(access) >= 9
    for entry in access:
        assert {"time", "level", "logger", "message", "request_id", "duration_ms"} <= set(entry)
    me_lines = [e for e in access if e.get("user_id") == again["user"]["id"]]
    assert any(e.get("operation") == "Bye" for e in me_lines)
    secrets = [
        PASSWORD,
        pair["accessToken"],
        pair["refreshToken"],
        again["accessToken"],
        again["refreshToken"],
        rotated["accessToken"],
        rotated["refreshToken"],
    ]
    for secret in secrets:
        assert secret not in log
        # A JWT's signature alone would be a leak too.
        assert secret.rsplit(".", 1)[-1] not in log


async def test_rate_limited_answers_are_counted_whichever_limiter_raised_them() -> None:
    import strawberry

    from api.errors import RateLimitedError
    from api.infra.logs import RequestScope, enter_scope, leave_scope
    from schema.telemetry import RequestTelemetry

    @strawberry.type
    class Query:
        @strawberry.field
        def limited(self) -> str:
            raise RateLimitedError(retry_after=30)

    class Services:
        metrics = Metrics()

    class Context:
        services = Services()
        viewer = None

    schema = strawberry.Schema(query=Query, extensions=[RequestTelemetry])
    scope = RequestScope("r1")
    token = enter_scope(scope)
    try:
        result = await schema.execute("query Hot { limited }", context_value=Context())
    finally:
        leave_scope(token)
    assert result.errors
    assert Services.metrics.registry.get_sample_value("graphgate_rate_limit_hits_total") == 1
    assert scope.operation == "Hot"
    assert scope.graphql_ok is False


@pytest.mark.live
def test_metrics_sum_every_worker(tmp_path: Path) -> None:
    with live_server(tmp_path, "--workers", "2") as server:
        for _ in range(12):  # a new connection each: the kernel spreads them over the workers
            assert "errors" not in server.gql("query Ping { __typename }")
        for _ in range(4):  # whichever worker answers the scrape reports the sum
            with urllib.request.urlopen(f"{server.url}/metrics", timeout=10) as resp:
                text = resp.read().decode()
            samples = {
                (s.name, tuple(sorted(s.labels.items()))): s.value
                for family in text_string_to_metric_families(text)
                for s in family.samples
            }
            ping = {"operation": "Ping", "type": "query", "outcome": "ok"}
            assert value(samples, "graphgate_graphql_requests_total", **ping) == 12
