"""Account lifecycle flows end to end over HTTP, reading links from the memory mailer."""

from __future__ import annotations

import hashlib
import logging

import pytest

from api.db.models import ActionToken, AuditEvent, Note, Session, User
from tests.helpers.api import make_admin
from tests.helpers.graphql import LOGIN, ME, REFRESH, code
from tests.helpers.mailbox import (
    CHANGE_EMAIL,
    DELETE,
    REQUEST_RESET,
    REQUEST_VERIFICATION,
    RESET,
    VERIFY,
    StartApi,
    gql_ok,
    last_mail,
    mailed_token,
    mails,
    start_with_mailbox,
)
from tests.helpers.notes import create_note

ADA = "ada@example.com"


async def test_verify_email(start_api: StartApi, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    api = await start_with_mailbox(start_api, PUBLIC_URL="https://app.example")
    pair = await api.register(ADA)
    token = pair["accessToken"]
    assert (await gql_ok(api, ME, token=token))["me"]["emailVerified"] is False

    assert (await gql_ok(api, REQUEST_VERIFICATION, token=token))["requestEmailVerification"]
    mail = await last_mail(api, ADA, "verify_email")
    assert "https://app.example/verify-email?token=" in mail.text
    link_token = await mailed_token(api, ADA, "verify_email")

    # Only the SHA-256 of the token is stored, and no log line carries it.
    row = await ActionToken.get(purpose="verify_email")
    assert row.token_hash == hashlib.sha256(link_token.encode()).hexdigest()
    assert all(link_token not in record.getMessage() for record in caplog.records)

    verified = await gql_ok(api, VERIFY, {"t": link_token})  # public: no token needed
    assert verified["verifyEmail"] == {
        "id": pair["user"]["id"],
        "email": ADA,
        "emailVerified": True,
    }
    assert (await gql_ok(api, ME, token=token))["me"]["emailVerified"] is True
    assert code(await api.gql(VERIFY, {"t": link_token})) == "INVALID_TOKEN"  # single use
    kinds = set(await AuditEvent.all().values_list("kind", flat=True))
    assert {"email_verification_requested", "email_verified"} <= kinds

    # Verified already: true, and no further mail.
    assert (await gql_ok(api, REQUEST_VERIFICATION, token=token))["requestEmailVerification"]
    assert len(await mails(api, ADA)) == 1


async def test_verification_needs_a_token_and_a_real_link(start_api: StartApi) -> None:
    api = await start_with_mailbox(start_api)
    assert code(await api.gql(REQUEST_VERIFICATION)) == "UNAUTHENTICATED"
    for bogus in ("", "not-a-token", "x" * 5000):
        assert code(await api.gql(VERIFY, {"t": bogus})) == "INVALID_TOKEN"


async def test_reset_password_ends_every_session(start_api: StartApi) -> None:
    api = await start_with_mailbox(start_api)
    first = await api.register(ADA)
    second = await api.login(ADA, device="phone")

    answer = await gql_ok(api, REQUEST_RESET, {"e": "  ADA@Example.com "})
    assert answer == {"requestPasswordReset": True}
    assert await gql_ok(api, REQUEST_RESET, {"e": "nobody@example.com"}) == answer
    assert [m.to for m in await mails(api)] == [ADA]  # nothing is sent to unknown addresses
    token = await mailed_token(api, ADA, "reset_password")

    short = await api.gql(RESET, {"t": token, "p": "short"})
    assert code(short) == "BAD_USER_INPUT"
    assert short["errors"][0]["extensions"]["field"] == "newPassword"
    assert await gql_ok(api, RESET, {"t": token, "p": "a brand new secret"}) == {
        "resetPassword": True
    }

    for pair in (first, second):
        assert code(await api.gql(ME, token=pair["accessToken"])) == "TOKEN_REVOKED"
        assert code(await api.refresh(pair["refreshToken"])) == "TOKEN_REVOKED"
    wrong = await api.gql(LOGIN, {"email": ADA, "password": "correct horse"})
    assert code(wrong) == "INVALID_CREDENTIALS"
    fresh = await api.login(ADA, "a brand new secret")
    me = await gql_ok(api, ME, token=fresh["accessToken"])
    assert me["me"]["emailVerified"] is True  # the link reached the address: that proves it
    assert code(await api.gql(RESET, {"t": token, "p": "yet another one"})) == "INVALID_TOKEN"
    assert await AuditEvent.filter(kind="password_reset").count() == 1
    # Unknown addresses are recorded too, without naming them.
    probe = await AuditEvent.get(kind="password_reset_requested", user_id=None)
    assert probe.detail == "no active account"


async def test_reset_password_input_errors(start_api: StartApi) -> None:
    api = await start_with_mailbox(start_api)
    bad = await api.gql(REQUEST_RESET, {"e": "not an address"})
    assert code(bad) == "BAD_USER_INPUT"
    assert bad["errors"][0]["extensions"]["field"] == "email"


async def test_change_email_applies_once_the_new_address_is_verified(start_api: StartApi) -> None:
    api = await start_with_mailbox(start_api)
    pair = await api.register(ADA)
    token = pair["accessToken"]
    await gql_ok(api, REQUEST_RESET, {"e": ADA})  # a reset link pending at the old address
    reset_token = await mailed_token(api, ADA, "reset_password")

    answer = await gql_ok(api, CHANGE_EMAIL, {"e": "Ada@New.Example"}, token=token)
    assert answer == {"changeEmail": True}
    assert (await gql_ok(api, ME, token=token))["me"]["email"] == ADA  # not yet
    link_token = await mailed_token(api, "ada@new.example", "change_email")

    verified = await gql_ok(api, VERIFY, {"t": link_token})
    assert verified["verifyEmail"]["email"] == "ada@new.example"
    assert verified["verifyEmail"]["emailVerified"] is True
    assert (await gql_ok(api, ME, token=token))["me"]["email"] == "ada@new.example"
    notice = await last_mail(api, ADA, "email_changed")  # the old address is told
    assert "token" not in notice.text
    await api.login("ada@new.example")
    assert code(await api.gql(LOGIN, {"email": ADA, "password": "correct horse"})) == (
        "INVALID_CREDENTIALS"
    )
    # Links mailed to the old address died with it.
    assert code(await api.gql(RESET, {"t": reset_token, "p": "hijacked!!"})) == "INVALID_TOKEN"
    assert code(await api.gql(VERIFY, {"t": link_token})) == "INVALID_TOKEN"
    assert await AuditEvent.filter(kind="email_changed").count() == 1


async def test_change_email_refusals(start_api: StartApi) -> None:
    api = await start_with_mailbox(start_api)
    token = (await api.register(ADA))["accessToken"]
    await api.register("bob@example.com")

    taken = await api.gql(CHANGE_EMAIL, {"e": "BOB@example.com"}, token=token)
    assert code(taken) == "EMAIL_TAKEN"
    same = await api.gql(CHANGE_EMAIL, {"e": ADA}, token=token)
    assert code(same) == "BAD_USER_INPUT"
    assert same["errors"][0]["extensions"]["field"] == "newEmail"
    bad = await api.gql(CHANGE_EMAIL, {"e": "nope"}, token=token)
    assert bad["errors"][0]["extensions"]["field"] == "newEmail"
    assert code(await api.gql(CHANGE_EMAIL, {"e": "x@example.com"})) == "UNAUTHENTICATED"

    # Taken between the request and the click: EMAIL_TAKEN then, and nothing changes.
    await gql_ok(api, CHANGE_EMAIL, {"e": "carol@example.com"}, token=token)
    link_token = await mailed_token(api, "carol@example.com", "change_email")
    carol = await api.register("carol@example.com")
    assert code(await api.gql(VERIFY, {"t": link_token})) == "EMAIL_TAKEN"
    assert (await gql_ok(api, ME, token=token))["me"]["email"] == ADA
    # The refusal did not spend the link: once the address is free again, it applies.
    await gql_ok(api, DELETE, token=carol["accessToken"])
    assert (await gql_ok(api, VERIFY, {"t": link_token}))["verifyEmail"]["email"] == (
        "carol@example.com"
    )


async def test_delete_account_erases_the_user_and_keeps_an_audit_event(
    start_api: StartApi,
) -> None:
    api = await start_with_mailbox(start_api)
    first = await api.register(ADA, displayName="Ada Lovelace", device="laptop")
    second = await api.login(ADA, device="phone")
    await gql_ok(api, REQUEST_VERIFICATION, token=first["accessToken"])
    await create_note(api, first["accessToken"], "diary")
    user_id = first["user"]["id"]

    assert code(await api.gql(DELETE, {"p": "wrong password"}, token=first["accessToken"])) == (
        "INVALID_CREDENTIALS"
    )
    answer = await gql_ok(api, DELETE, {"p": "correct horse"}, token=first["accessToken"])
    assert answer == {"deleteAccount": True}

    for pair in (first, second):
        assert code(await api.gql(ME, token=pair["accessToken"])) == "TOKEN_REVOKED"
        assert code(await api.gql(REFRESH, {"t": pair["refreshToken"]})) == "TOKEN_REVOKED"
    assert code(await api.gql(LOGIN, {"email": ADA, "password": "correct horse"})) == (
        "INVALID_CREDENTIALS"
    )
    # Nothing that names or reaches Ada is left; an anonymous tombstone and the audit trail are.
    row = await User.get(id=user_id)
    assert row.email == f"deleted-{row.id.hex}@deleted.invalid"
    assert row.display_name is None
    assert not row.is_active
    assert row.roles == []
    assert await ActionToken.filter(user_id=user_id).count() == 0
    assert await Note.filter(owner_id=user_id).count() == 0
    sessions = await Session.filter(user_id=user_id)
    assert sessions
    assert all(s.ended_at and not s.ip and not s.device and not s.user_agent for s in sessions)
    event = await AuditEvent.get(kind="account_deleted")
    assert str(event.user_id) == user_id
    assert event.detail == "by the user"
    # The address is free again.
    again = await api.register(ADA)
    assert again["user"]["id"] != user_id


async def test_the_last_admin_cannot_delete_their_account(start_api: StartApi) -> None:
    api = await start_with_mailbox(start_api)
    admin = await make_admin(api)
    body = await api.gql(DELETE, {"p": "admin password"}, token=admin["accessToken"])
    assert code(body) == "FORBIDDEN"
    await gql_ok(api, ME, token=admin["accessToken"])


async def test_links_of_a_deactivated_account_do_not_work(start_api: StartApi) -> None:
    api = await start_with_mailbox(start_api)
    admin = await make_admin(api)
    uid = (await api.register(ADA))["user"]["id"]
    await gql_ok(api, REQUEST_RESET, {"e": ADA})
    token = await mailed_token(api, ADA, "reset_password")
    deactivate = "mutation($u: ID!) { setUserActive(userId: $u, active: false) { isActive } }"
    await gql_ok(api, deactivate, {"u": uid}, token=admin["accessToken"])
    assert code(await api.gql(RESET, {"t": token, "p": "a new password"})) == "INVALID_TOKEN"
    await gql_ok(api, REQUEST_RESET, {"e": ADA})
    assert len(await mails(api, ADA)) == 1  # a deactivated account gets no new link
