"""SessionService called directly, beside the GraphQL tests of the same rules
(tests/auth/test_sessions.py): rotation and reuse, idempotent ends, the re-check under lock."""

from __future__ import annotations

import pytest

from api.auth.sessions import SessionService
from api.db.connection import atomic
from api.db.models import AuditEvent, Session, User
from api.errors import InvalidCredentialsError, RefreshTokenReusedError, TokenRevokedError
from api.identity import ClientInfo
from api.web.appkeys import SERVICES_KEY
from tests.helpers.api import Api

CLIENT = ClientInfo(ip="203.0.113.7")


def sessions(api: Api) -> SessionService:
    return api.app[SERVICES_KEY].sessions


async def test_rotate_spends_the_token_and_a_second_spend_ends_the_session(api: Api) -> None:
    pair = await api.register()
    service = sessions(api)
    nxt = await service.rotate(pair["refreshToken"], CLIENT)
    assert nxt.refresh_token != pair["refreshToken"]
    with pytest.raises(RefreshTokenReusedError):
        await service.rotate(pair["refreshToken"], CLIENT)
    with pytest.raises(TokenRevokedError):  # the whole session ended, the new pair with it
        await service.rotate(nxt.refresh_token, CLIENT)
    row = await Session.get(id=nxt.session_id)
    assert row.ended_at is not None and row.end_reason == "reuse"
    assert await AuditEvent.filter(kind="refresh_reuse_detected").count() == 1


async def test_end_is_idempotent(api: Api) -> None:
    pair = await api.register()
    sid = (await Session.get(user_id=pair["user"]["id"])).id
    service = sessions(api)
    assert await service.end([sid], reason="logout", client=CLIENT) == 1
    assert await service.end([sid], reason="logout", client=CLIENT) == 0
    assert await service.end([], reason="logout", client=CLIENT) == 0
    assert (await Session.get(id=sid)).end_reason == "logout"  # the first reason stays


async def test_end_all_keeps_the_named_session_and_is_idempotent(api: Api) -> None:
    first = await api.register()
    await api.login()
    await api.login()
    keep = str((await Session.filter(user_id=first["user"]["id"]).order_by("created_at"))[0].id)
    service = sessions(api)
    user_id = first["user"]["id"]
    assert await service.end_all(user_id, reason="logout_all", client=CLIENT, keep=keep) == 2
    assert await service.end_all(user_id, reason="logout_all", client=CLIENT, keep=keep) == 0
    assert [str(s.id) for s in await service.live(user_id)] == [keep]


async def test_lock_caller_accepts_a_live_caller_and_returns_the_locked_row(api: Api) -> None:
    pair = await api.register()
    claims = api.app[SERVICES_KEY].tokens.verify_access(pair["accessToken"])
    async with atomic() as conn:
        user = await sessions(api).lock_caller(claims, conn)
    assert str(user.id) == pair["user"]["id"]


async def test_lock_caller_refuses_an_ended_session(api: Api) -> None:
    pair = await api.register()
    claims = api.app[SERVICES_KEY].tokens.verify_access(pair["accessToken"])
    await sessions(api).end([claims.sid], reason="logout", client=CLIENT)
    with pytest.raises(TokenRevokedError):
        async with atomic() as conn:
            await sessions(api).lock_caller(claims, conn)


async def test_lock_caller_refuses_a_deactivated_account(api: Api) -> None:
    pair = await api.register()
    claims = api.app[SERVICES_KEY].tokens.verify_access(pair["accessToken"])
    await User.filter(id=claims.sub).update(is_active=False)
    with pytest.raises(TokenRevokedError):
        async with atomic() as conn:
            await sessions(api).lock_caller(claims, conn)


async def test_lock_caller_refuses_a_password_that_changed_since_it_was_checked(
    api: Api,
) -> None:
    pair = await api.register()
    claims = api.app[SERVICES_KEY].tokens.verify_access(pair["accessToken"])
    proved = (await User.get(id=claims.sub)).password_hash
    await User.filter(id=claims.sub).update(password_hash=proved + "-changed")
    with pytest.raises(InvalidCredentialsError):
        async with atomic() as conn:
            await sessions(api).lock_caller(claims, conn, proved_hash=proved)
