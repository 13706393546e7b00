"""Who is asking: the bearer token of a request, verified once, as a Viewer."""

from __future__ import annotations

from api.auth.revocation import RevocationList
from api.auth.tokens import TokenService
from api.errors import AppError, InvalidTokenError, TokenExpiredError, TokenRevokedError
from api.identity import ANONYMOUS, AccessClaims, Viewer


class BearerAuthenticator:
    """A missing token is anonymity; a bad, expired or revoked one is an error for guards."""

    def __init__(self, tokens: TokenService, revocations: RevocationList) -> None:
        self._tokens = tokens
        self._revocations = revocations

    async def authenticate(self, authorization: str | None) -> Viewer:
        if not authorization:
            return ANONYMOUS
        scheme, _, token = authorization.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return Viewer(error=InvalidTokenError("Send 'Authorization: Bearer <access token>'."))
        return await self.authenticate_token(token)

    async def authenticate_token(self, token: str) -> Viewer:
        try:
            claims = self._tokens.verify_access(token)
        except AppError as exc:
            return Viewer(error=exc)
        try:
            revoked = await self._is_revoked(claims)
        except AppError as exc:  # SERVICE_UNAVAILABLE: guarded fields fail, public ones answer
            return Viewer(error=exc)
        return Viewer(error=TokenRevokedError()) if revoked else Viewer(claims=claims)

    async def recheck(self, claims: AccessClaims) -> AppError | None:
        """For a long-lived connection: the reason its once-good token is refused now, if any."""
        if self._tokens.is_expired(claims.exp):
            return TokenExpiredError()
        # An outage raises SERVICE_UNAVAILABLE: the caller keeps the socket and asks again.
        return TokenRevokedError() if await self._is_revoked(claims) else None

    async def _is_revoked(self, claims: AccessClaims) -> bool:
        revocations = self._revocations
        return revocations.is_revoked(claims.sid, claims.iat) or (
            revocations.needs_database
            and await revocations.is_revoked_in_database(claims.sid, claims.iat)
        )
