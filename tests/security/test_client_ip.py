"""Where a request comes from: the socket, unless a trusted proxy says otherwise."""

from __future__ import annotations

import pytest
from multidict import CIMultiDict

from api.settings import SettingsError, load_settings
from tests.helpers.api import Api, StartApi
from tests.helpers.env import BASE_ENV
from tests.helpers.graphql import LOGIN, code

SESSIONS = "{ mySessions { ip current } }"


async def login_as(api: Api, forwarded: str | list[str] | None) -> dict[str, object]:
    """Sign in with X-Forwarded-For as one header line, several lines, or none."""
    lines = [] if forwarded is None else [forwarded] if isinstance(forwarded, str) else forwarded
    headers = CIMultiDict([("X-Forwarded-For", line) for line in lines])
    variables = {"email": "ada@example.com", "password": "correct horse"}
    resp = await api.client.post(
        "/graphql", json={"query": LOGIN, "variables": variables}, headers=headers
    )
    assert resp.status == 200
    return await resp.json()  # type: ignore[no-any-return]


async def login_ip(api: Api, forwarded: str | list[str] | None) -> str | None:
    body = await login_as(api, forwarded)
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
        # HAProxy (`option forwardfor`) appends its own line after the client's forged one.
        ("127.0.0.1", ["6.6.6.6", "203.0.113.9"], "203.0.113.9"),
        ("127.0.0.1", ["6.6.6.6, 7.7.7.7", "203.0.113.9"], "203.0.113.9"),
        # nginx ($proxy_add_x_forwarded_for) merges the client's header and its hop in one line.
        ("127.0.0.1", "6.6.6.6, 7.7.7.7, 203.0.113.9", "203.0.113.9"),
        # Two proxies that each append a line: both lines are walked.
        ("127.0.0.1,10.0.0.2", ["6.6.6.6", "203.0.113.9", "10.0.0.2"], "203.0.113.9"),
        # CIDR ranges, IPv4 and IPv6.
        ("127.0.0.0/8,10.0.0.0/8", "6.6.6.6, 203.0.113.9, 10.1.2.3, 10.200.0.1", "203.0.113.9"),
        ("127.0.0.1,2001:db8:ffff::/48", "2001:db8::7, 2001:db8:ffff::1", "2001:db8::7"),
        ("127.0.0.1", "::ffff:203.0.113.9", "203.0.113.9"),
        # Entries with a port, and bracketed IPv6 (some proxies write them so).
        ("127.0.0.1", "203.0.113.9:5678", "203.0.113.9"),
        ("127.0.0.1", "[2001:db8::7]", "2001:db8::7"),
        ("127.0.0.1", "[2001:db8::7]:443", "2001:db8::7"),
        ("127.0.0.1,10.0.0.2", "203.0.113.9:1, 10.0.0.2:8080", "203.0.113.9"),
        ("127.0.0.1", "203.0.113.9:99999", "127.0.0.1"),
        ("127.0.0.1", "[203.0.113.9]", "127.0.0.1"),
    ],
)
async def test_forwarded_for_from_a_trusted_proxy(
    start_api: StartApi, trusted: str, forwarded: str | None, expected: str
) -> None:
    api = await start_api(TRUSTED_PROXIES=trusted)
    await api.register()
    assert await login_ip(api, forwarded) == expected


@pytest.mark.parametrize(
    "entry", ["10.0.0.0/33", "10.0.0.1/8", "proxy.internal", "2001:db8::/129", "10.0.0.0/8/8"]
)
def test_a_malformed_trusted_proxy_is_refused_at_start(entry: str) -> None:
    with pytest.raises(SettingsError, match="TRUSTED_PROXIES"):
        load_settings({**BASE_ENV, "TRUSTED_PROXIES": f"127.0.0.1,{entry}"}, env_file=None)


async def test_ipv6_clients_share_a_rate_limit_per_64(start_api: StartApi) -> None:
    api = await start_api(TRUSTED_PROXIES="127.0.0.1", RATE_LIMIT_PER_IP="3 per 15 minutes")
    await api.register()  # counts once, from 127.0.0.1
    for host in range(1, 4):
        body = await login_as(api, f"2001:db8:1:2::{host}")
        assert "errors" not in body, body
    # A fourth address of the same /64 is the same client; the session still records it whole.
    assert code(await login_as(api, "2001:db8:1:2:ffff::9")) == "RATE_LIMITED"
    assert "errors" not in await login_as(api, "2001:db8:1:3::1")  # the next /64: another client
