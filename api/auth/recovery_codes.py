"""Recovery codes: ten one-time codes shown once, kept as SHA-256 hashes.

Each has 80 random bits (16 base32 characters), so a fast hash is enough: unlike a password,
nobody can guess one from a list, and a leaked hash cannot be reversed in practice."""

from __future__ import annotations

import hashlib
import secrets

COUNT = 10
_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i: read aloud or typed from paper
_LENGTH = 16


def new_codes() -> list[str]:
    """Ten codes like `abcd-efgh-jkmn-pqrs`."""
    codes = []
    for _ in range(COUNT):
        raw = "".join(secrets.choice(_ALPHABET) for _ in range(_LENGTH))
        codes.append("-".join(raw[i : i + 4] for i in range(0, _LENGTH, 4)))
    return codes


def normalise(code: str) -> str | None:
    """The code without dashes or spaces, lower-cased; None when it cannot be one."""
    raw = code.strip().lower().replace("-", "").replace(" ", "")
    if len(raw) != _LENGTH or any(ch not in _ALPHABET for ch in raw):
        return None
    return raw


def hash_code(user_id: object, normalised: str) -> str:
    """Salted with the user id: equal codes of two users hash differently."""
    return hashlib.sha256(f"{user_id}:{normalised}".encode()).hexdigest()
