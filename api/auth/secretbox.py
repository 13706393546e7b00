"""TOTP secrets at rest: AES-256-GCM with MFA_ENCRYPTION_KEY (the first key encrypts, every
key decrypts, so keys rotate without a migration: docs/mfa.md, Key rotation)."""

from __future__ import annotations

import base64
import hashlib
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from api.errors import ServiceUnavailableError

_VERSION = "v1"


def _kid(key: bytes) -> str:
    """A short public name of a key: which one to decrypt with, without trying each."""
    return hashlib.sha256(b"graphgate-mfa-kid" + key).hexdigest()[:8]


class SecretBox:
    """Encrypts short secrets as `v1.<kid>.<nonce+ciphertext>`; the user id is the associated
    data, so a secret copied onto another user's row does not decrypt."""

    def __init__(self, keys: tuple[str, ...]) -> None:
        raw = [base64.urlsafe_b64decode(key.encode()) for key in keys]
        self._ciphers = {_kid(key): AESGCM(key) for key in raw}
        self._current = _kid(raw[0]) if raw else None

    @property
    def configured(self) -> bool:
        return self._current is not None

    def encrypt(self, plaintext: str, owner: str) -> str:
        if self._current is None:
            raise ServiceUnavailableError(
                "Two-factor sign-in is not configured on this server (MFA_ENCRYPTION_KEY)."
            )
        nonce = os.urandom(12)
        sealed = self._ciphers[self._current].encrypt(nonce, plaintext.encode(), owner.encode())
        body = base64.urlsafe_b64encode(nonce + sealed).decode()
        return f"{_VERSION}.{self._current}.{body}"

    def decrypt(self, stored: str, owner: str) -> str:
        """The plaintext; SERVICE_UNAVAILABLE when no configured key opens it."""
        version, kid, body = stored.split(".", 2)
        cipher = self._ciphers.get(kid) if version == _VERSION else None
        if cipher is None:
            raise ServiceUnavailableError(
                "A second factor's secret needs an MFA_ENCRYPTION_KEY this server lacks."
            )
        blob = base64.urlsafe_b64decode(body.encode())
        try:
            return cipher.decrypt(blob[:12], blob[12:], owner.encode()).decode()
        except InvalidTag as exc:
            raise ServiceUnavailableError("A second factor's secret does not decrypt.") from exc

    def is_current(self, stored: str) -> bool:
        """Whether `stored` was sealed with the current key (else re-seal it on next use)."""
        return stored.split(".", 2)[1:2] == [self._current]
