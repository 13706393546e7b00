"""The WebAuthn relying party: the options a browser (or a phone's passkey API) takes, and
the checks on what it sends back, done by py_webauthn (`webauthn`).

Everything the authenticator signs is checked there: the challenge we issued, the origin
(WEBAUTHN_ORIGINS), the relying party id's hash (WEBAUTHN_RP_ID), user presence, user
verification where asked, and the signature. What stays ours: the counter (checked only
after the signature holds, so nobody without the key can make a passkey look cloned) and
what the flags mean for `amr`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import (
    base64url_to_bytes,
    bytes_to_base64url,
    decode_credential_public_key,
    decoded_public_key_to_cryptography,
)
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.parse_authentication_credential_json import (
    parse_authentication_credential_json,
)
from webauthn.helpers.parse_registration_credential_json import (
    parse_registration_credential_json,
)
from webauthn.helpers.structs import (
    AuthenticationCredential,
    AuthenticatorSelectionCriteria,
    AuthenticatorTransport,
    CredentialDeviceType,
    PublicKeyCredentialDescriptor,
    RegistrationCredential,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from api.errors import BadUserInputError, InvalidCredentialsError
from api.settings import Settings

CEREMONY_SECONDS = 300  # a challenge lives this long; the browser's prompt times out with it
MAX_CREDENTIAL_BYTES = 16_384  # a none-attestation credential is under 2 KiB
MAX_CREDENTIAL_ID_BYTES = 1023  # the spec's bound on a credential id
FIELD = "credential"

# RFC 8176: a device-bound key is hardware-secured (hwk); a synced passkey, which a password
# manager or a platform copies between devices, is a software-secured key (swk).
HARDWARE_KEY = "hwk"
SOFTWARE_KEY = "swk"


@dataclass(frozen=True, slots=True)
class NewCredential:
    """A verified registration: what to store of the new passkey."""

    credential_id: str
    public_key: str
    sign_count: int
    aaguid: str
    transports: list[str] | None
    backup_eligible: bool
    backed_up: bool


@dataclass(frozen=True, slots=True)
class Assertion:
    """A verified sign-in with a passkey."""

    sign_count: int
    user_verified: bool
    backed_up: bool


def key_kind(backup_eligible: bool) -> str:
    return SOFTWARE_KEY if backup_eligible else HARDWARE_KEY


def _bad(message: str) -> BadUserInputError:
    return BadUserInputError(FIELD, f"'credential' {message}")


def _checked_input(credential: Any) -> dict[str, Any]:
    """The credential JSON within its budget, shaped as the browser's `toJSON()` makes it."""
    if not isinstance(credential, dict):
        raise _bad("must be the JSON object of the browser's credential.toJSON().")
    if len(orjson.dumps(credential)) > MAX_CREDENTIAL_BYTES:
        raise _bad(f"is longer than {MAX_CREDENTIAL_BYTES} bytes.")
    raw_id = credential.get("rawId")
    if not isinstance(raw_id, str) or not isinstance(credential.get("response"), dict):
        raise _bad("needs `rawId` and `response`.")
    try:
        length = len(base64url_to_bytes(raw_id))
    except ValueError:
        raise _bad("has a `rawId` that is not base64url.") from None
    if not 1 <= length <= MAX_CREDENTIAL_ID_BYTES:
        raise _bad("has a `rawId` of the wrong length.")
    return credential


def parse_assertion(credential: Any) -> AuthenticationCredential:
    """A sign-in credential, parsed; BAD_USER_INPUT (field `credential`) when malformed."""
    try:
        return parse_authentication_credential_json(_checked_input(credential))
    except WebAuthnException as exc:
        raise _bad(f"is malformed: {exc}") from None


def parse_attestation(credential: Any) -> RegistrationCredential:
    """A registration credential, parsed; BAD_USER_INPUT (field `credential`) when malformed."""
    try:
        return parse_registration_credential_json(_checked_input(credential))
    except WebAuthnException as exc:
        raise _bad(f"is malformed: {exc}") from None


class RelyingParty:
    """This server as a WebAuthn relying party (WEBAUTHN_RP_ID, _RP_NAME, _ORIGINS)."""

    def __init__(self, settings: Settings) -> None:
        self._rp_id = settings.webauthn_rp_id
        self._rp_name = settings.webauthn_rp_name
        self._origins = list(settings.webauthn_allowed_origins)

    def registration_options(
        self, user_handle: bytes, email: str, display_name: str | None, existing: list[str]
    ) -> tuple[dict[str, Any], bytes]:
        """Options for navigator.credentials.create(): a discoverable credential (a passkey),
        user verification preferred, no attestation; the user's passkeys excluded."""
        options = generate_registration_options(
            rp_id=self._rp_id,
            rp_name=self._rp_name,
            user_id=user_handle,
            user_name=email,
            user_display_name=display_name or email,
            timeout=CEREMONY_SECONDS * 1000,
            authenticator_selection=AuthenticatorSelectionCriteria(
                resident_key=ResidentKeyRequirement.REQUIRED,
                user_verification=UserVerificationRequirement.PREFERRED,
            ),
            exclude_credentials=[
                PublicKeyCredentialDescriptor(id=base64url_to_bytes(c)) for c in existing
            ],
        )
        return orjson.loads(options_to_json(options)), options.challenge

    def authentication_options(
        self, allow: list[str] | None, *, user_verification: bool
    ) -> tuple[dict[str, Any], bytes]:
        """Options for navigator.credentials.get(): the listed credentials, or any
        discoverable one of this relying party (`allow` None)."""
        options = generate_authentication_options(
            rp_id=self._rp_id,
            timeout=CEREMONY_SECONDS * 1000,
            allow_credentials=None
            if allow is None
            else [PublicKeyCredentialDescriptor(id=base64url_to_bytes(c)) for c in allow],
            user_verification=UserVerificationRequirement.REQUIRED
            if user_verification
            else UserVerificationRequirement.PREFERRED,
        )
        return orjson.loads(options_to_json(options)), options.challenge

    def verify_registration(
        self, credential: RegistrationCredential, challenge: bytes
    ) -> NewCredential:
        """The new passkey, or INVALID_CREDENTIALS (wrong challenge, origin, rp id, ...)."""
        try:
            verified = verify_registration_response(
                credential=credential,
                expected_challenge=challenge,
                expected_rp_id=self._rp_id,
                expected_origin=self._origins,
            )
            # A key that cannot be loaded could never sign in: refused now, not at each sign-in.
            decoded_public_key_to_cryptography(
                decode_credential_public_key(verified.credential_public_key)
            )
        except WebAuthnException as exc:
            raise InvalidCredentialsError(f"The passkey could not be verified: {exc}") from None
        except (KeyError, IndexError, TypeError, ValueError):  # py_webauthn lets these out
            raise InvalidCredentialsError("The passkey's public key is malformed.") from None
        transports = credential.response.transports
        return NewCredential(
            credential_id=bytes_to_base64url(verified.credential_id),
            public_key=bytes_to_base64url(verified.credential_public_key),
            sign_count=verified.sign_count,
            aaguid=verified.aaguid,
            transports=[_transport(t) for t in transports][:8] if transports else None,
            backup_eligible=verified.credential_device_type == CredentialDeviceType.MULTI_DEVICE,
            backed_up=verified.credential_backed_up,
        )

    def verify_assertion(
        self,
        credential: AuthenticationCredential,
        challenge: bytes,
        *,
        public_key: str,
        user_verification: bool,
    ) -> Assertion | None:
        """The verified assertion, or None when anything is wrong with it."""
        try:
            verified = verify_authentication_response(
                credential=credential,
                expected_challenge=challenge,
                expected_rp_id=self._rp_id,
                expected_origin=self._origins,
                credential_public_key=base64url_to_bytes(public_key),
                # 0: the counter is compared by the caller, after the signature was checked.
                credential_current_sign_count=0,
                require_user_verification=user_verification,
            )
        # py_webauthn lets a malformed COSE key or CBOR out as these (never a 500: refused).
        except (WebAuthnException, KeyError, IndexError, TypeError, ValueError):
            return None
        return Assertion(
            sign_count=verified.new_sign_count,
            user_verified=verified.user_verified,
            backed_up=verified.credential_backed_up,
        )


def _transport(value: AuthenticatorTransport | str) -> str:
    return value.value if isinstance(value, AuthenticatorTransport) else str(value)[:32]


def counter_regressed(stored: int, new: int) -> bool:
    """WebAuthn §6.1.1: a counter that does not move forward (either one non-zero) is a sign
    that the authenticator may have been cloned."""
    return (stored > 0 or new > 0) and new <= stored
