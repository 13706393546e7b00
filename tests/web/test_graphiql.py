"""The GraphiQL page in-process: served only when on, strict CSP, every asset from this app."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

from tests.helpers.api import Api

HTML = {"Accept": "text/html"}


async def test_graphiql_page_loads_only_assets_this_app_serves(api: Api) -> None:
    resp = await api.client.get("/graphql", headers=HTML)
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/html")
    csp = resp.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp
    assert "default-src 'none'" in csp
    assert "unsafe-inline" not in csp
    assert "unsafe-eval" not in csp
    page = await resp.text()
    assert "<script>" not in page  # no inline script: the CSP would block it anyway
    refs = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert len(refs) >= 8
    for ref in refs:
        assert not ref.startswith(("http:", "https:", "//")), ref  # nothing from a CDN
        asset = await api.client.get(f"/{ref}")
        assert asset.status == 200, ref
        assert len(await asset.read()) > 0, ref
    # The page itself is served only by the view, with its policy, never as a bare file.
    assert (await api.client.get("/graphiql-assets/graphiql.html")).status == 404
    assert (await api.client.get("/graphiql-assets/../graphiql.html")).status == 404


async def test_graphiql_is_off_when_the_setting_is(
    start_api: Callable[..., Awaitable[Api]],
) -> None:
    api = await start_api(GRAPHIQL="off")
    resp = await api.client.get("/graphql", headers=HTML)
    assert resp.status == 404
    assert "graphiql" not in (await resp.text()).lower()
    resp = await api.client.get("/graphiql-assets/graphgate-graphiql.js")
    assert resp.status == 404


async def test_queries_still_answer_json_next_to_graphiql(api: Api) -> None:
    resp = await api.client.get(
        "/graphql", params={"query": "{ __typename }"}, headers={"Accept": "application/json"}
    )
    assert resp.status == 200
    assert (await resp.json())["data"] == {"__typename": "Query"}
