"""A pending email change cannot outlive the owner taking the account back: resetPassword,
changePassword and logoutAll retire its link; and the current address hears of a requested
change, with a link that cancels it (cancelEmailChange)."""

from __future__ import annotations

import pytest

from tests.helpers.graphql import CHANGE_PASSWORD, ME, code
from tests.helpers.mailbox import (
    CHANGE_EMAIL,
    REQUEST_RESET,
    RESET,
    VERIFY,
    StartApi,
    gql_ok,
    last_mail,
    mailed_token,
    start_with_mailbox,
    token_in,
)

ADA = "ada@example.com"
ATTACKER = "attacker@x.example"
CANCEL = "mutation($t: String!) { cancelEmailChange(token: $t) }"


@pytest.mark.parametrize("retire", ["resetPassword", "changePassword", "logoutAll"])
async def test_a_pending_email_change_dies_when_the_owner_takes_the_account_back(
    start_api: StartApi, retire: str
) -> None:
    api = await start_with_mailbox(start_api)
    pair = await api.register(ADA)  # never verified: a reset must drop the change as well
    token = pair["accessToken"]
    await gql_ok(api, CHANGE_EMAIL, {"e": ATTACKER}, token=token)  # parked by a thief
    link = await mailed_token(api, ATTACKER, "change_email")
    password = "correct horse"
    if retire == "resetPassword":
        await gql_ok(api, REQUEST_RESET, {"e": ADA})
        password = "taken back at last"
        await gql_ok(
            api, RESET, {"t": await mailed_token(api, ADA, "reset_password"), "p": password}
        )
    elif retire == "changePassword":
        password = "taken back at last"
        await gql_ok(api, CHANGE_PASSWORD, {"c": "correct horse", "n": password}, token=token)
    else:
        await gql_ok(api, "mutation { logoutAll }", token=token)
    assert code(await api.gql(VERIFY, {"t": link})) == "INVALID_TOKEN"
    again = await api.login(ADA, password)
    assert (await gql_ok(api, ME, token=again["accessToken"]))["me"]["email"] == ADA


async def test_a_requested_email_change_is_announced_and_can_be_cancelled(
    start_api: StartApi,
) -> None:
    api = await start_with_mailbox(start_api, PUBLIC_URL="https://app.example")
    pair = await api.register(ADA)
    await gql_ok(api, CHANGE_EMAIL, {"e": ATTACKER}, token=pair["accessToken"])
    link = await mailed_token(api, ATTACKER, "change_email")
    notice = await last_mail(api, ADA, "email_change_requested")
    assert "https://app.example/cancel-email-change?token=" in notice.text
    cancel = token_in(notice)
    assert await gql_ok(api, CANCEL, {"t": cancel}) == {"cancelEmailChange": True}
    assert code(await api.gql(VERIFY, {"t": link})) == "INVALID_TOKEN"
    assert code(await api.gql(CANCEL, {"t": cancel})) == "INVALID_TOKEN"  # single use
    assert code(await api.gql(CANCEL, {"t": "not-a-token"})) == "INVALID_TOKEN"
    me = await gql_ok(api, ME, token=pair["accessToken"])
    assert me["me"]["email"] == ADA


async def test_the_cancel_link_follows_its_template(start_api: StartApi) -> None:
    api = await start_with_mailbox(
        start_api, CANCEL_EMAIL_CHANGE_URL="https://app.example/c/{token}/undo"
    )
    pair = await api.register(ADA)
    await gql_ok(api, CHANGE_EMAIL, {"e": ATTACKER}, token=pair["accessToken"])
    notice = await last_mail(api, ADA, "email_change_requested")
    assert "https://app.example/c/" in notice.text
    assert "/undo" in notice.text
