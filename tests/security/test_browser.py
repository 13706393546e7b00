"""What a browser sees: the refresh cookie, CORS, and the security headers of every response."""

from __future__ import annotations

import base64
import hashlib
import re
from http.cookies import SimpleCookie
from typing import Any

import pytest

from tests.helpers.api import Api, StartApi
from tests.helpers.graphql import LOGIN, ME, REFRESH, code

APP = "https://app.example.com"
COOKIE = "graphgate_refresh"


@pytest.fixture
async def cookie_api(start_api: StartApi) -> Api:
    return await start_api(REFRESH_COOKIE="on", CORS_ORIGINS=APP)


async def post_raw(api: Api, query: str, variables: dict[str, Any], **headers: str) -> Any:
    """POST without the client's cookie jar: every cookie sent is the one the test names."""
    api.client.session.cookie_jar.clear()
    return await api.client.post(
        "/graphql",
        json={"query": query, "variables": variables},
        headers={"Content-Type": "application/json", **headers},
    )


def set_cookie(resp: Any) -> tuple[str, str]:
    """(value, raw header) of the refresh cookie a response sets."""
    raw = [h for h in resp.headers.getall("Set-Cookie", []) if h.startswith(f"{COOKIE}=")]
    assert len(raw) == 1, resp.headers
    jar: SimpleCookie = SimpleCookie()
    jar.load(raw[0])
    return jar[COOKIE].value, raw[0]


async def cookie_login(api: Api) -> tuple[dict[str, Any], str]:
    await api.register()
    resp = await post_raw(api, LOGIN, {"email": "ada@example.com", "password": "correct horse"})
    body = await resp.json()
    assert "errors" not in body, body
    value, _ = set_cookie(resp)
    return body["data"]["login"], value


async def test_the_refresh_cookie_is_httponly_secure_strict_and_scoped(cookie_api: Api) -> None:
    await cookie_api.register()
    resp = await post_raw(
        cookie_api, LOGIN, {"email": "ada@example.com", "password": "correct horse"}
    )
    pair = (await resp.json())["data"]["login"]
    assert pair["refreshToken"] is None  # not readable by scripts: only in the cookie
    value, raw = set_cookie(resp)
    attributes = {part.strip().split("=")[0].lower(): part.strip() for part in raw.split(";")[1:]}
    assert "httponly" in attributes
    assert "secure" in attributes
    assert attributes["samesite"] == "SameSite=Strict"
    assert attributes["path"] == "Path=/graphql"
    assert attributes["max-age"] == f"Max-Age={pair['refreshExpiresIn']}"
    assert "domain" not in attributes  # host-only
    assert value.count(".") == 2
    assert resp.headers["Cache-Control"] == "no-store"


async def test_cookie_refresh_from_an_allowed_origin_rotates_the_cookie(cookie_api: Api) -> None:
    _, first = await cookie_login(cookie_api)
    resp = await post_raw(cookie_api, REFRESH, {}, Origin=APP, Cookie=f"{COOKIE}={first}")
    body = await resp.json()
    assert "errors" not in body, body
    assert body["data"]["refresh"]["refreshToken"] is None
    second, _ = set_cookie(resp)
    assert second != first
    assert resp.headers["Access-Control-Allow-Origin"] == APP
    assert resp.headers["Access-Control-Allow-Credentials"] == "true"
    access = body["data"]["refresh"]["accessToken"]
    assert code(await cookie_api.gql(ME, token=access)) is None
    # The first cookie is spent: presenting it again is reuse.
    again = await post_raw(cookie_api, REFRESH, {}, Origin=APP, Cookie=f"{COOKIE}={first}")
    assert code(await again.json()) == "REFRESH_TOKEN_REUSED"


@pytest.mark.parametrize(
    "origin", [None, "https://evil.example", "null", "https://app.example.com.evil.example"]
)
async def test_cookie_refresh_from_a_missing_or_other_origin_is_forbidden(
    cookie_api: Api, origin: str | None
) -> None:
    _, cookie = await cookie_login(cookie_api)
    headers = {"Cookie": f"{COOKIE}={cookie}"}
    if origin is not None:
        headers["Origin"] = origin
    resp = await post_raw(cookie_api, REFRESH, {}, **headers)
    body = await resp.json()
    assert code(body) == "FORBIDDEN"
    assert body["data"] is None
    assert not [h for h in resp.headers.getall("Set-Cookie", []) if h.startswith(COOKIE)]
    assert "Access-Control-Allow-Origin" not in resp.headers
    # Nothing was spent: the owner's page refreshes fine afterwards.
    ok = await post_raw(cookie_api, REFRESH, {}, Origin=APP, Cookie=f"{COOKIE}={cookie}")
    assert "errors" not in await ok.json()


async def test_cookie_refresh_needs_a_json_request(cookie_api: Api) -> None:
    """A cross-site form or text/plain POST carries the cookie: it must spend nothing."""
    _, cookie = await cookie_login(cookie_api)
    cookie_api.client.session.cookie_jar.clear()
    for content_type, data in (
        ("application/x-www-form-urlencoded", f"query={REFRESH}"),
        ("text/plain", '{"query": "mutation { refresh { accessToken } }"}'),
    ):
        resp = await cookie_api.client.post(
            "/graphql",
            data=data,
            headers={"Content-Type": content_type, "Origin": APP, "Cookie": f"{COOKIE}={cookie}"},
        )
        assert 400 <= resp.status < 500
        assert "accessToken" not in await resp.text()
    ok = await post_raw(cookie_api, REFRESH, {}, Origin=APP, Cookie=f"{COOKIE}={cookie}")
    assert "errors" not in await ok.json()


async def test_logout_clears_the_cookie(cookie_api: Api) -> None:
    pair, cookie = await cookie_login(cookie_api)
    resp = await post_raw(
        cookie_api, "mutation { logout }", {}, Authorization=f"Bearer {pair['accessToken']}"
    )
    assert (await resp.json()) == {"data": {"logout": True}}
    value, raw = set_cookie(resp)
    assert value == ""
    assert "Max-Age=0" in raw or "expires=Thu, 01 Jan 1970" in raw
    assert "Path=/graphql" in raw
    after = await post_raw(cookie_api, REFRESH, {}, Origin=APP, Cookie=f"{COOKIE}={cookie}")
    assert code(await after.json()) == "TOKEN_REVOKED"


async def test_cors_preflight_only_for_listed_origins(cookie_api: Api) -> None:
    request_headers = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type",
    }
    resp = await cookie_api.client.options("/graphql", headers={"Origin": APP, **request_headers})
    assert resp.status in (200, 204)
    assert resp.headers["Access-Control-Allow-Origin"] == APP
    assert resp.headers["Access-Control-Allow-Credentials"] == "true"
    allowed = resp.headers["Access-Control-Allow-Headers"].lower()
    assert "authorization" in allowed
    assert "content-type" in allowed
    assert "Origin" in resp.headers.get("Vary", "")
    for origin in ("https://evil.example", "null", "http://app.example.com"):
        resp = await cookie_api.client.options(
            "/graphql", headers={"Origin": origin, **request_headers}
        )
        assert not [h for h in resp.headers if h.lower().startswith("access-control-")], origin
        # An actual request from there gets an answer a browser will not hand to the page.
        resp = await cookie_api.client.post(
            "/graphql", json={"query": "{ __typename }"}, headers={"Origin": origin}
        )
        assert not [h for h in resp.headers if h.lower().startswith("access-control-")], origin
    assert "*" not in str(resp.headers.get("Access-Control-Allow-Origin", ""))


REQUESTS = [
    ("GET", "/healthz", None, {}),
    ("GET", "/readyz", None, {}),
    ("GET", "/.well-known/jwks.json", None, {}),
    ("GET", "/no-such-page", None, {}),
    ("POST", "/graphql", {"query": "{ __typename }"}, {}),
    ("POST", "/graphql", {"query": "{ me { id } }"}, {"Authorization": "Bearer x"}),
    ("POST", "/graphql", [{"query": "{ __typename }"}] * 2, {}),
    ("POST", "/graphql", None, {"Content-Type": "text/plain"}),
    ("GET", "/graphql", None, {"Accept": "text/html"}),
    ("GET", "/graphql?query={__typename}", None, {}),
    ("PUT", "/graphql", None, {}),
    (
        "OPTIONS",
        "/graphql",
        None,
        {"Origin": APP, "Access-Control-Request-Method": "POST"},
    ),
    (
        "OPTIONS",
        "/graphql",
        None,
        {"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    ),
]


@pytest.mark.parametrize("env", ["production", "development"])
async def test_security_headers_on_every_response(start_api: StartApi, env: str) -> None:
    api = await start_api(APP_ENV=env, CORS_ORIGINS=APP)
    for method, path, body, headers in REQUESTS:
        resp = await api.client.request(method, path, json=body, headers=headers)
        where = f"{method} {path} {headers} -> {resp.status}"
        assert resp.headers.get("X-Content-Type-Options") == "nosniff", where
        assert resp.headers.get("X-Frame-Options") == "DENY", where
        assert resp.headers.get("Referrer-Policy") == "no-referrer", where
        assert "frame-ancestors 'none'" in resp.headers.get("Content-Security-Policy", ""), where
        if path.startswith("/graphql"):
            assert resp.headers.get("Cache-Control") == "no-store", where


async def test_token_answers_are_never_cached(api: Api) -> None:
    await api.register()
    _status, body, headers = await api.post(
        LOGIN, {"email": "ada@example.com", "password": "correct horse"}
    )
    assert body["data"]["login"]["accessToken"]
    assert headers["Cache-Control"] == "no-store"


async def test_graphiql_has_a_content_security_policy(api: Api) -> None:
    """Development's GraphiQL page: its inline script is allowed by hash, nothing else is."""
    resp = await api.client.get("/graphql", headers={"Accept": "text/html"})
    assert resp.status == 200
    html = await resp.text()
    csp = resp.headers["Content-Security-Policy"]
    directives = dict(
        ([*part.strip().split(" ", 1), ""])[:2] for part in csp.split(";") if part.strip()
    )
    assert directives["default-src"] == "'none'"
    assert directives["frame-ancestors"] == "'none'"
    assert "'unsafe-inline'" not in directives["script-src"]
    assert "'unsafe-eval'" not in directives["script-src"]
    for src in re.findall(r'<script[^>]*\bsrc="(https://[^/"]+)/', html):
        assert src in directives["script-src"]
    for inline in re.findall(r"<script>(.*?)</script>", html, re.S):
        digest = base64.b64encode(hashlib.sha256(inline.encode()).digest()).decode()
        assert f"'sha256-{digest}'" in directives["script-src"]
    assert "'self'" in directives["connect-src"]
