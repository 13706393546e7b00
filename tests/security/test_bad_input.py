"""The client's mistakes are answered as such: no 500, no traceback."""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import socket
import time
from typing import Any

import pytest

from tests.helpers.api import Api
from tests.helpers.graphql import REGISTER, code
from tests.helpers.live import live_server

CONTROL = ["\x00", "\x07", "\x1b", "\x7f", "\x85"]


async def test_a_subscription_over_http_is_a_request_error(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    status, body, _ = await api.post("subscription { noteEvents { kind } }")
    assert status == 400, body
    assert body.get("data") is None
    assert code(body) != "INTERNAL_SERVER_ERROR"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


@pytest.mark.parametrize("char", CONTROL, ids=[f"U+{ord(c):04X}" for c in CONTROL])
async def test_control_characters_in_variables_are_bad_user_input(
    api: Api, char: str, caplog: pytest.LogCaptureFixture
) -> None:
    for variables, field in (
        ({"email": f"a{char}b@example.com", "password": "correct horse"}, "email"),
        (
            {"email": "ok@example.com", "password": "correct horse", "displayName": f"A{char}"},
            "displayName",
        ),
        ({"email": "ok@example.com", "password": "correct horse", "device": f"d{char}"}, "device"),
    ):
        status, body, _ = await api.post(REGISTER, variables)
        assert status == 200, body
        assert body.get("data") is None, body
        (error,) = body["errors"]
        assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": field}, error
    pair = await api.register()
    create = "mutation($t: String!, $b: String!) { createNote(title: $t, body: $b) { id } }"
    for variables, field in (
        ({"t": f"x{char}", "b": "ok"}, "t"),
        ({"t": "ok", "b": f"{char}"}, "b"),
    ):
        status, body, _ = await api.post(create, variables, token=pair["accessToken"])
        assert body["errors"][0]["extensions"] == {"code": "BAD_USER_INPUT", "field": field}
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


async def test_control_characters_in_literals_are_bad_user_input(api: Api) -> None:
    query = (
        'mutation { login(email: "a\\u0000b@example.com", password: "xxxxxxxx") { accessToken } }'
    )
    _, body, _ = await api.post(query)
    assert body.get("data") is None, body
    assert body["errors"][0]["extensions"] == {"code": "BAD_USER_INPUT", "field": "email"}


LONG_NUMBERS = {
    "int-argument": ("{ notes(first: " + "9" * 5000 + ") { totalCount } }", "first"),
    "int-default": (
        "query($x: Int = " + "9" * 5000 + ") { notes(first: $x) { totalCount } }",
        "x",
    ),
    "float-argument": ("{ notes(first: " + "9" * 5000 + ".5) { totalCount } }", "first"),
}


@pytest.mark.parametrize(("query", "field"), list(LONG_NUMBERS.values()), ids=list(LONG_NUMBERS))
async def test_number_literals_too_long_to_convert_are_bad_user_input(
    api: Api, caplog: pytest.LogCaptureFixture, query: str, field: str
) -> None:
    """Python refuses int() of over 4,300 digits: that was a 500 and a traceback."""
    status, body, _ = await api.post(query)
    assert status == 200, body
    assert body.get("data") is None
    assert code(body) == "BAD_USER_INPUT", body
    assert body["errors"][0]["extensions"]["field"] == field
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


async def test_a_user_agent_that_is_not_utf8_is_stored_as_text(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    """aiohttp keeps the byte 0xff as a lone surrogate: that reached the database (a 500).
    U+0085 (NEL, UTF-8 c2 85) is a control character: dropped."""
    body = json.dumps(
        {"query": REGISTER, "variables": {"email": "ua@example.com", "password": "correct horse"}}
    ).encode()
    raw = (
        b"POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"User-Agent: curl\xff\xc2\x85/8\r\nConnection: close\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )
    server = api.client.server
    reader, writer = await asyncio.open_connection(server.host, server.port)
    writer.write(raw)
    answer = await reader.read()
    writer.close()
    head, _, payload = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), answer
    registered = json.loads(payload)
    assert "errors" not in registered, registered
    token = registered["data"]["register"]["accessToken"]
    sessions = await api.gql("{ mySessions { userAgent } }", token=token)
    assert sessions["data"]["mySessions"] == [{"userAgent": "curl\ufffd/8"}]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


async def test_tab_and_newlines_are_still_text(api: Api) -> None:
    pair = await api.register()
    create = "mutation($t: String!, $b: String!) { createNote(title: $t, body: $b) { body } }"
    body = await api.gql(create, {"t": "a\tb", "b": "line\r\nnext"}, token=pair["accessToken"])
    assert body["data"]["createNote"]["body"] == "line\r\nnext", body


@pytest.mark.live
@pytest.mark.parametrize(
    "raw",
    [
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header Name: 1\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Long: " + b"a" * 70_000 + b"\r\n\r\n",
        b"POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n",
    ],
    ids=["header-name", "header-too-long", "content-length"],
)
def test_a_malformed_request_logs_one_warning_and_no_traceback(tmp_path: Any, raw: bytes) -> None:
    """The client's fault: a 400, and at most one WARNING line - never aiohttp's traceback."""
    with live_server(tmp_path) as server:
        host, port = server.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=5) as sock:
            sock.sendall(raw)
            answer = sock.recv(200)
        assert answer.split(b"\r\n", 1)[0].endswith(b" 400 Bad Request"), answer
        time.sleep(0.3)  # let the server write its log line
        log = server.log()
    assert "Traceback" not in log and " ERROR " not in log, log
    assert log.count("malformed HTTP request refused") == 1, log


# (br: without the Brotli package aiohttp's parser itself answers 400 and closes.)
@pytest.mark.parametrize("encoding", ["gzip", "deflate", "x-anything"])
async def test_a_compressed_body_is_refused_without_reading_it(api: Api, encoding: str) -> None:
    """aiohttp would inflate it and, after the answer, drain the rest (1 MB of gzip: 1 GB, a
    worker stalled for seconds): 415 at once, and the connection closed, body unread."""
    start = gzip.compress(b'{"query": "{ __typename }", "x": "' + b"a" * 100_000)[:1000]
    head = (
        b"POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Encoding: " + encoding.encode() + b"\r\nContent-Length: 10000000\r\n\r\n"
    )
    server = api.client.server
    reader, writer = await asyncio.open_connection(server.host, server.port)
    writer.write(head + start)  # 1 KB of a 10 MB body, the rest never sent
    answer = await asyncio.wait_for(reader.read(), timeout=10)  # EOF: the server closed
    writer.close()
    assert answer.startswith(b"HTTP/1.1 415"), answer
    assert b"\r\nConnection: close\r\n" in answer, answer
    assert b"X-Content-Type-Options: nosniff" in answer, answer


async def test_identity_bodies_are_still_read(api: Api) -> None:
    status, body, _ = await api.post("{ __typename }", **{"Content-Encoding": "identity"})
    assert status == 200, body


@pytest.mark.parametrize(
    "query",
    [
        "{ notes(first: " + "[" * 2000 + "1" + "]" * 2000 + ") { totalCount } }",
        '{ user(id: "x") { id } } query Q($v: Int = '
        + "{a: " * 1500
        + "1"
        + "}" * 1500
        + ") { me { id } }",
        "{ " + "me { " * 1500 + "id" + " }" * 1500 + " }",
    ],
    ids=["list", "object", "selections"],
)
async def test_a_document_nested_too_deeply_is_a_syntax_error(
    api: Api, query: str, caplog: pytest.LogCaptureFixture
) -> None:
    """graphql-core's own words for it, not INTERNAL_SERVER_ERROR and a 2,000-line traceback."""
    with caplog.at_level(logging.WARNING):
        status, body, _ = await api.post(query)
    assert code(body) != "INTERNAL_SERVER_ERROR", body
    assert "nested too deeply" in body["errors"][0]["message"], body
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
