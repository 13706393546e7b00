"""The operations the tests send most, and how they read a refusal."""

from __future__ import annotations

from typing import Any

PAIR = "accessToken refreshToken tokenType expiresIn refreshExpiresIn user { id email roles }"
REGISTER = f"""mutation($email: String!, $password: String!, $displayName: String, $device: String) {{
  register(email: $email, password: $password, displayName: $displayName, device: $device) {{ {PAIR} }} }}"""
LOGIN = f"""mutation($email: String!, $password: String!, $device: String) {{
  login(email: $email, password: $password, device: $device) {{ {PAIR} }} }}"""
REFRESH = f"mutation($t: String) {{ refresh(refreshToken: $t) {{ {PAIR} }} }}"
ME = "{ me { id email displayName roles isActive emailVerified createdAt lastLoginAt } }"


def code(body: dict[str, Any]) -> str | None:
    """The contract code of the first error, if any."""
    errors = body.get("errors") or []
    return errors[0].get("extensions", {}).get("code") if errors else None


def field(body: dict[str, Any]) -> str | None:
    """`extensions.field` of the first error."""
    return body["errors"][0]["extensions"].get("field")  # type: ignore[no-any-return]


CHANGE_PASSWORD = """mutation($c: String!, $n: String!) {
  changePassword(currentPassword: $c, newPassword: $n) { accessToken refreshToken } }"""
SESSIONS = "{ mySessions { id device userAgent ip createdAt lastUsedAt expiresAt current } }"
SET_ACTIVE = (
    "mutation($u: ID!, $a: Boolean!) { setUserActive(userId: $u, active: $a) { id isActive } }"
)
SET_ROLES = "mutation($u: ID!, $r: [String!]!) { setUserRoles(userId: $u, roles: $r) { id roles } }"
