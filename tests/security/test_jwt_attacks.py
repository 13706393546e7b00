"""jwt_tool's playbook over HTTP: every forged or altered access token is refused.

Each attack runs against an HS256 app and an EdDSA app (kid-based key lookup), on SQLite and
PostgreSQL. Attacks already covered for HS256 in tests/web/test_foundation.py (wrong iss/aud with
a foreign key, `type` claim, `typ: JWT`, missing sid) are not repeated; these extend them.
"""

from __future__ import annotations

import json
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import pytest
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from api.auth.keys import KeyRing, public_jwk, thumbprint
from api.auth.tokens import TokenService
from api.clock import FrozenClock
from api.db.models import User
from tests.helpers.api import Api, StartApi
from tests.helpers.env import BASE_ENV
from tests.helpers.graphql import code
from tests.security.conftest import (
    ACCESS_SECRET,
    ASYMMETRIC,
    b64,
    claims_of,
    hmac_jwt,
    me_code,
    private_key,
    raw_jwt,
    start_asymmetric,
)

ADMIN_MUTATION = (
    'mutation($id: ID!) { setUserRoles(userId: $id, roles: ["user", "admin"]) { roles } }'
)


@dataclass
class Target:
    """A running app, one signed-in user, and the app's own signing key (to alter one thing)."""

    api: Api
    alg: str
    key: Any
    pair: dict[str, Any]

    @property
    def claims(self) -> dict[str, Any]:
        return claims_of(self.pair["accessToken"])

    @property
    def header(self) -> dict[str, Any]:
        return jwt.get_unverified_header(self.pair["accessToken"])

    def sign(self, claims: Any, **header: Any) -> str:
        """Sign with the app's real key; header values of None remove that member."""
        merged = {**self.header, **header}
        typ = merged.pop("typ", None)
        merged.pop("alg", None)
        headers = {k: v for k, v in merged.items() if v is not None}
        headers["typ"] = typ  # PyJWT adds typ=JWT unless told None
        # Raw JSON through the JWS layer: PyJWT's encode would refuse some malformed claims.
        raw = json.dumps(claims).encode()
        return jwt.api_jws.encode(raw, self.key, algorithm=self.alg, headers=headers)


@pytest.fixture(params=["HS256", "EdDSA"])
async def target(
    request: pytest.FixtureRequest, start_api: StartApi, key_folders: dict[str, Path]
) -> Target:
    if request.param == "HS256":
        api = await start_api()
        key: Any = ACCESS_SECRET
    else:
        folder = key_folders[request.param]
        api = await start_asymmetric(start_api, request.param, folder)
        key = private_key(folder)
    pair = await api.register()
    assert await me_code(api, pair["accessToken"]) is None
    return Target(api=api, alg=request.param, key=key, pair=pair)


def _attacker_ed25519() -> tuple[ed25519.Ed25519PrivateKey, dict[str, Any]]:
    key = ed25519.Ed25519PrivateKey.generate()
    jwk = public_jwk(key.public_key())
    return key, {**jwk, "kid": thumbprint(jwk)}


# --- alg ---------------------------------------------------------------------------------


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
@pytest.mark.parametrize("signature", ["empty", "original"])
async def test_alg_none_is_refused_in_every_spelling(
    target: Target, alg: str, signature: str
) -> None:
    original = target.pair["accessToken"].split(".")[2]
    admin_claims = {**target.claims, "roles": ["user", "admin"]}
    token = raw_jwt({**target.header, "alg": alg}, admin_claims)
    if signature == "original":
        token = token + original
    assert await me_code(target.api, token) == "INVALID_TOKEN"
    # The same trick on a refresh token.
    refresh_header = jwt.get_unverified_header(target.pair["refreshToken"])
    forged = raw_jwt({**refresh_header, "alg": alg}, claims_of(target.pair["refreshToken"]))
    assert code(await target.api.refresh(forged)) == "INVALID_TOKEN"


@pytest.mark.parametrize("alg", ASYMMETRIC)
async def test_hs256_signed_with_the_public_key_is_refused(
    start_api: StartApi, key_folders: dict[str, Path], alg: str
) -> None:
    """Algorithm confusion: the public key (PEM, DER, SSH, JWK) used as an HMAC secret."""
    api = await start_asymmetric(start_api, alg, key_folders[alg])
    pair = await api.register()
    claims = {**claims_of(pair["accessToken"]), "roles": ["user", "admin"]}
    kid = jwt.get_unverified_header(pair["accessToken"])["kid"]
    public = private_key(key_folders[alg]).public_key()
    pem = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    der = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    ssh = public.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    jwks = await (await api.client.get("/.well-known/jwks.json")).text()
    for secret in (pem, pem.rstrip(b"\n"), der, ssh, jwks.encode()):
        for header in ({"alg": "HS256", "typ": "at+jwt", "kid": kid}, {"alg": "HS256"}):
            assert await me_code(api, hmac_jwt(header, claims, secret)) == "INVALID_TOKEN"


# --- signature ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "mangle",
    [
        pytest.param(lambda h, p, s: f"{h}.{p}", id="stripped"),
        pytest.param(lambda h, p, s: f"{h}.{p}.", id="blank"),
        pytest.param(lambda h, p, s: f"{h}.{p}.{s[:-6]}", id="truncated"),
        pytest.param(lambda h, p, s: f"{h}.{p}.{s[:10]}", id="mostly-truncated"),
        pytest.param(lambda h, p, s: f"{h}.{p}.{s}A", id="one-extra-char"),
        pytest.param(lambda h, p, s: f"{h}.{p}.{s}.{s}", id="extra-segment"),
        pytest.param(lambda h, p, s: f"{h}.{p}.{'A' * len(s)}", id="zeroed"),
        pytest.param(lambda h, p, s: f"{h}.{p}.!!!!", id="not-base64"),
    ],
)
async def test_broken_signatures_are_refused(target: Target, mangle: Any) -> None:
    h, p, s = target.pair["accessToken"].split(".")
    assert await me_code(target.api, mangle(h, p, s)) == "INVALID_TOKEN"


async def test_roles_claim_tampered_keeps_nothing(target: Target) -> None:
    """Admin added to the payload of a genuine token, its signature kept: refused everywhere."""
    h, _, s = target.pair["accessToken"].split(".")
    tampered_payload = raw_jwt({}, {**target.claims, "roles": ["user", "admin"]}).split(".")[1]
    token = f"{h}.{tampered_payload}.{s}"
    assert await me_code(target.api, token) == "INVALID_TOKEN"
    user_id = target.pair["user"]["id"]
    body = await target.api.gql(ADMIN_MUTATION, {"id": user_id}, token=token)
    assert code(body) == "INVALID_TOKEN"
    assert body["data"] is None
    assert (await User.get(id=user_id)).roles == ["user"]


async def test_a_token_signed_by_another_key_of_the_same_kind_is_refused(
    target: Target,
) -> None:
    if target.alg == "HS256":
        forged = jwt.encode(target.claims, "x" * 40, algorithm="HS256", headers={"typ": "at+jwt"})
    else:
        attacker, _ = _attacker_ed25519()
        # The app's own kid, the attacker's key.
        forged = jwt.encode(target.claims, attacker, algorithm="EdDSA", headers=target.header)
    assert await me_code(target.api, forged) == "INVALID_TOKEN"


async def test_es256_psychic_signature_is_refused(
    start_api: StartApi, key_folders: dict[str, Path]
) -> None:
    """CVE-2022-21449: an ECDSA signature of r = s = 0 must never verify."""
    api = await start_asymmetric(start_api, "ES256", key_folders["ES256"])
    pair = await api.register()
    h, p, _ = pair["accessToken"].split(".")
    assert await me_code(api, f"{h}.{p}.{b64(bytes(64))}") == "INVALID_TOKEN"


# --- kid ---------------------------------------------------------------------------------


_SIDE_EFFECT_EVENTS = ("open", "os.system", "subprocess.Popen", "os.exec", "os.posix_spawn")
_watched: list[tuple[str, str]] = []
_markers: list[str] = []


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if _markers and event in _SIDE_EFFECT_EVENTS:
        text = repr(args)
        if any(marker in text for marker in _markers):
            _watched.append((event, text))


_hook_installed = False


@contextmanager
def side_effects(marker: str) -> Iterator[list[tuple[str, str]]]:
    """Record every file open or process start whose arguments mention `marker`."""
    global _hook_installed
    if not _hook_installed:
        sys.addaudithook(_audit)  # audit hooks cannot be removed: it idles when no marker is set
        _hook_installed = True
    _watched.clear()
    _markers[:] = [marker]
    try:
        yield _watched
    finally:
        _markers.clear()


async def test_kid_is_only_ever_a_map_lookup(
    target: Target, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Path traversal, SQL and shell strings in `kid`: INVALID_TOKEN, and nothing touched."""
    caplog.set_level("DEBUG")
    marker = uuid.uuid4().hex
    sentinel = tmp_path / f"pwned-{marker}"
    known = tmp_path / f"known-{marker}.key"
    known.write_text("attacker-chosen-key-content")
    kids = [
        f"../../../../../../../..{known}",
        str(known),
        "../../../../../../../../dev/null",
        f"/dev/null#{marker}",
        f"../../../../etc/passwd#{marker}",
        f"' UNION SELECT 'attacker-chosen-key-content' -- {marker}",
        f"x' OR '1'='1'; DROP TABLE users; -- {marker}",
        f"$(touch {sentinel})",
        f"`touch {sentinel}`",
        f"; touch {sentinel}",
        f"| touch {sentinel}",
        f"{marker}\x00.pem",
    ]
    # Keys an attacker can predict for each trick: the file, an empty file, the SQL literal.
    secrets = [b"attacker-chosen-key-content", b"", b"attacker-chosen-key-content\n"]
    admin = {**target.claims, "roles": ["user", "admin"]}
    with side_effects(marker) as touched:
        known.read_text()  # self-check: the watch does see a file being opened
        assert touched
        touched.clear()
        for kid in kids:
            for secret in secrets:
                token = hmac_jwt({"alg": "HS256", "typ": "at+jwt", "kid": kid}, admin, secret)
                assert await me_code(target.api, token) == "INVALID_TOKEN", kid
            if target.alg != "HS256":
                attacker, _ = _attacker_ed25519()
                token = jwt.encode(
                    admin, attacker, algorithm="EdDSA", headers={"typ": "at+jwt", "kid": kid}
                )
                assert await me_code(target.api, token) == "INVALID_TOKEN", kid
    assert touched == []
    assert not sentinel.exists()
    # Nothing was dropped or changed: the user still signs in, with the role they had.
    assert (await target.api.login())["user"]["roles"] == ["user"]
    assert "SELECT" in caplog.text  # SQL is logged at DEBUG, with its parameters ...
    assert marker not in caplog.text  # ... and no query, no log line ever carried the kid


@pytest.mark.parametrize("kid", [None, "", 0, ["x"], {"k": "v"}, "a" * 5000])
async def test_missing_or_odd_kid_values(target: Target, kid: Any) -> None:
    header = {**target.header, "kid": kid} if kid is not None else {"typ": "at+jwt"}
    token = raw_jwt({**header, "alg": target.alg}, target.claims)
    token = token + target.pair["accessToken"].split(".")[2]
    assert await me_code(target.api, token) == "INVALID_TOKEN"


# --- keys from the token itself ------------------------------------------------------------


def _self_signed_cert(key: ed25519.Ed25519PrivateKey) -> bytes:
    import datetime

    from cryptography import x509
    from cryptography.x509.oid import NameOID

    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "graphgate")])
    now = datetime.datetime.now(tz=datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, None)
    )
    return cert.public_bytes(serialization.Encoding.DER)


async def test_jku_and_x5u_are_never_fetched(target: Target, aiohttp_server: Any) -> None:
    """Header URLs pointing at an attacker's key server: refused, and never called."""
    attacker, attacker_jwk = _attacker_ed25519()
    hmac_secret = b"attacker-hmac-secret-0123456789-abcdef"
    oct_jwk = {"kty": "oct", "k": b64(hmac_secret), "kid": "attacker-oct", "alg": "HS256"}
    calls: list[str] = []

    async def handler(request: web.Request) -> web.Response:
        calls.append(request.path)
        if request.path.endswith(".pem"):
            return web.Response(body=_self_signed_cert(attacker))
        return web.json_response({"keys": [attacker_jwk, oct_jwk]})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    server = await aiohttp_server(app)
    base = f"http://127.0.0.1:{server.port}"
    admin = {**target.claims, "roles": ["user", "admin"]}
    for member, url in (("jku", f"{base}/jwks.json"), ("x5u", f"{base}/cert.pem")):
        forged = [
            jwt.encode(
                admin,
                attacker,
                algorithm="EdDSA",
                headers={"typ": "at+jwt", "kid": attacker_jwk["kid"], member: url},
            ),
            hmac_jwt(
                {"alg": "HS256", "typ": "at+jwt", "kid": "attacker-oct", member: url},
                admin,
                hmac_secret,
            ),
        ]
        for token in forged:
            assert await me_code(target.api, token) == "INVALID_TOKEN"
    # Self-check: the attacker's server does answer when asked.
    async with target.api.client.session.get(f"{base}/probe") as resp:
        assert resp.status == 200
    assert calls == ["/probe"]


async def test_keys_embedded_in_the_header_are_ignored(target: Target) -> None:
    """`jwk` and `x5c` carrying the attacker's own key: refused."""
    import base64

    attacker, attacker_jwk = _attacker_ed25519()
    cert = base64.b64encode(_self_signed_cert(attacker)).decode()
    admin = {**target.claims, "roles": ["user", "admin"]}
    for extra in ({"jwk": attacker_jwk}, {"x5c": [cert]}):
        token = jwt.encode(
            admin,
            attacker,
            algorithm="EdDSA",
            headers={"typ": "at+jwt", "kid": attacker_jwk["kid"], **extra},
        )
        assert await me_code(target.api, token) == "INVALID_TOKEN"
    oct_secret = b"attacker-hmac-secret-0123456789-abcdef"
    oct_jwk = {"kty": "oct", "k": b64(oct_secret)}
    token = hmac_jwt({"alg": "HS256", "typ": "at+jwt", "jwk": oct_jwk}, admin, oct_secret)
    assert await me_code(target.api, token) == "INVALID_TOKEN"


async def test_unknown_critical_header_is_refused(target: Target) -> None:
    """RFC 7515 4.1.11: a `crit` extension the server does not understand fails the token."""
    token = target.sign(target.claims, crit=["x-trust-me"], **{"x-trust-me": True})
    assert await me_code(target.api, token) == "INVALID_TOKEN"


# --- typ, type and claims ------------------------------------------------------------------


@pytest.mark.parametrize("typ", [None, "", "JWT", "rt+jwt", "jwt", "at+jwt "])
async def test_missing_or_wrong_typ_is_refused(target: Target, typ: str | None) -> None:
    assert await me_code(target.api, target.sign(target.claims, typ=typ)) == "INVALID_TOKEN"


async def test_refresh_token_as_access_and_back_on_an_asymmetric_app(
    start_api: StartApi, key_folders: dict[str, Path]
) -> None:
    api = await start_asymmetric(start_api, "EdDSA", key_folders["EdDSA"])
    pair = await api.register()
    assert await me_code(api, pair["refreshToken"]) == "INVALID_TOKEN"
    assert code(await api.refresh(pair["accessToken"])) == "INVALID_TOKEN"
    # Even re-labelled (typ and type swapped) and signed with the refresh key: refused.
    claims = {**claims_of(pair["refreshToken"]), "type": "access", "roles": ["admin"]}
    claims["auth_time"] = claims["iat"]
    relabelled = jwt.encode(
        claims, BASE_ENV["JWT_REFRESH_SECRET"], algorithm="HS256", headers={"typ": "at+jwt"}
    )
    assert await me_code(api, relabelled) == "INVALID_TOKEN"


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda c: ["not", "an", "object"], id="payload-is-a-list"),
        pytest.param(lambda c: "a string", id="payload-is-a-string"),
        pytest.param(lambda c: {**c, "sub": 12345}, id="sub-int"),
        pytest.param(lambda c: {**c, "sid": None}, id="sid-null"),
        pytest.param(lambda c: {**c, "roles": "admin"}, id="roles-string"),
        pytest.param(lambda c: {**c, "roles": [{"admin": True}]}, id="roles-objects"),
        pytest.param(lambda c: {**c, "exp": str(c["exp"])}, id="exp-string"),
        pytest.param(lambda c: {**c, "exp": True}, id="exp-bool"),
        pytest.param(lambda c: {**c, "exp": 1e300}, id="exp-huge-float"),
        pytest.param(lambda c: {**c, "iat": c["iat"] + 0.5}, id="iat-float"),
        pytest.param(lambda c: {**c, "nbf": "soon"}, id="nbf-string"),
        pytest.param(lambda c: {**c, "auth_time": None}, id="auth-time-null"),
        pytest.param(lambda c: {**c, "aud": ["someone-else"]}, id="aud-list-without-us"),
        pytest.param(lambda c: {**c, "iss": None}, id="iss-null"),
        *(
            pytest.param(lambda c, n=name: {k: v for k, v in c.items() if k != n}, id=f"no-{name}")
            for name in ("iss", "aud", "sub", "jti", "iat", "exp", "type", "roles", "auth_time")
        ),
    ],
)
async def test_correctly_signed_but_malformed_claims(target: Target, change: Any) -> None:
    """Defence in depth: even with a valid signature, a malformed token is INVALID_TOKEN."""
    _status, body, _ = await target.api.post(
        "{ me { id } }", token=target.sign(change(target.claims))
    )
    assert code(body) == "INVALID_TOKEN", body


# --- time --------------------------------------------------------------------------------


async def test_expiry_honours_the_leeway_and_no_more(
    start_api: StartApi, clock: FrozenClock
) -> None:
    api = await start_api(clock=clock, JWT_LEEWAY="30")
    pair = await api.register()
    clock.advance(900 + 29)  # ACCESS_TOKEN_TTL plus most of the leeway
    assert await me_code(api, pair["accessToken"]) is None
    clock.advance(2)
    assert await me_code(api, pair["accessToken"]) == "TOKEN_EXPIRED"


async def test_nbf_and_iat_in_the_future(target: Target) -> None:
    now = target.claims["iat"]
    # Within the leeway (30 s) a clock skew is tolerated ...
    assert await me_code(target.api, target.sign({**target.claims, "nbf": now + 20})) is None
    # ... past it, not.
    late = target.sign({**target.claims, "nbf": now + 3600})
    assert await me_code(target.api, late) == "INVALID_TOKEN"
    future = {**target.claims, "iat": now + 3600, "exp": now + 7200}
    assert await me_code(target.api, target.sign(future)) == "INVALID_TOKEN"


@pytest.mark.parametrize(
    "other", [{"JWT_ISSUER": "graphgate-staging"}, {"JWT_AUDIENCE": "reporting-service"}]
)
async def test_tokens_of_a_sibling_deployment_sharing_the_key_are_refused(
    target: Target, make_settings: Any, key_folders: dict[str, Path], other: dict[str, str]
) -> None:
    """A staging app or another service with the same key but another iss/aud mints a token."""
    env = dict(other)
    if target.alg != "HS256":
        env.update(JWT_ALGORITHM=target.alg, JWT_KEYS_DIR=str(key_folders[target.alg]))
    sibling_settings = make_settings(**env)
    sibling = TokenService(sibling_settings, KeyRing.from_settings(sibling_settings), lambda: 0)
    claims = target.claims
    token, _ = sibling.issue_access(
        sub=claims["sub"],
        sid=claims["sid"],
        roles=["user", "admin"],
        auth_time=claims["iat"],
        iat=claims["iat"],
    )
    assert jwt.get_unverified_header(token) == target.header  # same key, same kid
    assert await me_code(target.api, token) == "INVALID_TOKEN"


def test_the_verified_token_cache_is_exact_bounded_and_expires(make_settings: Any) -> None:
    """TokenService remembers verified access tokens: only the exact string, never past exp."""
    from api.auth import tokens as tokens_module
    from api.errors import InvalidTokenError, TokenExpiredError

    settings = make_settings()
    clock = FrozenClock(1_800_000_000)
    service = TokenService(settings, KeyRing.from_settings(settings), clock)
    token, exp = service.issue_access(
        sub="u1", sid="s1", roles=["user"], auth_time=clock(), iat=clock()
    )
    assert service.verify_access(token).sub == "u1"
    assert service.verify_access(token).sub == "u1"  # from the cache
    head, payload, signature = token.split(".")
    flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]
    for forged in (f"{head}.{payload}.{flipped}", token + " ", f"{head}.{payload}."):
        with pytest.raises(InvalidTokenError):
            service.verify_access(forged)
    clock.advance(exp - clock() + settings.jwt_leeway)
    with pytest.raises(TokenExpiredError):
        service.verify_access(token)
    with pytest.raises(TokenExpiredError):  # and it stays so: not re-verified into validity
        service.verify_access(token)

    bound = tokens_module.VERIFIED_CACHE_SIZE
    for n in range(bound + 10):
        minted, _ = service.issue_access(
            sub=f"u{n}", sid="s", roles=[], auth_time=clock(), iat=clock()
        )
        service.verify_access(minted)
    assert len(service._verified) == bound
