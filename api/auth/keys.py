"""Signing keys, parsed once at start: HS256 secrets or a folder of PEM private keys."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm
from jwt.utils import base64url_encode

from api.settings import Settings, SettingsError

_KEY_TYPES: dict[str, tuple[type, ...]] = {
    "EdDSA": (ed25519.Ed25519PrivateKey,),
    "ES256": (ec.EllipticCurvePrivateKey,),
    "RS256": (rsa.RSAPrivateKey,),
}

# RFC 7638: the members of each key type that enter the thumbprint, in lexicographic order.
_THUMBPRINT_MEMBERS = {
    "OKP": ("crv", "kty", "x"),
    "EC": ("crv", "kty", "x", "y"),
    "RSA": ("e", "kty", "n"),
}


def public_jwk(public_key: Any) -> dict[str, Any]:
    """The public JWK of a key, without `kid`."""
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        return dict(OKPAlgorithm.to_jwk(public_key, as_dict=True))
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return dict(ECAlgorithm.to_jwk(public_key, as_dict=True))
    return dict(RSAAlgorithm.to_jwk(public_key, as_dict=True))


def thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638 JWK thumbprint (SHA-256, base64url), used as `kid`."""
    from hashlib import sha256

    members = {name: jwk[name] for name in _THUMBPRINT_MEMBERS[jwk["kty"]]}
    canonical = json.dumps(members, separators=(",", ":"), sort_keys=True).encode()
    return base64url_encode(sha256(canonical).digest()).decode()


@dataclass(frozen=True)
class KeyRing:
    """The access-token keys: the one that signs and every one that verifies, by `kid`."""

    algorithm: str
    signing_key: Any
    signing_kid: str | None
    verify_keys: dict[str, Any] = field(default_factory=dict)
    jwks: dict[str, Any] = field(default_factory=lambda: {"keys": []})

    @classmethod
    def from_settings(cls, settings: Settings) -> KeyRing:
        if not settings.asymmetric:
            secret = settings.jwt_secret.encode("utf-8")
            return cls(
                algorithm="HS256", signing_key=secret, signing_kid=None, verify_keys={"": secret}
            )
        return cls.from_folder(settings.jwt_algorithm, Path(settings.jwt_keys_dir or "."))

    @classmethod
    def from_folder(cls, algorithm: str, folder: Path) -> KeyRing:
        files = sorted(folder.glob("*.pem"))
        if not files:
            raise SettingsError(
                f"JWT_KEYS_DIR={folder} holds no *.pem key; run: python -m api keys generate --alg {algorithm}"
            )
        verify: dict[str, Any] = {}
        jwks: list[dict[str, Any]] = []
        signing: tuple[Any, str] | None = None
        for path in files:  # sorted: the last one (newest) signs
            private = _load_private(path, algorithm)
            jwk = public_jwk(private.public_key())
            kid = thumbprint(jwk)
            verify[kid] = private.public_key()
            jwks.append({**jwk, "kid": kid, "use": "sig", "alg": algorithm})
            signing = (private, kid)
        assert signing is not None
        return cls(
            algorithm=algorithm,
            signing_key=signing[0],
            signing_kid=signing[1],
            verify_keys=verify,
            jwks={"keys": jwks},
        )

    def key_for(self, kid: object) -> Any | None:
        """The verification key for a header's `kid`: only ever a lookup in this map."""
        if self.signing_kid is None:
            return self.verify_keys[""]
        return self.verify_keys.get(kid) if isinstance(kid, str) else None


def _load_private(path: Path, algorithm: str) -> Any:
    """One unencrypted PEM private key fit for `algorithm`, else a SettingsError naming it."""
    try:
        private = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError) as exc:  # malformed, or encrypted
        raise SettingsError(
            f"JWT_KEYS_DIR: {path.name} is not an unencrypted PEM private key"
        ) from exc
    if not isinstance(private, _KEY_TYPES[algorithm]):
        raise SettingsError(f"JWT_KEYS_DIR: {path.name} is not a {algorithm} key")
    # Refused here, at start, not at the first login: ES256 is P-256 only (RFC 7518 3.4) and
    # RSA keys have at least 2048 bits (RFC 7518 3.3).
    if isinstance(private, ec.EllipticCurvePrivateKey) and private.curve.name != "secp256r1":
        raise SettingsError(
            f"JWT_KEYS_DIR: {path.name} is on curve {private.curve.name}; ES256 needs P-256"
        )
    if isinstance(private, rsa.RSAPrivateKey) and private.key_size < 2048:
        raise SettingsError(
            f"JWT_KEYS_DIR: {path.name} has {private.key_size} bits; RS256 needs 2048 or more"
        )
    return private


def generate_key(algorithm: str, folder: Path) -> Path:
    """Write a new private key named `<UTC timestamp>-<alg>.pem` (sorts last, so it signs)."""
    private: Any
    if algorithm == "EdDSA":
        private = ed25519.Ed25519PrivateKey.generate()
    elif algorithm == "ES256":
        private = ec.generate_private_key(ec.SECP256R1())
    elif algorithm == "RS256":
        private = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    else:
        raise SettingsError(f"unknown algorithm {algorithm!r}")
    folder.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(tz=UTC).strftime("%Y%m%dT%H%M%S%fZ")
    path = folder / f"{stamp}-{algorithm}.pem"
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path.touch(mode=0o600, exist_ok=False)
    path.write_bytes(pem)
    return path
