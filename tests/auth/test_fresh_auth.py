"""Fresh authentication for sensitive mutations, and REQUIRE_VERIFIED_EMAIL."""

from __future__ import annotations

from typing import Any

import pytest

from api.clock import FrozenClock
from tests.helpers.api import make_admin
from tests.helpers.graphql import LOGIN, ME, SESSIONS, code
from tests.helpers.mailbox import (
    CHANGE_EMAIL,
    DELETE,
    REQUEST_VERIFICATION,
    VERIFY,
    StartApi,
    gql_ok,
    mailed_token,
    start_with_mailbox,
)
from tests.helpers.notes import create_note
from tests.helpers.sockets import EVENTS, bearer, next_event, open_socket, subscribe

ADA = "ada@example.com"
SET_ROLES = "mutation($u: ID!, $r: [String!]!) { setUserRoles(userId: $u, roles: $r) { roles } }"
CHANGE_PASSWORD = """mutation($c: String!, $n: String!) {
  changePassword(currentPassword: $c, newPassword: $n) { accessToken } }"""


async def test_sensitive_mutations_need_a_recent_login_or_the_password(
    start_api: StartApi, clock: FrozenClock
) -> None:
    api = await start_with_mailbox(start_api, clock, FRESH_AUTH_MAX_AGE="300")
    pair = await api.register(ADA)
    token = pair["accessToken"]
    clock.advance(301)  # past FRESH_AUTH_MAX_AGE; the access token itself is still valid

    stale = await api.gql(CHANGE_EMAIL, {"e": "ada@new.example"}, token=token)
    assert code(stale) == "FRESH_LOGIN_REQUIRED"
    assert code(await api.gql(DELETE, token=token)) == "FRESH_LOGIN_REQUIRED"
    # A refresh does not make a login fresh: auth_time stays when the password was typed.
    refreshed = (await api.refresh(pair["refreshToken"]))["data"]["refresh"]
    again = await api.gql(CHANGE_EMAIL, {"e": "ada@new.example"}, token=refreshed["accessToken"])
    assert code(again) == "FRESH_LOGIN_REQUIRED"

    wrong = await api.gql(
        CHANGE_EMAIL, {"e": "ada@new.example", "p": "not my password"}, token=token
    )
    assert code(wrong) == "INVALID_CREDENTIALS"
    ok = await gql_ok(
        api, CHANGE_EMAIL, {"e": "ada@new.example", "p": "correct horse"}, token=token
    )
    assert ok == {"changeEmail": True}
    # changePassword always takes the current password: no fresh login needed.
    await gql_ok(api, CHANGE_PASSWORD, {"c": "correct horse", "n": "a new password"}, token=token)

    relogged = await api.login(ADA, "a new password")
    assert await gql_ok(api, DELETE, token=relogged["accessToken"]) == {"deleteAccount": True}


async def test_wrong_confirmation_passwords_count_as_failed_logins(start_api: StartApi) -> None:
    api = await start_with_mailbox(start_api, RATE_LIMIT_PER_EMAIL="2 per 15 minutes")
    token = (await api.register(ADA))["accessToken"]
    for _ in range(2):
        body = await api.gql(DELETE, {"p": "guess guess"}, token=token)
        assert code(body) == "INVALID_CREDENTIALS"
    assert code(await api.gql(DELETE, {"p": "correct horse"}, token=token)) == "RATE_LIMITED"


async def test_role_changes_need_a_recent_admin_login(
    start_api: StartApi, clock: FrozenClock
) -> None:
    api = await start_with_mailbox(start_api, clock)
    admin = await make_admin(api)
    uid = (await api.register(ADA))["user"]["id"]
    variables = {"u": uid, "r": ["user", "admin"]}
    assert await gql_ok(api, SET_ROLES, variables, token=admin["accessToken"])
    clock.advance(601)  # default FRESH_AUTH_MAX_AGE is 600
    refreshed = (await api.refresh(admin["refreshToken"]))["data"]["refresh"]
    stale = await api.gql(SET_ROLES, {"u": uid, "r": ["user"]}, token=refreshed["accessToken"])
    assert code(stale) == "FRESH_LOGIN_REQUIRED"
    relogged = await api.login("root@example.com", "admin password")
    data = await gql_ok(api, SET_ROLES, {"u": uid, "r": ["user"]}, token=relogged["accessToken"])
    assert data["setUserRoles"]["roles"] == ["user"]


async def test_required_verification_refuses_unverified_users(start_api: StartApi) -> None:
    api = await start_with_mailbox(start_api, REQUIRE_VERIFIED_EMAIL="on")
    pair = await api.register(ADA)
    token = pair["accessToken"]
    other = await api.login(ADA, device="phone")

    # What an unverified user needs keeps working ...
    assert (await gql_ok(api, ME, token=token))["me"]["emailVerified"] is False
    await gql_ok(api, REQUEST_VERIFICATION, token=token)
    assert await gql_ok(api, "mutation { logout }", token=other["accessToken"])
    # ... everything else guarded answers EMAIL_NOT_VERIFIED.
    assert code(await api.gql(SESSIONS, token=token)) == "EMAIL_NOT_VERIFIED"
    body = await api.gql(
        CHANGE_PASSWORD, {"c": "correct horse", "n": "a new password"}, token=token
    )
    assert code(body) == "EMAIL_NOT_VERIFIED"

    await gql_ok(api, VERIFY, {"t": await mailed_token(api, ADA, "verify_email")})
    # The same access token works at once: the flag is read from the user row, not the token.
    assert len((await gql_ok(api, SESSIONS, token=token))["mySessions"]) == 1


async def test_unverified_admins_are_refused_too(start_api: StartApi) -> None:
    api = await start_with_mailbox(start_api, REQUIRE_VERIFIED_EMAIL="on")
    admin = await make_admin(api)
    body = await api.gql(
        SET_ROLES, {"u": admin["user"]["id"], "r": ["user", "admin"]}, token=admin["accessToken"]
    )
    assert code(body) == "EMAIL_NOT_VERIFIED"


async def test_verification_is_not_required_by_default(start_api: StartApi) -> None:
    api = await start_with_mailbox(start_api)
    token = (await api.register(ADA))["accessToken"]
    assert len((await gql_ok(api, SESSIONS, token=token))["mySessions"]) == 1
    body = await api.gql(LOGIN, {"email": ADA, "password": "correct horse"})
    assert "errors" not in body


async def test_the_verification_check_reads_one_row_when_on_and_none_when_off(
    start_api: StartApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    import schema.context

    loads: list[list[str]] = []
    real = schema.context._load_users

    async def counting(ids: list[str]) -> Any:
        loads.append(ids)
        return await real(ids)

    monkeypatch.setattr(schema.context, "_load_users", counting)
    query = "{ me { id roles } }"
    off = await start_with_mailbox(start_api)
    await gql_ok(off, query, token=(await off.register(ADA))["accessToken"])
    assert loads == []  # default off: the guard costs no query at all

    on = await start_with_mailbox(start_api, REQUIRE_VERIFIED_EMAIL="on")
    token = (await on.register("bob@example.com"))["accessToken"]
    await on.gql("{ me { id email emailVerified } mySessions { id } }", token=token)
    assert len(loads) == 1  # on: one primary-key read per request, shared with the resolvers


async def test_required_verification_applies_to_subscriptions(start_api: StartApi) -> None:
    api = await start_with_mailbox(start_api, REQUIRE_VERIFIED_EMAIL="on")
    token = (await api.register(ADA))["accessToken"]
    ws = await open_socket(api, bearer(token))
    assert await ws.receive_json(timeout=2) == {"type": "connection_ack"}
    await ws.send_json({"id": "1", "type": "subscribe", "payload": {"query": EVENTS}})
    refused = await ws.receive_json(timeout=2)
    assert refused["id"] == "1"
    assert code({"errors": refused["payload"]}) == "EMAIL_NOT_VERIFIED", refused
    await ws.close()

    await gql_ok(api, REQUEST_VERIFICATION, token=token)
    await gql_ok(api, VERIFY, {"t": await mailed_token(api, ADA, "verify_email")})
    ws = await subscribe(api, token)  # a new socket reads the flag again
    await create_note(api, token, "hello")
    assert (await next_event(ws))["note"]["title"] == "hello"
    await ws.close()
