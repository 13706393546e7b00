"""The login -> me -> refresh -> logout path over HTTP, and every error it can give."""

from __future__ import annotations

import time
import uuid
from typing import Any

import jwt
import pytest

from tests.helpers.api import Api, StartApi
from tests.helpers.graphql import ME, code
from tests.helpers.live import free_port


async def test_register_login_me_refresh_logout(api: Api) -> None:
    registered = await api.register(
        "  Ada@Example.COM ", "correct horse", displayName="Ada", device="phone"
    )
    assert registered["tokenType"] == "Bearer"
    assert registered["expiresIn"] == 900
    assert registered["refreshExpiresIn"] == 2_592_000
    assert registered["user"]["email"] == "ada@example.com"
    assert registered["user"]["roles"] == ["user"]

    pair = await api.login("ADA@example.com", "correct horse")
    me = (await api.gql(ME, token=pair["accessToken"]))["data"]["me"]
    assert me["email"] == "ada@example.com"
    assert me["displayName"] == "Ada"
    assert me["isActive"] is True
    assert me["emailVerified"] is False
    assert me["lastLoginAt"] is not None
    assert me["id"] == registered["user"]["id"]

    refreshed = (await api.refresh(pair["refreshToken"]))["data"]["refresh"]
    assert refreshed["refreshToken"] != pair["refreshToken"]
    assert (await api.gql(ME, token=refreshed["accessToken"]))["data"]["me"]["id"] == me["id"]

    logout = await api.gql("mutation { logout }", token=refreshed["accessToken"])
    assert logout == {"data": {"logout": True}}
    after = await api.gql(ME, token=refreshed["accessToken"])
    assert code(after) == "TOKEN_REVOKED"
    assert code(await api.refresh(refreshed["refreshToken"])) == "TOKEN_REVOKED"


async def test_access_token_claims_follow_the_contract(api: Api) -> None:
    pair = await api.register()
    header = jwt.get_unverified_header(pair["accessToken"])
    assert header == {"alg": "HS256", "typ": "at+jwt"}
    claims = jwt.decode(pair["accessToken"], options={"verify_signature": False})
    assert set(claims) == {
        "iss",
        "aud",
        "sub",
        "sid",
        "jti",
        "iat",
        "exp",
        "type",
        "roles",
        "auth_time",
        "amr",
    }
    assert claims["amr"] == ["pwd"]  # RFC 8176: a password sign-in
    assert claims["iss"] == "graphgate" and claims["aud"] == "graphgate-clients"
    assert claims["type"] == "access" and claims["roles"] == ["user"]
    assert claims["exp"] - claims["iat"] == 900
    refresh = jwt.decode(pair["refreshToken"], options={"verify_signature": False})
    assert set(refresh) == {"iss", "aud", "sub", "sid", "jti", "iat", "exp", "type"}
    assert refresh["type"] == "refresh" and refresh["sid"] == claims["sid"]


async def test_me_without_token_is_unauthenticated(api: Api) -> None:
    status, body, headers = await api.post(ME)
    assert status == 200
    assert body["data"] is None
    assert code(body) == "UNAUTHENTICATED"
    assert "WWW-Authenticate" not in headers


async def test_me_id_and_roles_come_from_the_token(api: Api) -> None:
    pair = await api.register()
    body = await api.gql("{ me { id roles } }", token=pair["accessToken"])
    assert body["data"]["me"] == {"id": pair["user"]["id"], "roles": ["user"]}


@pytest.mark.parametrize(
    ("variables", "field"),
    [
        ({"email": "not-an-email", "password": "correct horse"}, "email"),
        ({"email": "a@b", "password": "correct horse"}, "email"),
        ({"email": "ada@example.com", "password": "short"}, "password"),
        ({"email": "ada@example.com", "password": "x" * 1025}, "password"),
        (
            {"email": "ada@example.com", "password": "correct horse", "displayName": "x" * 201},
            "displayName",
        ),
    ],
)
async def test_register_bad_input_names_the_field(
    api: Api, variables: dict[str, Any], field: str
) -> None:
    from tests.helpers.graphql import REGISTER

    body = await api.gql(REGISTER, variables)
    assert code(body) == "BAD_USER_INPUT"
    assert body["errors"][0]["extensions"]["field"] == field


async def test_long_passwords_are_not_truncated(api: Api) -> None:
    long = "p" * 1024
    await api.register(password=long)
    from tests.helpers.graphql import LOGIN

    assert (
        code(await api.gql(LOGIN, {"email": "ada@example.com", "password": long[:-1] + "q"}))
        == "INVALID_CREDENTIALS"
    )
    assert (
        code(await api.gql(LOGIN, {"email": "ada@example.com", "password": "p" * 72}))
        == "INVALID_CREDENTIALS"
    )
    await api.login(password=long)


async def test_email_taken(api: Api) -> None:
    await api.register()
    from tests.helpers.graphql import REGISTER

    body = await api.gql(REGISTER, {"email": "ADA@example.com", "password": "another one"})
    assert code(body) == "EMAIL_TAKEN"


async def test_wrong_password_and_unknown_email_answer_the_same(api: Api) -> None:
    await api.register()
    from tests.helpers.graphql import LOGIN

    wrong = await api.gql(LOGIN, {"email": "ada@example.com", "password": "wrong password"})
    unknown = await api.gql(LOGIN, {"email": "nobody@example.com", "password": "wrong password"})
    assert code(wrong) == code(unknown) == "INVALID_CREDENTIALS"
    assert wrong["errors"][0]["message"] == unknown["errors"][0]["message"]


async def test_deactivated_user(api: Api) -> None:
    from api.db.models import User
    from tests.helpers.graphql import LOGIN

    pair = await api.register()
    await User.filter(email="ada@example.com").update(is_active=False)
    body = await api.gql(LOGIN, {"email": "ada@example.com", "password": "correct horse"})
    assert code(body) == "ACCOUNT_DISABLED"
    wrong = await api.gql(LOGIN, {"email": "ada@example.com", "password": "wrong password"})
    assert code(wrong) == "INVALID_CREDENTIALS"  # the state of an account is told only to its owner
    assert code(await api.gql(ME, token=pair["accessToken"])) == "TOKEN_REVOKED"
    assert code(await api.refresh(pair["refreshToken"])) == "TOKEN_REVOKED"


async def test_refresh_token_is_not_an_access_token_nor_the_reverse(api: Api) -> None:
    pair = await api.register()
    status, body, headers = await api.post(ME, token=pair["refreshToken"])
    assert code(body) == "INVALID_TOKEN"
    assert headers["WWW-Authenticate"].startswith('Bearer error="invalid_token"')
    assert code(await api.refresh(pair["accessToken"])) == "INVALID_TOKEN"


async def test_spent_refresh_token_is_reuse(api: Api) -> None:
    pair = await api.register()
    fresh = (await api.refresh(pair["refreshToken"]))["data"]["refresh"]
    assert code(await api.refresh(pair["refreshToken"])) == "REFRESH_TOKEN_REUSED"
    # The whole session is gone: the pair from the legitimate refresh is refused too.
    assert code(await api.gql(ME, token=fresh["accessToken"])) == "TOKEN_REVOKED"
    assert code(await api.refresh(fresh["refreshToken"])) == "TOKEN_REVOKED"


def _forge(
    claims: dict[str, Any], key: str = "test-access-secret-0123456789-abcdefghijkl", **header: Any
) -> str:
    return jwt.encode(claims, key, algorithm="HS256", headers={"typ": "at+jwt", **header})


def _claims(pair: dict[str, Any]) -> dict[str, Any]:
    return jwt.decode(pair["accessToken"], options={"verify_signature": False})  # type: ignore[no-any-return]


async def test_expired_access_token(api: Api) -> None:
    claims = _claims(await api.register())
    claims.update(iat=int(time.time()) - 2000, exp=int(time.time()) - 100)
    status, body, headers = await api.post(ME, token=_forge(claims))
    assert code(body) == "TOKEN_EXPIRED"
    assert 'error="invalid_token"' in headers["WWW-Authenticate"]


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(
            lambda c: _forge(c, key="another-secret-that-is-long-enough-000"), id="bad-signature"
        ),
        pytest.param(lambda c: _forge({**c, "iss": "evil"}), id="wrong-issuer"),
        pytest.param(lambda c: _forge({**c, "aud": "someone-else"}), id="wrong-audience"),
        pytest.param(lambda c: _forge({**c, "type": "refresh"}), id="wrong-type-claim"),
        pytest.param(lambda c: _forge(c, typ="JWT"), id="wrong-typ-header"),
        pytest.param(
            lambda c: _forge({k: v for k, v in c.items() if k != "sid"}), id="missing-sid"
        ),
        pytest.param(lambda c: _forge({**c, "nbf": int(time.time()) + 3600}), id="nbf-in-future"),
        pytest.param(
            lambda c: _forge({**c, "roles": ["user", "admin"]}, key="x" * 40), id="roles-tampered"
        ),
        pytest.param(
            lambda c: jwt.encode(c, None, algorithm="none", headers={"typ": "at+jwt"}),
            id="alg-none",
        ),
        pytest.param(lambda c: "not.a.jwt", id="garbage"),
    ],
)
async def test_invalid_access_tokens(api: Api, tamper: Any) -> None:
    claims = _claims(await api.register())
    status, body, headers = await api.post(ME, token=tamper(claims))
    assert code(body) == "INVALID_TOKEN"
    assert headers["WWW-Authenticate"].startswith('Bearer error="invalid_token"')


async def test_public_fields_still_resolve_with_a_bad_token(api: Api) -> None:
    await api.register()
    from tests.helpers.graphql import LOGIN

    status, body, _ = await api.post(
        LOGIN, {"email": "ada@example.com", "password": "correct horse"}, token="garbage"
    )
    assert "errors" not in body
    assert body["data"]["login"]["accessToken"]


async def test_unknown_session_in_refresh_token_is_invalid(api: Api) -> None:
    pair = await api.register()
    claims = jwt.decode(pair["refreshToken"], options={"verify_signature": False})
    claims["sid"] = str(uuid.uuid4())
    forged = jwt.encode(
        claims, "test-refresh-secret-0123456789-abcdefghij", headers={"typ": "rt+jwt"}
    )
    assert code(await api.refresh(forged)) == "INVALID_TOKEN"


async def test_unexpected_errors_are_masked(
    api: Api, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from api.auth.sessions import SessionService

    async def boom(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("secret detail from the database")

    pair = await api.register()
    monkeypatch.setattr(SessionService, "live", boom)
    body = await api.gql("{ mySessions { id } }", token=pair["accessToken"])
    assert code(body) == "INTERNAL_SERVER_ERROR"
    assert "secret detail" not in str(body)
    assert "secret detail from the database" in caplog.text


async def test_health_endpoints(api: Api) -> None:
    assert (await api.client.get("/healthz")).status == 200
    assert (await api.client.get("/readyz")).status == 200
    jwks = await (await api.client.get("/.well-known/jwks.json")).json()
    assert jwks == {"keys": []}


async def test_graphiql_in_development(api: Api) -> None:
    resp = await api.client.get("/graphql", headers={"Accept": "text/html"})
    assert resp.status == 200
    assert "graphiql" in (await resp.text()).lower()


async def test_no_token_or_password_in_logs(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG")
    pair = await api.register(password="a very secret password")
    await api.refresh(pair["refreshToken"])
    await api.gql(ME, token="garbage-token-value")
    assert "a very secret password" not in caplog.text
    assert pair["refreshToken"] not in caplog.text
    assert pair["accessToken"] not in caplog.text


@pytest.mark.parametrize(("ready_without_redis", "status"), [("0", 503), ("1", 200)])
async def test_readyz_with_redis_down_follows_ready_without_redis(
    start_api: StartApi, ready_without_redis: str, status: int
) -> None:
    """Replicas sharing one Redis may stay in rotation through its outage: the database
    alone decides, and the body still says Redis is down."""
    closed = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    api = await start_api(REDIS_URL=closed, READY_WITHOUT_REDIS=ready_without_redis)
    resp = await api.client.get("/readyz")
    body = await resp.json()
    assert (resp.status, body["database"], body["redis"]) == (status, "up", "down")
