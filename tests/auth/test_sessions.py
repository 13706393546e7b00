"""Sessions: rotation, reuse detection, lifetimes, and revocation that takes effect at once."""

from __future__ import annotations

import asyncio
from typing import Any

import jwt

from api.clock import FrozenClock
from api.db.models import AuditEvent, Session, User
from api.web.appkeys import SERVICES_KEY
from tests.helpers.api import Api, StartApi, make_admin
from tests.helpers.graphql import LOGIN, ME, SESSIONS, SET_ACTIVE, SET_ROLES, code


def sid_of(pair: dict[str, Any]) -> str:
    return jwt.decode(pair["accessToken"], options={"verify_signature": False})["sid"]  # type: ignore[no-any-return]


async def test_rotation_spends_the_old_token_and_keeps_the_session(api: Api) -> None:
    first = await api.register(device="pixel")
    second = (await api.refresh(first["refreshToken"]))["data"]["refresh"]
    third = (await api.refresh(second["refreshToken"]))["data"]["refresh"]
    assert sid_of(first) == sid_of(second) == sid_of(third)
    assert len({first["refreshToken"], second["refreshToken"], third["refreshToken"]}) == 3
    # Only a hash of the current jti is stored, never a token.
    row = await Session.get(id=sid_of(third))
    assert row.current_jti_hash not in third["refreshToken"]
    assert len(row.current_jti_hash) == 64


async def test_reuse_ends_the_session_and_is_audited(api: Api) -> None:
    first = await api.register()
    second = (await api.refresh(first["refreshToken"]))["data"]["refresh"]
    assert code(await api.refresh(first["refreshToken"])) == "REFRESH_TOKEN_REUSED"
    assert code(await api.gql(ME, token=second["accessToken"])) == "TOKEN_REVOKED"
    assert code(await api.refresh(second["refreshToken"])) == "TOKEN_REVOKED"
    assert await AuditEvent.filter(kind="refresh_reuse_detected").count() == 1
    session = await Session.get(id=sid_of(first))
    assert session.ended_at is not None and session.end_reason == "reuse"


async def test_concurrent_refreshes_exactly_one_wins(api: Api) -> None:
    pair = await api.register()
    results = await asyncio.gather(*(api.refresh(pair["refreshToken"]) for _ in range(20)))
    winners = [r for r in results if "errors" not in r]
    losers = [code(r) for r in results if "errors" in r]
    assert len(winners) == 1
    assert losers == ["REFRESH_TOKEN_REUSED"] * 19
    # The database agrees: the stored hash belongs to the single winner's token, and the
    # session is ended because the spent token came back (grace 0).
    winner_jti = jwt.decode(
        winners[0]["data"]["refresh"]["refreshToken"], options={"verify_signature": False}
    )["jti"]
    from api.auth.tokens import hash_jti

    row = await Session.get(id=sid_of(pair))
    assert row.current_jti_hash == hash_jti(winner_jti)
    assert row.end_reason == "reuse"


async def test_grace_window_lets_a_lost_response_be_retried(
    start_api: StartApi, clock: FrozenClock
) -> None:
    api = await start_api(clock=clock, REFRESH_REUSE_GRACE="30")
    first = await api.register()
    second = (await api.refresh(first["refreshToken"]))["data"]["refresh"]
    clock.advance(10)
    retried = await api.refresh(first["refreshToken"])  # the client never saw `second`
    assert "errors" not in retried
    third = retried["data"]["refresh"]
    assert sid_of(third) == sid_of(first)
    # The retry's answer is now the live one; the pair it replaced is spent.
    clock.advance(31)
    assert code(await api.refresh(second["refreshToken"])) == "REFRESH_TOKEN_REUSED"


async def test_grace_window_expires(start_api: StartApi, clock: FrozenClock) -> None:
    api = await start_api(clock=clock, REFRESH_REUSE_GRACE="30")
    first = await api.register()
    await api.refresh(first["refreshToken"])
    clock.advance(31)
    assert code(await api.refresh(first["refreshToken"])) == "REFRESH_TOKEN_REUSED"


async def test_idle_expiry(start_api: StartApi, clock: FrozenClock) -> None:
    api = await start_api(
        clock=clock, REFRESH_TOKEN_TTL="100", SESSION_MAX_AGE="1000", JWT_LEEWAY="0"
    )
    pair = await api.register()
    clock.advance(90)
    pair = (await api.refresh(pair["refreshToken"]))["data"]["refresh"]  # restarts the idle limit
    clock.advance(90)
    pair = (await api.refresh(pair["refreshToken"]))["data"]["refresh"]
    clock.advance(101)
    assert code(await api.refresh(pair["refreshToken"])) == "SESSION_EXPIRED"


async def test_absolute_expiry_is_never_extended(start_api: StartApi, clock: FrozenClock) -> None:
    api = await start_api(
        clock=clock, REFRESH_TOKEN_TTL="100", SESSION_MAX_AGE="250", JWT_LEEWAY="0"
    )
    pair = await api.register()
    assert pair["refreshExpiresIn"] == 100
    clock.advance(90)
    pair = (await api.refresh(pair["refreshToken"]))["data"]["refresh"]
    clock.advance(90)
    pair = (await api.refresh(pair["refreshToken"]))["data"]["refresh"]
    assert pair["refreshExpiresIn"] == 70  # capped by SESSION_MAX_AGE
    sessions = (await api.gql(SESSIONS, token=pair["accessToken"]))["data"]["mySessions"]
    assert len(sessions) == 1
    clock.advance(69)
    pair = (await api.refresh(pair["refreshToken"]))["data"]["refresh"]
    assert pair["refreshExpiresIn"] == 1
    clock.advance(1)
    assert code(await api.refresh(pair["refreshToken"])) == "SESSION_EXPIRED"


async def test_my_sessions_lists_live_sessions_with_client_details(api: Api) -> None:
    first = await api.register(device="pixel 9")
    status, body, _ = await api.post(
        LOGIN,
        {"email": "ada@example.com", "password": "correct horse", "device": "laptop"},
        **{"User-Agent": "Firefox/140"},
    )
    second = body["data"]["login"]
    await api.gql("mutation { logout }", token=first["accessToken"])
    sessions = (await api.gql(SESSIONS, token=second["accessToken"]))["data"]["mySessions"]
    assert len(sessions) == 1
    (only,) = sessions
    assert only["id"] == sid_of(second)
    assert only["device"] == "laptop"
    assert only["userAgent"] == "Firefox/140"
    assert only["ip"] == "127.0.0.1"
    assert only["current"] is True


async def test_last_used_moves_on_refresh(start_api: StartApi, clock: FrozenClock) -> None:
    api = await start_api(clock=clock)
    pair = await api.register()
    before = (await api.gql(SESSIONS, token=pair["accessToken"]))["data"]["mySessions"][0]
    clock.advance(60)
    pair = (await api.refresh(pair["refreshToken"]))["data"]["refresh"]
    after = (await api.gql(SESSIONS, token=pair["accessToken"]))["data"]["mySessions"][0]
    assert after["lastUsedAt"] > before["lastUsedAt"]
    assert after["createdAt"] == before["createdAt"]


async def test_revoke_session_own_only(api: Api) -> None:
    phone = await api.register(device="phone")
    laptop = await api.login(device="laptop")
    other = await api.register("eve@example.com", "eve password")
    revoke = "mutation($id: ID!) { revokeSession(id: $id) }"
    assert (
        code(await api.gql(revoke, {"id": sid_of(phone)}, token=other["accessToken"]))
        == "NOT_FOUND"
    )
    assert (
        code(await api.gql(revoke, {"id": "not-a-uuid"}, token=other["accessToken"])) == "NOT_FOUND"
    )
    assert (await api.gql(revoke, {"id": sid_of(phone)}, token=laptop["accessToken"]))["data"] == {
        "revokeSession": True
    }
    assert code(await api.gql(ME, token=phone["accessToken"])) == "TOKEN_REVOKED"
    assert code(await api.refresh(phone["refreshToken"])) == "TOKEN_REVOKED"
    assert "errors" not in await api.gql(ME, token=laptop["accessToken"])
    assert (
        code(await api.gql(revoke, {"id": sid_of(phone)}, token=laptop["accessToken"]))
        == "NOT_FOUND"
    )


async def test_logout_all(api: Api) -> None:
    pairs = [await api.register()] + [await api.login() for _ in range(2)]
    body = await api.gql("mutation { logoutAll }", token=pairs[1]["accessToken"])
    assert body["data"] == {"logoutAll": 3}
    for pair in pairs:
        assert code(await api.gql(ME, token=pair["accessToken"])) == "TOKEN_REVOKED"
        assert code(await api.refresh(pair["refreshToken"])) == "TOKEN_REVOKED"


CHANGE = """mutation($c: String!, $n: String!) { changePassword(currentPassword: $c, newPassword: $n) {
  accessToken refreshToken } }"""


async def test_change_password(api: Api) -> None:
    here = await api.register()
    elsewhere = await api.login()
    wrong = await api.gql(
        CHANGE, {"c": "not my password", "n": "brand new password"}, token=here["accessToken"]
    )
    assert code(wrong) == "INVALID_CREDENTIALS"
    short = await api.gql(CHANGE, {"c": "correct horse", "n": "short"}, token=here["accessToken"])
    assert (
        code(short) == "BAD_USER_INPUT"
        and short["errors"][0]["extensions"]["field"] == "newPassword"
    )

    body = await api.gql(
        CHANGE, {"c": "correct horse", "n": "brand new password"}, token=here["accessToken"]
    )
    new = body["data"]["changePassword"]
    assert sid_of(new) == sid_of(here)
    assert "errors" not in await api.gql(ME, token=new["accessToken"])
    assert code(await api.gql(ME, token=here["accessToken"])) == "TOKEN_REVOKED"
    assert code(await api.gql(ME, token=elsewhere["accessToken"])) == "TOKEN_REVOKED"
    assert code(await api.refresh(elsewhere["refreshToken"])) == "TOKEN_REVOKED"
    assert (
        code(await api.gql(LOGIN, {"email": "ada@example.com", "password": "correct horse"}))
        == "INVALID_CREDENTIALS"
    )
    await api.login(password="brand new password")
    # The pre-change refresh token of this session is spent: presenting it is reuse.
    assert code(await api.refresh(here["refreshToken"])) == "REFRESH_TOKEN_REUSED"


async def test_change_password_keeps_the_new_pair_working(api: Api) -> None:
    here = await api.register()
    body = await api.gql(
        CHANGE, {"c": "correct horse", "n": "brand new password"}, token=here["accessToken"]
    )
    new = body["data"]["changePassword"]
    refreshed = await api.refresh(new["refreshToken"])
    assert "errors" not in refreshed
    assert "errors" not in await api.gql(ME, token=refreshed["data"]["refresh"]["accessToken"])


async def test_deactivation_locks_out_at_once(api: Api) -> None:
    admin = await make_admin(api)
    user = await api.register()
    uid = user["user"]["id"]
    assert (
        code(await api.gql(SET_ACTIVE, {"u": uid, "a": False}, token=user["accessToken"]))
        == "FORBIDDEN"
    )
    body = await api.gql(SET_ACTIVE, {"u": uid, "a": False}, token=admin["accessToken"])
    assert body["data"]["setUserActive"] == {"id": uid, "isActive": False}
    assert code(await api.gql(ME, token=user["accessToken"])) == "TOKEN_REVOKED"
    assert code(await api.refresh(user["refreshToken"])) == "TOKEN_REVOKED"
    assert (
        code(await api.gql(LOGIN, {"email": "ada@example.com", "password": "correct horse"}))
        == "ACCOUNT_DISABLED"
    )
    await api.gql(SET_ACTIVE, {"u": uid, "a": True}, token=admin["accessToken"])
    await api.login()
    assert await AuditEvent.filter(kind="user_deactivated", user_id=uid).count() == 1


async def test_role_change_cuts_access_but_refresh_brings_new_roles(
    start_api: StartApi, clock: FrozenClock
) -> None:
    api = await start_api(clock=clock)
    admin = await make_admin(api)
    user = await api.register()
    uid = user["user"]["id"]
    body = await api.gql(SET_ROLES, {"u": uid, "r": ["user", "admin"]}, token=admin["accessToken"])
    assert body["data"]["setUserRoles"]["roles"] == ["user", "admin"]
    assert code(await api.gql(ME, token=user["accessToken"])) == "TOKEN_REVOKED"
    refreshed = (await api.refresh(user["refreshToken"]))["data"]["refresh"]
    me = await api.gql("{ me { roles } }", token=refreshed["accessToken"])
    assert me["data"]["me"]["roles"] == ["user", "admin"]
    bad = await api.gql(SET_ROLES, {"u": uid, "r": ["wizard"]}, token=admin["accessToken"])
    assert code(bad) == "BAD_USER_INPUT" and bad["errors"][0]["extensions"]["field"] == "roles"
    missing = await api.gql(
        SET_ROLES,
        {"u": "00000000-0000-0000-0000-000000000000", "r": ["user"]},
        token=admin["accessToken"],
    )
    assert code(missing) == "NOT_FOUND"


async def test_last_admin_keeps_the_role(api: Api) -> None:
    admin = await make_admin(api)
    uid = admin["user"]["id"]
    body = await api.gql(SET_ROLES, {"u": uid, "r": ["user"]}, token=admin["accessToken"])
    assert code(body) == "BAD_USER_INPUT"
    assert (await User.get(id=uid)).roles == ["user", "admin"]


async def test_audit_trail_records_the_session_lifecycle(api: Api) -> None:
    pair = await api.register()
    await api.gql(LOGIN, {"email": "ada@example.com", "password": "wrong password"})
    pair = await api.login()
    pair = (await api.refresh(pair["refreshToken"]))["data"]["refresh"]
    await api.gql("mutation { logout }", token=pair["accessToken"])
    kinds = [e.kind for e in await AuditEvent.all().order_by("at")]
    for kind in ("register", "login_failed", "login", "refresh", "logout"):
        assert kind in kinds
    for event in await AuditEvent.all():
        assert event.ip == "127.0.0.1"
        assert not event.detail or "eyJ" not in event.detail


async def test_prune_removes_dead_sessions(start_api: StartApi, clock: FrozenClock) -> None:
    api = await start_api(clock=clock)
    pair = await api.register()
    live = await api.login()
    await api.gql("mutation { logout }", token=pair["accessToken"])
    services = api.app[SERVICES_KEY]
    assert await services.sessions.prune() == 0  # its access tokens could still be alive
    clock.advance(900 + 121)
    assert await services.sessions.prune() == 1
    assert await Session.filter(id=sid_of(live)).exists()


async def test_last_admin_cannot_be_deactivated(api: Api) -> None:
    admin = await make_admin(api)
    body = await api.gql(
        SET_ACTIVE, {"u": admin["user"]["id"], "a": False}, token=admin["accessToken"]
    )
    assert code(body) == "BAD_USER_INPUT"
    assert body["errors"][0]["extensions"]["field"] == "active"
    second = await make_admin(api, "second@example.com")
    body = await api.gql(
        SET_ACTIVE, {"u": admin["user"]["id"], "a": False}, token=second["accessToken"]
    )
    assert body["data"]["setUserActive"]["isActive"] is False
