"""Where a request comes from: the socket, unless a trusted proxy says otherwise."""

from __future__ import annotations

import pytest

from tests.conftest import LOGIN, Api
from tests.security.conftest import StartApi

SESSIONS = "{ mySessions { ip current } }"


async def login_ip(api: Api, forwarded: str | None) -> str | None:
    headers = {} if forwarded is None else {"X-Forwarded-For": forwarded}
    _, body, _ = await api.post(
        LOGIN, {"email": "ada@example.com", "password": "correct horse"}, **headers
    )
    assert "errors" not in body, body
    token = body["data"]["login"]["accessToken"]
    sessions = (await api.gql(SESSIONS, token=token))["data"]["mySessions"]
    return next(s["ip"] for s in sessions if s["current"])  # type: ignore[no-any-return]


async def test_forwarded_for_is_ignored_from_an_untrusted_peer(api: Api) -> None:
    await api.register()
    assert await login_ip(api, "203.0.113.9") == "127.0.0.1"
    assert await login_ip(api, "203.0.113.9, 198.51.100.1") == "127.0.0.1"


@pytest.mark.parametrize(
    ("trusted", "forwarded", "expected"),
    [
        ("127.0.0.1", None, "127.0.0.1"),
        ("127.0.0.1", "203.0.113.9", "203.0.113.9"),
        # The client may send its own header: the proxy appends, the rightmost hop is real.
        ("127.0.0.1", "6.6.6.6, 203.0.113.9", "203.0.113.9"),
        # Chains of trusted proxies are walked back to the first address not ours.
        ("127.0.0.1,10.0.0.2", "203.0.113.9, 10.0.0.2", "203.0.113.9"),
        ("127.0.0.1", "2001:db8::7", "2001:db8::7"),
        # Not an address: nothing past it is believed; the proxy's own address stands.
        ("127.0.0.1", "x" * 100, "127.0.0.1"),
        ("127.0.0.1", "203.0.113.9, '); DROP TABLE sessions; --", "127.0.0.1"),
        ("127.0.0.1", "203.0.113.9, unknown", "127.0.0.1"),
        ("127.0.0.1", "fe80::1%" + "x" * 100, "127.0.0.1"),
    ],
)
async def test_forwarded_for_from_a_trusted_proxy(
    start_api: StartApi, trusted: str, forwarded: str | None, expected: str
) -> None:
    api = await start_api(TRUSTED_PROXIES=trusted)
    await api.register()
    assert await login_ip(api, forwarded) == expected
