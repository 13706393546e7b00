"""AccountService called directly, beside the GraphQL tests of the same rules: what a
password check proved is re-checked when the session starts (login's compare-and-set)."""

from __future__ import annotations

import pytest

from api.accounts.service import AccountService
from api.db.models import AuditEvent, Session, User
from api.errors import AccountDisabledError, InvalidCredentialsError
from api.identity import ClientInfo
from api.web.appkeys import SERVICES_KEY
from tests.helpers.api import Api

CLIENT = ClientInfo(ip="203.0.113.7")
EMAIL, PASSWORD = "ada@example.com", "correct horse"


def accounts(api: Api) -> AccountService:
    return api.app[SERVICES_KEY].accounts


async def test_authenticate_returns_what_it_proved(api: Api) -> None:
    pair = await api.register(EMAIL, PASSWORD)
    verified = await accounts(api).authenticate(EMAIL, PASSWORD, CLIENT)
    user = await User.get(id=pair["user"]["id"])
    assert (verified.user_id, verified.password_hash) == (user.id, user.password_hash)


async def test_login_refuses_a_verified_hash_that_went_stale_before_the_session_started(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    pair = await api.register(EMAIL, PASSWORD)
    service = accounts(api)
    verified = await service.authenticate(EMAIL, PASSWORD, CLIENT)
    # The password changes while the hash of the attempt is being checked.
    await User.filter(id=verified.user_id).update(password_hash=verified.password_hash + "x")

    async def stale(email: str, password: str, client: ClientInfo) -> object:
        return verified

    monkeypatch.setattr(service, "authenticate", stale)
    before = await Session.filter(user_id=pair["user"]["id"]).count()
    with pytest.raises(InvalidCredentialsError):
        await service.login(EMAIL, PASSWORD, device=None, client=CLIENT)
    assert await Session.filter(user_id=pair["user"]["id"]).count() == before
    # The refusal is on the record (written after the transaction it refused rolled back).
    assert await AuditEvent.filter(kind="login_failed", detail="stale").exists()


async def test_login_refuses_an_account_deactivated_after_the_check(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    await api.register(EMAIL, PASSWORD)
    service = accounts(api)
    verified = await service.authenticate(EMAIL, PASSWORD, CLIENT)
    await User.filter(id=verified.user_id).update(is_active=False)

    async def checked_before(email: str, password: str, client: ClientInfo) -> object:
        return verified

    monkeypatch.setattr(service, "authenticate", checked_before)
    with pytest.raises(AccountDisabledError):
        await service.login(EMAIL, PASSWORD, device=None, client=CLIENT)


async def test_login_with_a_fresh_check_starts_a_session(api: Api) -> None:
    pair = await api.register(EMAIL, PASSWORD)
    issued = await accounts(api).login(EMAIL, PASSWORD, device="laptop", client=CLIENT)
    row = await Session.get(id=issued.session_id)
    assert str(row.user_id) == pair["user"]["id"] and row.device == "laptop"
