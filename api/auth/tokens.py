"""Issuing and verifying access and refresh tokens (docs/API.md, Tokens).

Every PyJWT error becomes one domain error here, raised `from` the original.
"""

from __future__ import annotations

import functools
import hashlib
import uuid
from typing import Any

import jwt
from jwt.algorithms import HMACAlgorithm

from api.auth.keys import KeyRing
from api.clock import Clock
from api.errors import InvalidTokenError, TokenExpiredError
from api.identity import AccessClaims, RefreshClaims
from api.settings import Settings

ACCESS_TYP = "at+jwt"  # RFC 9068
REFRESH_TYP = "rt+jwt"
_ACCESS_REQUIRED = ["iss", "aud", "sub", "sid", "jti", "iat", "exp", "type", "roles", "auth_time"]
_REFRESH_REQUIRED = ["iss", "aud", "sub", "sid", "jti", "iat", "exp", "type"]
# Time claims are checked below against the injected clock, not by PyJWT's wall clock.
_OPTIONS: Any = {"verify_exp": False, "verify_iat": False, "verify_nbf": False}


class _PreparedHMAC(HMACAlgorithm):
    """HS256 whose key checks (PEM/SSH/DER probes) run once per key, not once per token."""

    @functools.lru_cache(maxsize=4)  # noqa: B019 - a handful of keys, for the process lifetime
    def prepare_key(self, key: str | bytes) -> bytes:
        return super().prepare_key(key)


def _pyjwt() -> jwt.PyJWT:
    instance = jwt.PyJWT()
    instance._jws.unregister_algorithm("HS256")
    instance._jws.register_algorithm("HS256", _PreparedHMAC(HMACAlgorithm.SHA256))
    return instance


def new_jti() -> str:
    return uuid.uuid4().hex


def hash_jti(jti: str) -> str:
    return hashlib.sha256(jti.encode()).hexdigest()


VERIFIED_CACHE_SIZE = 4096  # access tokens remembered as verified (~4 MB at most)


class TokenService:
    """Signs and verifies; the algorithm is pinned from configuration, never the header."""

    def __init__(self, settings: Settings, keys: KeyRing, clock: Clock) -> None:
        self._keys = keys
        self._refresh_key = settings.jwt_refresh_secret.encode("utf-8")
        self._issuer = settings.jwt_issuer
        self._audience = settings.jwt_audience
        self._access_ttl = settings.access_token_ttl
        self._leeway = settings.jwt_leeway
        self._clock = clock
        self._jwt = _pyjwt()
        # access token -> its verified claims: a client sends one token dozens of times.
        self._verified: dict[str, AccessClaims] = {}
        self._access_headers: dict[str, Any] = {"typ": ACCESS_TYP}
        if keys.signing_kid is not None:
            self._access_headers["kid"] = keys.signing_kid

    @property
    def access_ttl(self) -> int:
        return self._access_ttl

    def is_expired(self, exp: int) -> bool:
        """True once a token with this `exp` is refused (the leeway included)."""
        return exp <= self._clock() - self._leeway

    def _claims(
        self, kind: str, *, sub: str, sid: str, jti: str, iat: int, exp: int
    ) -> dict[str, Any]:
        """The registered claims every token of ours carries (the contract's Tokens section)."""
        return {
            "iss": self._issuer,
            "aud": self._audience,
            "sub": sub,
            "sid": sid,
            "jti": jti,
            "iat": iat,
            "exp": exp,
            "type": kind,
        }

    def issue_access(
        self,
        *,
        sub: str,
        sid: str,
        roles: tuple[str, ...] | list[str],
        auth_time: int,
        iat: int,
        amr: tuple[str, ...] | list[str] = ("pwd",),
    ) -> tuple[str, int]:
        """A signed access token and its `exp`."""
        exp = iat + self._access_ttl
        claims = self._claims("access", sub=sub, sid=sid, jti=new_jti(), iat=iat, exp=exp)
        claims.update(roles=list(roles), auth_time=auth_time, amr=list(amr))
        token = jwt.encode(
            claims,
            self._keys.signing_key,
            algorithm=self._keys.algorithm,
            headers=self._access_headers,
        )
        return token, exp

    def issue_refresh(self, *, sub: str, sid: str, jti: str, iat: int, exp: int) -> str:
        """A signed refresh token (HS256 with JWT_REFRESH_SECRET: only we ever read it)."""
        claims = self._claims("refresh", sub=sub, sid=sid, jti=jti, iat=iat, exp=exp)
        return jwt.encode(
            claims, self._refresh_key, algorithm="HS256", headers={"typ": REFRESH_TYP}
        )

    def verify_access(self, token: str) -> AccessClaims:
        """Raise TokenExpiredError or InvalidTokenError unless every check passes."""
        claims = self._verified.get(token)
        if claims is not None:
            # The very string that passed every check with our keys (read once at start, so
            # the outcome cannot change): only `exp` can have come due since, `iat` and `nbf`
            # only get further in the past. Revocation is the caller's, on every request.
            if self.is_expired(claims.exp):
                del self._verified[token]
                raise TokenExpiredError()
            return claims
        claims = self._verify_access(token)
        if len(self._verified) >= VERIFIED_CACHE_SIZE:  # oldest first; only valid tokens get in
            del self._verified[next(iter(self._verified))]
        self._verified[token] = claims
        return claims

    def _verify_access(self, token: str) -> AccessClaims:
        if self._keys.signing_kid is None:  # HS256: one key, no need to read the header first
            payload = self._decode(
                token,
                self._keys.signing_key,
                self._keys.algorithm,
                _ACCESS_REQUIRED,
                "access",
                typ=ACCESS_TYP,
            )
        else:
            header = self._header(token, ACCESS_TYP)
            key = self._keys.key_for(header.get("kid"))
            if key is None:
                raise InvalidTokenError("The token was signed by an unknown key.")
            payload = self._decode(token, key, self._keys.algorithm, _ACCESS_REQUIRED, "access")
        roles = payload["roles"]
        if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
            raise InvalidTokenError("The token's roles claim is malformed.")
        # Tokens signed before second factors existed have no `amr`: a password only.
        amr = payload.get("amr", ["pwd"])
        if not isinstance(amr, list) or not all(isinstance(m, str) for m in amr):
            raise InvalidTokenError("The token's amr claim is malformed.")
        return AccessClaims(
            sub=payload["sub"],
            sid=payload["sid"],
            jti=payload["jti"],
            iat=payload["iat"],
            exp=payload["exp"],
            roles=tuple(roles),
            auth_time=_int_claim(payload, "auth_time"),
            amr=tuple(amr),
        )

    def verify_refresh(self, token: str) -> RefreshClaims:
        """Like verify_access, for refresh tokens (their own key, `typ` and `type`)."""
        self._header(token, REFRESH_TYP)
        payload = self._decode(token, self._refresh_key, "HS256", _REFRESH_REQUIRED, "refresh")
        return RefreshClaims(
            sub=payload["sub"],
            sid=payload["sid"],
            jti=payload["jti"],
            iat=payload["iat"],
            exp=payload["exp"],
        )

    @staticmethod
    def _header(token: str, typ: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise InvalidTokenError("The token is malformed.") from exc
        if header.get("typ") != typ:
            raise InvalidTokenError("The token has the wrong type.")
        return header

    def _decode(
        self,
        token: str,
        key: Any,
        algorithm: str,
        required: list[str],
        kind: str,
        typ: str | None = None,
    ) -> dict[str, Any]:
        try:
            complete = self._jwt.decode_complete(
                token,
                key,
                algorithms=[algorithm],
                audience=self._audience,
                issuer=self._issuer,
                options={**_OPTIONS, "require": required},  # type: ignore[arg-type]
            )
        except jwt.PyJWTError as exc:
            raise InvalidTokenError() from exc
        if typ is not None and complete["header"].get("typ") != typ:
            raise InvalidTokenError("The token has the wrong type.")
        payload: dict[str, Any] = complete["payload"]
        if payload.get("type") != kind:
            raise InvalidTokenError("The token has the wrong type.")
        for name in ("sub", "sid", "jti"):
            if not isinstance(payload[name], str):
                raise InvalidTokenError(f"The token's {name} claim is malformed.")
        self._check_times(payload)
        return payload

    def _check_times(self, payload: dict[str, Any]) -> None:
        now = self._clock()
        exp = _int_claim(payload, "exp")
        iat = _int_claim(payload, "iat")
        if iat > now + self._leeway:
            raise InvalidTokenError("The token was issued in the future.")
        if "nbf" in payload and _int_claim(payload, "nbf") > now + self._leeway:
            raise InvalidTokenError("The token is not valid yet.")
        if self.is_expired(exp):
            raise TokenExpiredError()


def _int_claim(payload: dict[str, Any], name: str) -> int:
    value = payload[name]
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidTokenError(f"The token's {name} claim is malformed.")
    return value
