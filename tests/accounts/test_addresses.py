"""Email addresses: only a plain addr-spec is stored, so mail goes to that address alone."""

from __future__ import annotations

import pytest

from tests.helpers.graphql import REGISTER, code
from tests.helpers.mailbox import CHANGE_EMAIL, StartApi

REFUSED = [
    "x<attacker@evil.example>",
    "Eve <attacker@evil.example>",
    "postmaster,attacker@evil.example",
    "postmaster@app.example,attacker@evil.example",
    "postmaster@app.example;attacker@evil.example",
    '"a,attacker@evil.example"@app.example',
    '"x y"@app.example',
    "ada(comment)@app.example",
    "ada@[127.0.0.1]",
    "ada..b@app.example",
    "ada@app..example",
    "ada@-app.example",
    "ada@app",
    "ada@app.example\r\nBcc: attacker@evil.example",
    "a" * 65 + "@app.example",
]


@pytest.mark.parametrize("address", REFUSED)
async def test_register_accepts_only_a_plain_address(start_api: StartApi, address: str) -> None:
    api = await start_api()
    body = await api.gql(REGISTER, {"email": address, "password": "correct horse"})
    assert code(body) == "BAD_USER_INPUT", body
    assert body["errors"][0]["extensions"]["field"] == "email"


async def test_change_email_accepts_only_a_plain_address(start_api: StartApi) -> None:
    api = await start_api(MAIL_URL="memory://")
    token = (await api.register())["accessToken"]
    for address in REFUSED[:4]:
        body = await api.gql(CHANGE_EMAIL, {"e": address, "p": "correct horse"}, token=token)
        assert code(body) == "BAD_USER_INPUT", body


@pytest.mark.parametrize(
    "address", ["o'brien+tag@mail.app.example", "a.b-c_d@xn--bcher-kva.example", "A@B.IO"]
)
async def test_ordinary_addresses_are_still_accepted(start_api: StartApi, address: str) -> None:
    api = await start_api()
    user = await api.register(address)
    assert user["user"]["email"] == address.lower()
