"""Authenticator-app codes (RFC 6238 TOTP with pyotp): secrets, the otpauth URI, its QR
code as SVG (segno), and the step a code belongs to."""

from __future__ import annotations

import hmac
import io

import pyotp
import segno

STEP = 30  # seconds per code: what every authenticator app uses
DIGITS = 6
SKEW = 1  # steps accepted either side of now: a phone clock a little off still works


def new_secret() -> str:
    """160 random bits in base32 (RFC 4226's recommended length)."""
    return pyotp.random_base32(32)


def provisioning_uri(secret: str, account: str, issuer: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=account, issuer_name=issuer)


def qr_svg(uri: str) -> str:
    """The URI as a QR code, an SVG document (no raster image library needed)."""
    out = io.BytesIO()
    segno.make(uri, error="m").save(out, kind="svg", xmldecl=False, scale=4)
    return out.getvalue().decode("utf-8")


def matching_step(secret: str, code: str, now: float) -> int | None:
    """The time step (now ±SKEW) whose code this is, or None."""
    code = code.strip().replace(" ", "")
    # isascii first: str.isdigit() is true for '١٢٣٤٥٦' or '¹²³⁴⁵⁶' too, which
    # hmac.compare_digest refuses (TypeError) instead of calling them wrong.
    if len(code) != DIGITS or not code.isascii() or not code.isdigit():
        return None
    totp = pyotp.TOTP(secret, digits=DIGITS, interval=STEP)
    current = int(now) // STEP
    for step in range(current - SKEW, current + SKEW + 1):
        if hmac.compare_digest(totp.at(step * STEP), code):
            return step
    return None
