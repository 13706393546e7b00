"""Passkeys in GraphiQL's sign-in panel, in a real headless Chromium whose authenticator is a
virtual one (the DevTools protocol's WebAuthn domain): adding a passkey, signing in with it and
no password, using it as the second factor after a password, and a removed one refused.

WebAuthn refuses an IP address as relying party id, so the page is served as
http://localhost:<port> (a secure context) with WEBAUTHN_RP_ID=localhost; the port is chosen
before the server starts because WEBAUTHN_ORIGINS names it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.ecosystem.test_graphiql_browser import (
    CHROMIUM,
    CHROMIUM_ARGS,
    HEADERS_JS,
    HEADERS_LACK_JS,
    RESPONSE_HAS_JS,
    RESPONSE_JS,
    _bearer,
    _playwright_or_skip,
    run_query,
)
from tests.helpers.graphql import LOGIN, REGISTER
from tests.helpers.live import LiveServer, free_port, run_cli, server_env
from tests.helpers.mfa import amr

pytestmark = [pytest.mark.live, pytest.mark.browser]  # a real server and Chromium

MY_PASSKEYS = "{ myPasskeys { id name createdAt lastUsedAt } }"
REMOVE = "mutation($id: ID!) { removePasskey(id: $id) }"
USERS = "{ users { edges { node { email } } } }"

# A platform authenticator that keeps discoverable credentials and verifies its user (the
# fingerprint or PIN a phone or laptop would ask for) without asking anyone.
AUTHENTICATOR = {
    "protocol": "ctap2",
    "transport": "internal",
    "hasResidentKey": True,
    "hasUserVerification": True,
    "isUserVerified": True,
}
# Every button of the panel clears the status line, and every outcome writes it.
STATUS_SET_JS = "() => document.querySelector('#gg-status').textContent !== ''"
SIGNED_IN = ".gg-signed-in:not([hidden])"
SIGNED_OUT = ".gg-signed-out:not([hidden])"


@contextmanager
def passkey_server(tmp_path: Path, **env: str) -> Iterator[LiveServer]:
    """A live server whose relying party is http://localhost:<its port>."""
    port = free_port()
    origin = {"WEBAUTHN_RP_ID": "localhost", "WEBAUTHN_ORIGINS": f"http://localhost:{port}"}
    server = LiveServer(server_env(tmp_path, **origin, **env), tmp_path, port=port)
    try:
        yield server.wait_ready()
    finally:
        server.stop()


@dataclass
class Panel:
    """The GraphiQL page, the DevTools session that holds its virtual authenticator, and the
    page's uncaught errors."""

    page: Any
    cdp: Any
    authenticator: str
    problems: list[str]

    def credentials(self) -> list[dict[str, Any]]:
        """What the authenticator holds."""
        held = self.cdp.send("WebAuthn.getCredentials", {"authenticatorId": self.authenticator})
        return held["credentials"]  # type: ignore[no-any-return]

    def bearer(self) -> str:
        """The access token the panel put into GraphiQL's headers."""
        token = _bearer(self.page.evaluate(HEADERS_JS))
        assert token, self.page.evaluate(HEADERS_JS)
        return token

    def press(self, button: str) -> str:
        """Click a button of the panel and wait for the outcome: the status line."""
        self.page.click(button)
        self.page.wait_for_function(STATUS_SET_JS, timeout=10_000)
        return self.page.text_content("#gg-status") or ""

    def password_step(self, email: str, password: str) -> str:
        self.page.fill("#gg-email", email)
        self.page.fill("#gg-password", password)
        return self.press("#gg-signin")

    def signed_in(self) -> bool:
        return bool(self.page.is_visible(SIGNED_IN))

    def sign_out(self) -> None:
        self.page.click("#gg-signout")
        self.page.wait_for_selector(SIGNED_OUT, timeout=10_000)


@contextmanager
def passkey_panel(server: LiveServer, host: str = "localhost") -> Iterator[Panel]:
    """Chromium with a virtual authenticator, on the server's GraphiQL page at `host`."""
    sync_playwright = _playwright_or_skip()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 720})
            page = context.new_page()
            problems: list[str] = []
            page.on("pageerror", lambda e: problems.append(str(e)))
            cdp = context.new_cdp_session(page)
            cdp.send("WebAuthn.enable")
            added = cdp.send("WebAuthn.addVirtualAuthenticator", {"options": AUTHENTICATOR})
            page.goto(f"http://{host}:{server.port}/graphql")
            page.wait_for_selector(".graphiql-query-editor .CodeMirror", timeout=20_000)
            yield Panel(page, cdp, added["authenticatorId"], problems)
        finally:
            browser.close()


def _passkey_amr(token: str) -> list[str]:
    """The token's `amr`, asserting it names a passkey (hardware- or software-kept) and mfa."""
    methods = amr(token)
    assert "mfa" in methods, methods
    assert {"hwk", "swk"} & set(methods), methods
    return methods


def test_graphiql_adds_a_passkey_signs_in_with_it_and_uses_it_after_a_password(
    tmp_path: Path,
) -> None:
    # A 6 s access token: the panel refreshes a passkey session while we watch.
    with passkey_server(tmp_path, ACCESS_TOKEN_TTL="6") as server:
        body = server.gql(REGISTER, {"email": "ada@example.com", "password": "correct horse"})
        assert "errors" not in body, body

        with passkey_panel(server) as panel:
            page = panel.page
            line = panel.password_step("ada@example.com", "correct horse")
            assert panel.signed_in(), line

            # Add a passkey: the authenticator keeps a discoverable credential, the server
            # lists it.
            line = panel.press("#gg-passkey-add")
            assert line.startswith("Passkey added"), line
            held = panel.credentials()
            assert len(held) == 1 and held[0]["isResidentCredential"], held
            listed = server.gql(MY_PASSKEYS, token=panel.bearer())
            assert "errors" not in listed, listed
            assert len(listed["data"]["myPasskeys"]) == 1, listed
            panel.sign_out()

            # No email, no password: the authenticator offers the passkey it holds.
            page.fill("#gg-email", "")
            page.fill("#gg-password", "")
            line = panel.press("#gg-passkey-signin")
            assert line == "Signed in with a passkey" and panel.signed_in(), line
            assert page.text_content("#gg-who") == "ada@example.com"
            first = panel.bearer()
            methods = _passkey_amr(first)
            assert "pwd" not in methods
            assert page.evaluate("() => sessionStorage.getItem('graphgate.refreshToken')")
            # As after a password: the panel refreshes before expiry; the session keeps its amr.
            page.wait_for_function(HEADERS_LACK_JS, arg=first, timeout=10_000)
            assert amr(panel.bearer()) == methods
            run_query(page, "{ me { email } }")
            page.wait_for_function(RESPONSE_HAS_JS, arg="ada@example.com", timeout=10_000)
            panel.sign_out()

            # The password alone is not enough any more: the code step offers the passkey.
            line = panel.password_step("ada@example.com", "correct horse")
            assert "passkey" in line, line
            assert page.is_visible("#gg-passkey-verify")
            assert not panel.signed_in()
            line = panel.press("#gg-passkey-verify")
            assert panel.signed_in(), line
            both = _passkey_amr(panel.bearer())
            assert both[0] == "pwd", both

            # Removed on the server (a fresh token: this sign-in), the passkey the
            # authenticator still holds is refused, and the panel says so.
            token = panel.bearer()
            passkey_id = server.gql(MY_PASSKEYS, token=token)["data"]["myPasskeys"][0]["id"]
            removed = server.gql(REMOVE, {"id": passkey_id}, token=token)
            assert removed.get("data") == {"removePasskey": True}, removed
            assert server.gql(MY_PASSKEYS, token=token)["data"] == {"myPasskeys": []}
            if page.is_visible("#gg-signout"):  # unless the removal ended the session
                panel.sign_out()
            page.wait_for_selector(SIGNED_OUT, timeout=10_000)
            page.fill("#gg-email", "")
            line = panel.press("#gg-passkey-signin")
            assert line.startswith("Passkey sign-in refused"), line
            assert "INVALID_CREDENTIALS" in line, line
            assert not panel.signed_in()
            # And the password alone signs in again.
            again = server.gql(LOGIN, {"email": "ada@example.com", "password": "correct horse"})
            assert "errors" not in again, again
    assert panel.problems == [], panel.problems


def test_an_admin_who_must_use_a_second_factor_can_use_a_passkey(tmp_path: Path) -> None:
    with passkey_server(tmp_path, MFA_REQUIRED_ROLES="admin") as server:
        run_cli(
            server.env,
            tmp_path,
            *("create-user", "root@example.com", "--role", "user", "--role", "admin"),
            "--password-stdin",
            stdin="admin password\n",
        )
        with passkey_panel(server) as panel:
            page = panel.page
            # The password alone: signed in, but the admin fields want a second factor.
            line = panel.password_step("root@example.com", "admin password")
            assert panel.signed_in(), line
            run_query(page, USERS)
            page.wait_for_function(
                RESPONSE_HAS_JS, arg="INSUFFICIENT_AUTHENTICATION", timeout=10_000
            )
            assert '"enrolled": false' in page.evaluate(RESPONSE_JS)

            # Adding a passkey stays reachable for that admin (like TOTP enrolment); it counts
            # from the next sign-in.
            line = panel.press("#gg-passkey-add")
            assert line.startswith("Passkey added"), line
            run_query(page, USERS)
            page.wait_for_function(RESPONSE_HAS_JS, arg='"enrolled": true', timeout=10_000)
            panel.sign_out()

            # The passkey (this time for a typed email) satisfies MFA_REQUIRED_ROLES.
            page.fill("#gg-email", "root@example.com")
            line = panel.press("#gg-passkey-signin")
            assert panel.signed_in(), line
            _passkey_amr(panel.bearer())
            run_query(page, USERS)
            page.wait_for_function(RESPONSE_HAS_JS, arg='"edges"', timeout=10_000)
            page.wait_for_function(
                "() => !document.querySelector('.result-window .CodeMirror')"
                ".CodeMirror.getValue().includes('INSUFFICIENT_AUTHENTICATION')",
                timeout=10_000,
            )
    assert panel.problems == [], panel.problems


def test_graphiql_on_an_ip_address_says_where_passkeys_work(tmp_path: Path) -> None:
    # The server's default host is 127.0.0.1, where browsers refuse WebAuthn: the panel says
    # to open the same page on localhost instead of failing with a SecurityError.
    with passkey_server(tmp_path) as server, passkey_panel(server, "127.0.0.1") as panel:
        line = panel.press("#gg-passkey-signin")
        assert "IP address" in line, line
        assert f"http://localhost:{server.port}/graphql" in line, line
        assert panel.problems == []
