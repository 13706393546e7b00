"""GraphiQL in a real headless Chromium: offline assets, the sign-in panel, refresh, sign out.

Uses Debian's `chromium` driven by Playwright for Python (no `playwright install`: the
browser is the system one, given by path). Skipped, with the reason, when either is missing.
The screenshot lands in artifacts/graphiql-signin.png; with UPDATE_DOCS_SCREENSHOT=1 it also
replaces docs/graphiql-signin.png, the one docs/ecosystem.md shows.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.helpers.env import ROOT
from tests.helpers.graphql import REFRESH, REGISTER, code
from tests.helpers.live import live_server

pytestmark = [
    pytest.mark.live,
    pytest.mark.browser,
]  # starts real server processes (see pyproject markers)

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACT = ROOT / "artifacts" / "graphiql-signin.png"
DOCS_SCREENSHOT = ROOT / "docs" / "graphiql-signin.png"

# CodeMirror keeps its editor object on the element: read and write the editors directly.
# (Functions, not expression strings: the page's CSP forbids eval, which strings would need.)
HEADERS = ".graphiql-editor-tool .graphiql-editor .CodeMirror"
HEADERS_JS = f"""() => [...document.querySelectorAll('{HEADERS}')]
  .map((e) => e.CodeMirror.getValue()).join(' ')"""
SET_QUERY_JS = """(q) => document.querySelector('.graphiql-query-editor .CodeMirror')
  .CodeMirror.setValue(q)"""
RESPONSE = ".result-window .CodeMirror"
RESPONSE_HAS_JS = f"""(needle) => document.querySelector('{RESPONSE}')
  .CodeMirror.getValue().includes(needle)"""
HEADERS_LACK_JS = f"""(needle) => ![...document.querySelectorAll('{HEADERS}')]
  .some((e) => e.CodeMirror.getValue().includes(needle))"""
RESPONSE_JS = f"""() => document.querySelector('{RESPONSE}').CodeMirror.getValue()"""


def _playwright_or_skip() -> Any:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium; .ci/setup-node does)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed (pip install -e '.[test]')")
    return sync_playwright


def run_query(page: Any, query: str) -> None:
    """Type a query into GraphiQL and press its run button, as a person would."""
    page.evaluate(SET_QUERY_JS, query)
    # GraphiQL reads the operation name from the editor 100 ms after a change (debounced).
    page.wait_for_timeout(300)
    page.click(".graphiql-execute-button")


def _bearer(headers_text: str) -> str | None:
    marker = '"Authorization": "Bearer '
    if marker not in headers_text:
        return None
    return headers_text.split(marker, 1)[1].split('"', 1)[0]


def test_graphiql_signs_in_runs_me_refreshes_and_signs_out(tmp_path: Path) -> None:
    sync_playwright = _playwright_or_skip()
    # A 4 s access token: the panel must refresh it (at 80% of its life) while we watch.
    with live_server(tmp_path, ACCESS_TOKEN_TTL="4") as server:
        body = server.gql(REGISTER, {"email": "ada@example.com", "password": "correct horse"})
        assert "errors" not in body, body

        outside: list[str] = []
        problems: list[str] = []
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1280, "height": 720})

                def only_this_server(route: Any) -> None:
                    # Proof of "no internet needed": anything not on this server is refused.
                    if urlsplit(route.request.url).netloc != urlsplit(server.url).netloc:
                        outside.append(route.request.url)
                        route.abort()
                    else:
                        route.continue_()

                page.route("**/*", only_this_server)
                page.on(
                    "console",
                    lambda m: problems.append(m.text) if m.type in ("error", "warning") else None,
                )
                page.on("pageerror", lambda e: problems.append(str(e)))

                response = page.goto(server.graphql)
                assert response is not None
                assert "script-src 'self'" in response.headers["content-security-policy"]
                page.wait_for_selector(".graphiql-query-editor .CodeMirror", timeout=20_000)

                page.fill("#gg-email", "ada@example.com")
                page.fill("#gg-password", "correct horse")
                page.click("#gg-signin")
                page.wait_for_selector(".gg-signed-in:not([hidden])", timeout=10_000)
                assert page.text_content("#gg-who") == "ada@example.com"
                first = _bearer(page.evaluate(HEADERS_JS))
                assert first, page.evaluate(HEADERS_JS)

                run_query(page, "{ me { email } }")
                page.wait_for_function(RESPONSE_HAS_JS, arg="ada@example.com", timeout=10_000)
                assert '"email": "ada@example.com"' in page.evaluate(RESPONSE_JS)
                ARTIFACT.parent.mkdir(exist_ok=True)
                page.screenshot(path=str(ARTIFACT))
                if os.environ.get("UPDATE_DOCS_SCREENSHOT") == "1":
                    shutil.copyfile(ARTIFACT, DOCS_SCREENSHOT)

                # The panel refreshes before expiry and swaps the header for the new token.
                page.wait_for_function(HEADERS_LACK_JS, arg=first, timeout=10_000)
                second = _bearer(page.evaluate(HEADERS_JS))
                assert second
                assert second != first
                run_query(page, "{ me { email roles } }")
                page.wait_for_function(RESPONSE_HAS_JS, arg="roles", timeout=10_000)
                assert '"email": "ada@example.com"' in page.evaluate(RESPONSE_JS)

                refresh_token = page.evaluate(
                    "() => sessionStorage.getItem('graphgate.refreshToken')"
                )
                assert refresh_token
                page.click("#gg-signout")
                page.wait_for_selector(".gg-signed-out:not([hidden])", timeout=10_000)
                assert _bearer(page.evaluate(HEADERS_JS)) is None
                run_query(page, "{ me { email } }")
                page.wait_for_function(RESPONSE_HAS_JS, arg="UNAUTHENTICATED", timeout=10_000)
            finally:
                browser.close()

        # Signed out on the server too: the session's refresh token no longer works.
        after = server.gql(REFRESH, {"t": refresh_token})
        assert code(after) == "TOKEN_REVOKED", after
    assert outside == [], f"the page tried to leave the server: {outside}"
    assert problems == [], problems
