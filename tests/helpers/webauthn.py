"""A software passkey (an authenticator in Python) and the passkey operations of a client.

It answers the server's options as a browser with a platform authenticator would, and
produces the same JSON as `credential.toJSON()`: a P-256 key, `none` attestation, a counter.
Every part it signs can be bent (origin, relying party id, counter, flags) to test refusals.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import struct
import uuid
from dataclasses import dataclass, field
from typing import Any

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from webauthn.helpers import base64url_to_bytes, bytes_to_base64url

from tests.helpers.api import Api
from tests.helpers.graphql import PAIR

ORIGIN = "http://localhost:8000"  # development's default: WEBAUTHN_RP_ID localhost, PORT 8000
RP_ID = "localhost"

START_REGISTRATION = "mutation { startPasskeyRegistration { challengeId options } }"
FINISH_REGISTRATION = """mutation($c: String!, $cred: JSON!, $n: String) {
  finishPasskeyRegistration(challengeId: $c, credential: $cred, name: $n) {
    id name createdAt lastUsedAt } }"""
START_SIGN_IN = """mutation($e: String, $t: String) {
  startPasskeySignIn(email: $e, mfaToken: $t) { challengeId options } }"""
FINISH_SIGN_IN = f"""mutation($c: String!, $cred: JSON!, $d: String) {{
  finishPasskeySignIn(challengeId: $c, credential: $cred, device: $d) {{ {PAIR} }} }}"""
MY_PASSKEYS = "{ myPasskeys { id name createdAt lastUsedAt } }"
RENAME = "mutation($id: ID!, $n: String!) { renamePasskey(id: $id, name: $n) { id name } }"
REMOVE = "mutation($id: ID!) { removePasskey(id: $id) }"

UP, UV, BE, BS, AT = 0x01, 0x04, 0x08, 0x10, 0x40


def _b64(data: bytes) -> str:
    return bytes_to_base64url(data)


@dataclass
class SoftPasskey:
    """One discoverable credential on a software authenticator."""

    origin: str = ORIGIN
    rp_id: str = RP_ID
    user_verified: bool = True
    synced: bool = False  # backup eligible: a synced passkey (amr `swk`), else `hwk`
    sign_count: int = 0
    counting: bool = True  # authenticators that keep no counter always send 0
    key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    credential_id: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    user_handle: bytes | None = None
    cose_key: bytes | None = None  # registered instead of this key's own (odd keys)

    @property
    def id(self) -> str:
        return _b64(self.credential_id)

    def _flags(self, attested: bool) -> int:
        flags = UP | (UV if self.user_verified else 0) | (BE | BS if self.synced else 0)
        return flags | (AT if attested else 0)

    def _auth_data(self, rp_id: str, attested: bool) -> bytes:
        if self.counting:
            self.sign_count += 1
        head = hashlib.sha256(rp_id.encode()).digest()
        head += bytes([self._flags(attested)]) + struct.pack(">I", self.sign_count)
        if not attested:
            return head
        numbers = self.key.public_key().public_numbers()
        cose = self.cose_key or cbor2.dumps(
            {
                1: 2,
                3: -7,
                -1: 1,
                -2: numbers.x.to_bytes(32, "big"),
                -3: numbers.y.to_bytes(32, "big"),
            }
        )
        aaguid = bytes(16)
        return (
            head + aaguid + struct.pack(">H", len(self.credential_id)) + self.credential_id + cose
        )

    def _client_data(self, kind: str, challenge: str, origin: str | None) -> bytes:
        data = {
            "type": kind,
            "challenge": challenge,
            "origin": origin or self.origin,
            "crossOrigin": False,
        }
        return json.dumps(data).encode()

    def create(
        self, options: dict[str, Any], *, origin: str | None = None, rp_id: str | None = None
    ) -> dict[str, Any]:
        """navigator.credentials.create({publicKey: options}), then credential.toJSON()."""
        self.user_handle = base64url_to_bytes(options["user"]["id"])
        client_data = self._client_data("webauthn.create", options["challenge"], origin)
        auth_data = self._auth_data(rp_id or options["rp"]["id"], attested=True)
        attestation = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data})
        return self._credential(
            {
                "clientDataJSON": _b64(client_data),
                "attestationObject": _b64(attestation),
                "transports": ["internal"],
            }
        )

    def _credential(self, response: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": self.id,
            "rawId": self.id,
            "type": "public-key",
            "authenticatorAttachment": "platform",
            "clientExtensionResults": {},
            "response": response,
        }

    def get(
        self,
        options: dict[str, Any],
        *,
        origin: str | None = None,
        rp_id: str | None = None,
        challenge: str | None = None,
    ) -> dict[str, Any]:
        """navigator.credentials.get({publicKey: options}), then credential.toJSON()."""
        client_data = self._client_data("webauthn.get", challenge or options["challenge"], origin)
        auth_data = self._auth_data(rp_id or options.get("rpId") or self.rp_id, attested=False)
        signature = self.key.sign(
            auth_data + hashlib.sha256(client_data).digest(), ec.ECDSA(hashes.SHA256())
        )
        response: dict[str, Any] = {
            "clientDataJSON": _b64(client_data),
            "authenticatorData": _b64(auth_data),
            "signature": _b64(signature),
        }
        if self.user_handle is not None:
            response["userHandle"] = _b64(self.user_handle)
        return self._credential(response)


async def add_passkey(
    api: Api, token: str, passkey: SoftPasskey, name: str | None = None
) -> dict[str, Any]:
    """Register `passkey` for the token's user; the new Passkey (asserts it worked)."""
    started = await api.gql(START_REGISTRATION, token=token)
    assert "errors" not in started, started
    ceremony = started["data"]["startPasskeyRegistration"]
    finished = await api.gql(
        FINISH_REGISTRATION,
        {"c": ceremony["challengeId"], "cred": passkey.create(ceremony["options"]), "n": name},
        token=token,
    )
    assert "errors" not in finished, finished
    return finished["data"]["finishPasskeyRegistration"]  # type: ignore[no-any-return]


async def with_passkey(
    api: Api, email: str = "ada@example.com", **knobs: Any
) -> tuple[str, SoftPasskey]:
    """A new account with one passkey: its access token and the passkey."""
    token = (await api.register(email))["accessToken"]
    key = SoftPasskey(**knobs)
    await add_passkey(api, token, key)
    return token, key


async def start_sign_in(
    api: Api, email: str | None = None, mfa_token: str | None = None
) -> dict[str, Any]:
    """startPasskeySignIn's challenge (asserts it was given)."""
    body = await api.gql(START_SIGN_IN, {"e": email, "t": mfa_token})
    assert "errors" not in body, body
    return body["data"]["startPasskeySignIn"]  # type: ignore[no-any-return]


async def finish_sign_in(
    api: Api, challenge_id: str, credential: dict[str, Any], device: str | None = None
) -> dict[str, Any]:
    """finishPasskeySignIn's whole answer."""
    return await api.gql(FINISH_SIGN_IN, {"c": challenge_id, "cred": credential, "d": device})


async def sign_in_with(api: Api, passkey: SoftPasskey, email: str | None = None) -> dict[str, Any]:
    """Both steps of a passwordless sign-in; finishPasskeySignIn's whole answer."""
    ceremony = await start_sign_in(api, email)
    return await finish_sign_in(api, ceremony["challengeId"], passkey.get(ceremony["options"]))


def user_handle_of(user_id: str) -> bytes:
    return uuid.UUID(user_id).bytes
