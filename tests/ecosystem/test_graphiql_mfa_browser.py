"""GraphiQL's sign-in panel with two-factor sign-in, in a real headless Chromium: the
password step answers MFA_REQUIRED, the panel asks for the code, a wrong code is told and
may be retried, the right one (computed by pyotp, like a phone) signs in."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pyotp
import pytest

from tests.ecosystem.test_graphiql_browser import (
    CHROMIUM,
    CHROMIUM_ARGS,
    HEADERS_JS,
    RESPONSE_HAS_JS,
    _bearer,
    _playwright_or_skip,
    run_query,
)
from tests.helpers.graphql import REGISTER
from tests.helpers.live import live_server
from tests.helpers.mfa import CONFIRM, START, amr

pytestmark = [pytest.mark.live, pytest.mark.browser]  # a real server and Chromium


def test_graphiql_asks_for_the_code_when_login_answers_mfa_required(tmp_path: Path) -> None:
    sync_playwright = _playwright_or_skip()
    with live_server(tmp_path) as server:
        pair = server.gql(REGISTER, {"email": "ada@example.com", "password": "correct horse"})
        token = pair["data"]["register"]["accessToken"]
        secret = server.gql(START, token=token)["data"]["startTotpEnrollment"]["secret"]
        app = pyotp.TOTP(secret)
        # The previous step's code (one step of skew is accepted): the current one stays new.
        confirmed = server.gql(CONFIRM, {"c": app.at(time.time() - 30)}, token=token)
        assert "errors" not in confirmed, confirmed

        problems: list[str] = []
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1280, "height": 720})
                page.on("pageerror", lambda e: problems.append(str(e)))
                page.goto(server.graphql)
                page.wait_for_selector(".graphiql-query-editor .CodeMirror", timeout=20_000)

                page.fill("#gg-email", "ada@example.com")
                page.fill("#gg-password", "correct horse")
                page.click("#gg-signin")
                page.wait_for_selector(".gg-code:not([hidden])", timeout=10_000)
                assert page.is_hidden(".gg-signed-in")
                assert "authenticator app" in (page.text_content("#gg-status") or "")

                page.fill("#gg-code", "000000")
                page.click("#gg-verify")
                page.wait_for_function(
                    "() => document.querySelector('#gg-status').textContent"
                    ".includes('INVALID_CREDENTIALS')",
                    timeout=10_000,
                )
                assert page.is_visible("#gg-code")  # a wrong code may be retried

                page.fill("#gg-code", app.now())
                page.click("#gg-verify")
                page.wait_for_selector(".gg-signed-in:not([hidden])", timeout=10_000)
                assert page.text_content("#gg-who") == "ada@example.com"
                bearer: Any = _bearer(page.evaluate(HEADERS_JS))
                assert bearer and amr(bearer) == ["pwd", "otp", "mfa"]
                run_query(page, "{ me { mfa { totpEnabled recoveryCodesLeft } } }")
                page.wait_for_function(RESPONSE_HAS_JS, arg='"totpEnabled": true', timeout=10_000)
            finally:
                browser.close()
    assert problems == [], problems
