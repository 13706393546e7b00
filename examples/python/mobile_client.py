"""A graphgate client the way a mobile app does it, with the `gql` library (aiohttp transport).

    store = FileTokenStore(Path("tokens.json"))   # on a phone: the Keychain / Keystore
    async with MobileClient("https://api.example.com/graphql", store) as client:
        if not client.signed_in:
            await client.login("ada@example.com", "correct horse", device="Ada's phone")
        me = await client.execute("query Me { me { email } }")

- The refresh token is stored (it outlives the app's process); the access token is not.
- Every refresh rotates: the new refresh token replaces the old one in the store at once.
- A refused access token (TOKEN_EXPIRED, TOKEN_REVOKED, INVALID_TOKEN) leads to one refresh and
  one retry; concurrent calls share that one refresh (a second refresh with the same token
  would count as reuse and end the session).
- REFRESH_TOKEN_REUSED, SESSION_EXPIRED (and any other refusal of the refresh) drop
  everything: the store is cleared and `SignedOutError` tells the app to show sign-in.
- Two-factor sign-in: when `login` answers MFA_REQUIRED, `login(..., ask_code=...)` awaits
  `ask_code(methods)` for a code from the authenticator app (or a recovery code) and sends
  it to `verifyMfa` with the MFA token, asking again after a wrong code. Without `ask_code`
  it raises `MfaRequiredError` (its `mfa_token` then goes to `verify_mfa(mfa_token, code)`).
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from gql import Client, GraphQLRequest
from gql.transport.aiohttp import AIOHTTPTransport
from gql.transport.exceptions import TransportQueryError

PAIR = "accessToken refreshToken expiresIn refreshExpiresIn user { id email }"
LOGIN = f"""mutation Login($email: String!, $password: String!, $device: String) {{
  login(email: $email, password: $password, device: $device) {{ {PAIR} }} }}"""
REFRESH = f"""mutation Refresh($refreshToken: String) {{
  refresh(refreshToken: $refreshToken) {{ {PAIR} }} }}"""
VERIFY_MFA = f"""mutation VerifyMfa($mfaToken: String!, $code: String!, $device: String) {{
  verifyMfa(mfaToken: $mfaToken, code: $code, device: $device) {{ {PAIR} }} }}"""
LOGOUT = "mutation Logout { logout }"
REFUSED_ACCESS = {"TOKEN_EXPIRED", "TOKEN_REVOKED", "INVALID_TOKEN"}


class SignedOutError(Exception):
    """The session is over (the code says why); everything stored was dropped."""

    def __init__(self, code: str) -> None:
        super().__init__(f"signed out: {code}")
        self.code = code


class MfaRequiredError(Exception):
    """The password was right; a second-factor code must follow (`verify_mfa`)."""

    def __init__(self, mfa_token: str, methods: list[str]) -> None:
        super().__init__("a second-factor code is required")
        self.mfa_token = mfa_token
        self.methods = methods


class TokenStore(Protocol):
    """Where the refresh token survives restarts: the Keychain or Keystore on a phone."""

    def load(self) -> str | None: ...
    def save(self, refresh_token: str) -> None: ...
    def clear(self) -> None: ...


class FileTokenStore:
    """A stand-in for the platform's secure storage: a file only its owner can read."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> str | None:
        if not self.path.exists():
            return None
        token = json.loads(self.path.read_text(encoding="utf-8")).get("refreshToken")
        return token if isinstance(token, str) else None

    def save(self, refresh_token: str) -> None:
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump({"refreshToken": refresh_token}, handle)
        tmp.replace(self.path)  # atomic: a crash never leaves half a token behind

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)


def error_code(exc: TransportQueryError) -> str | None:
    errors = exc.errors or []
    first = errors[0] if errors else {}
    return (first.get("extensions") or {}).get("code") if isinstance(first, dict) else None


class MobileClient:
    """One signed-in user's connection to graphgate."""

    def __init__(self, url: str, store: TokenStore) -> None:
        self._client = Client(transport=AIOHTTPTransport(url=url, timeout=30))
        self._store = store
        self._access_token: str | None = None
        self._refresh_lock = asyncio.Lock()
        self.refreshes = 0  # how many rotations this client performed (for the curious)

    async def __aenter__(self) -> MobileClient:
        self._session = await self._client.connect_async()  # type: ignore[no-untyped-call]
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._client.close_async()  # type: ignore[no-untyped-call]

    @property
    def signed_in(self) -> bool:
        return self._store.load() is not None

    async def _run(
        self, document: str, variables: dict[str, Any] | None, token: str | None
    ) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        request = GraphQLRequest(document, variable_values=variables)
        result: dict[str, Any] = await self._session.execute(
            request, extra_args={"headers": headers}
        )
        return result

    async def login(
        self,
        email: str,
        password: str,
        device: str | None = None,
        ask_code: Callable[[list[str]], Awaitable[str]] | None = None,
    ) -> dict[str, Any]:
        variables = {"email": email, "password": password, "device": device}
        try:
            pair = (await self._run(LOGIN, variables, None))["login"]
        except TransportQueryError as exc:
            if error_code(exc) != "MFA_REQUIRED":
                raise
            extensions = (exc.errors or [{}])[0]["extensions"]
            if ask_code is None:
                raise MfaRequiredError(extensions["mfaToken"], extensions["methods"]) from exc
            while True:
                try:
                    code = await ask_code(extensions["methods"])
                    return await self.verify_mfa(extensions["mfaToken"], code, device)
                except TransportQueryError as wrong:
                    # A wrong code: ask again. A spent MFA token, RATE_LIMITED: give up.
                    if error_code(wrong) != "INVALID_CREDENTIALS" or "spent" in str(wrong):
                        raise
        self._keep(pair)
        return pair  # type: ignore[no-any-return]

    async def verify_mfa(
        self, mfa_token: str, code: str, device: str | None = None
    ) -> dict[str, Any]:
        """The second step of a sign-in: the MFA token and a code for the token pair."""
        variables = {"mfaToken": mfa_token, "code": code, "device": device}
        pair = (await self._run(VERIFY_MFA, variables, None))["verifyMfa"]
        self._keep(pair)
        return pair  # type: ignore[no-any-return]

    async def execute(
        self, document: str, variables: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Run an operation as the user; one refresh and one retry if the token is refused."""
        if self._access_token is None and self.signed_in:
            await self._refresh(stale=None)  # a cold start: only the refresh token was kept
        used = self._access_token
        try:
            return await self._run(document, variables, used)
        except TransportQueryError as exc:
            if used is None or error_code(exc) not in REFUSED_ACCESS:
                raise
        await self._refresh(stale=used)
        return await self._run(document, variables, self._access_token)

    async def _refresh(self, stale: str | None) -> None:
        async with self._refresh_lock:
            if stale is not None and self._access_token != stale:
                return  # another call refreshed while we waited: use its token
            refresh_token = self._store.load()
            if refresh_token is None:
                raise SignedOutError("UNAUTHENTICATED")
            try:
                pair = (await self._run(REFRESH, {"refreshToken": refresh_token}, None))["refresh"]
            except TransportQueryError as exc:
                # REFRESH_TOKEN_REUSED / SESSION_EXPIRED / TOKEN_REVOKED: nothing left to use.
                self._forget()
                raise SignedOutError(error_code(exc) or "UNKNOWN") from exc
            self._keep(pair)
            self.refreshes += 1

    async def logout(self) -> None:
        token = self._access_token
        self._forget()
        if token:
            await self._run(LOGOUT, None, token)

    def _keep(self, pair: dict[str, Any]) -> None:
        self._access_token = pair["accessToken"]
        self._store.save(pair["refreshToken"])  # rotation: the old one is spent already

    def _forget(self) -> None:
        self._access_token = None
        self._store.clear()
