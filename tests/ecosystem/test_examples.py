"""The client examples under examples/, each driven against a live server.

Access tokens live 2 seconds here (JWT_LEEWAY=0), and the tests wait for real expiry: these
are end-to-end runs of real clients, not unit tests with a frozen clock.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

import pyotp
import pytest

from tests.helpers.env import ROOT
from tests.helpers.graphql import REFRESH, REGISTER, code
from tests.helpers.live import LiveServer, live_server, node_or_skip_reason
from tests.helpers.mfa import CONFIRM, START

pytestmark = pytest.mark.live  # starts real server processes (see pyproject markers)

TTL = 2
SHORT_TOKENS = {"ACCESS_TOKEN_TTL": str(TTL), "JWT_LEEWAY": "0"}


def test_js_fetch_client(tmp_path: Path) -> None:
    reason = node_or_skip_reason()
    if reason:
        pytest.skip(reason)
    script = ROOT / "examples" / "js" / "graphgate-client.test.mjs"
    with live_server(tmp_path, **SHORT_TOKENS) as server:
        _, codes = _enrolled(server, "mfa@example.com")
        run = subprocess.run(
            ["node", "--test", str(script)],
            env={
                **os.environ,
                "GRAPHGATE_URL": server.graphql,
                "ACCESS_TOKEN_TTL": str(TTL),
                "GRAPHGATE_MFA_EMAIL": "mfa@example.com",
                "GRAPHGATE_MFA_RECOVERY_CODE": codes[0],
            },
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    print(run.stdout, run.stderr)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "# pass 4" in run.stdout
    assert "# fail 0" in run.stdout


def _enrolled(server: LiveServer, email: str) -> tuple[pyotp.TOTP, list[str]]:
    """A user with two-factor sign-in on: the app (pyotp) and the recovery codes. The
    confirming code is the previous step's, so the current one is still new."""
    token = server.gql(REGISTER, {"email": email, "password": "correct horse"})["data"]["register"][
        "accessToken"
    ]
    app = pyotp.TOTP(server.gql(START, token=token)["data"]["startTotpEnrollment"]["secret"])
    confirmed = server.gql(CONFIRM, {"c": app.at(time.time() - 30)}, token=token)
    assert "errors" not in confirmed, confirmed
    return app, confirmed["data"]["confirmTotpEnrollment"]


def _mobile_client() -> ModuleType:
    path = ROOT / "examples" / "python" / "mobile_client.py"
    spec = importlib.util.spec_from_file_location("mobile_client", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["mobile_client"] = module
    spec.loader.exec_module(module)
    return module


async def expire() -> None:
    await asyncio.sleep(TTL + 0.6)


async def test_python_mobile_client_rotates_and_drops_everything_at_the_end(
    tmp_path: Path,
) -> None:
    mc = _mobile_client()
    # The session may live 9 s in all: long enough for the rotations below, then it ends.
    with live_server(tmp_path, SESSION_MAX_AGE="9", **SHORT_TOKENS) as server:
        server.gql(REGISTER, {"email": "ada@example.com", "password": "correct horse"})
        store = mc.FileTokenStore(tmp_path / "tokens.json")
        async with mc.MobileClient(server.graphql, store) as client:
            await client.login("ada@example.com", "correct horse", device="pixel")
            assert oct((tmp_path / "tokens.json").stat().st_mode & 0o777) == "0o600"
            first_refresh = store.load()
            assert (await client.execute("query Me { me { email } }"))["me"]["email"]

            await expire()
            # Four calls meet the expired token at once: one refresh (rotation) serves all.
            answers = await asyncio.gather(
                *(client.execute("query Me { me { email } }") for _ in range(4))
            )
            assert all(a["me"]["email"] == "ada@example.com" for a in answers)
            assert client.refreshes == 1
            assert store.load() != first_refresh  # rotated, and stored at once
            # The spent token is worthless to anyone who copied it from the old store.
            assert code(server.gql(REFRESH, {"t": first_refresh})) == "REFRESH_TOKEN_REUSED"

        # That reuse ended the session: the app, restarted, is signed out at its first call.
        async with mc.MobileClient(server.graphql, store) as client:
            with pytest.raises(mc.SignedOutError) as ended:
                await client.execute("query Me { me { email } }")
            assert ended.value.code == "TOKEN_REVOKED"
            assert store.load() is None
            assert not client.signed_in

        # A fresh session: the app restarts (only the refresh token survived) and goes on.
        async with mc.MobileClient(server.graphql, store) as client:
            await client.login("ada@example.com", "correct horse")
        started = time.monotonic()
        async with mc.MobileClient(server.graphql, store) as client:
            assert (await client.execute("query Me { me { email } }"))["me"]["email"]
            assert client.refreshes == 1  # cold start: refreshed from the stored token
            # Past SESSION_MAX_AGE, refresh answers SESSION_EXPIRED: everything is dropped.
            await asyncio.sleep(max(0.0, 9.5 - (time.monotonic() - started)))
            with pytest.raises(mc.SignedOutError) as expired:
                await client.execute("query Me { me { email } }")
            assert expired.value.code == "SESSION_EXPIRED"
            assert store.load() is None


async def test_python_mobile_client_signs_out_on_reuse(tmp_path: Path) -> None:
    mc = _mobile_client()
    with live_server(tmp_path, **SHORT_TOKENS) as server:
        server.gql(REGISTER, {"email": "bob@example.com", "password": "correct horse"})
        store = mc.FileTokenStore(tmp_path / "tokens.json")
        async with mc.MobileClient(server.graphql, store) as client:
            await client.login("bob@example.com", "correct horse")
            # A copy of the refresh token is used elsewhere first (a stolen backup, say).
            stolen = server.gql(REFRESH, {"t": store.load()})
            assert "errors" not in stolen
            await expire()
            with pytest.raises(mc.SignedOutError) as signed_out:
                await client.execute("{ me { email } }")
            assert signed_out.value.code == "REFRESH_TOKEN_REUSED"
            assert store.load() is None
        # The thief's pair died with the session too.
        thief = stolen["data"]["refresh"]
        assert code(server.gql(REFRESH, {"t": thief["refreshToken"]})) == "TOKEN_REVOKED"


async def test_python_mobile_client_signs_in_with_a_second_factor(tmp_path: Path) -> None:
    mc = _mobile_client()
    with live_server(tmp_path) as server:
        app, _ = _enrolled(server, "cy@example.com")
        store = mc.FileTokenStore(tmp_path / "tokens.json")
        async with mc.MobileClient(server.graphql, store) as client:
            with pytest.raises(mc.MfaRequiredError) as asked:
                await client.login("cy@example.com", "correct horse")
            assert asked.value.methods == ["totp", "recovery_code"]
            assert not client.signed_in

            answers = ["000000", app.now()]  # a typo first, then the app's code
            seen: list[list[str]] = []

            async def ask_code(methods: list[str]) -> str:
                seen.append(methods)
                return answers.pop(0)

            await client.login("cy@example.com", "correct horse", ask_code=ask_code)
            assert len(seen) == 2
            assert client.signed_in
            me = await client.execute("{ me { mfa { totpEnabled } } }")
            assert me["me"]["mfa"]["totpEnabled"] is True
