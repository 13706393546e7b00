"""One AppError base; each subclass carries its contract code (docs/API.md, Errors).

graphql-core copies an original error's `extensions` onto the GraphQL error, so raising
one of these anywhere under a resolver gives the client `extensions.code`.
"""

from __future__ import annotations

from typing import Any, ClassVar


class AppError(Exception):
    """An error a client may see: a people message and a contract code."""

    code: ClassVar[str] = "INTERNAL_SERVER_ERROR"
    default_message: ClassVar[str] = "Unexpected error."

    def __init__(self, message: str | None = None, **extensions: Any) -> None:
        self.message = message or self.default_message
        super().__init__(self.message)
        self.extensions: dict[str, Any] = {"code": self.code, **extensions}

    def response_body(self) -> dict[str, Any]:
        """The GraphQL response of a request refused before execution (no `data`)."""
        return {"errors": [{"message": self.message, "extensions": self.extensions}]}


class UnauthenticatedError(AppError):
    code = "UNAUTHENTICATED"
    default_message = "Authentication required: send 'Authorization: Bearer <access token>'."


class TokenExpiredError(AppError):
    code = "TOKEN_EXPIRED"
    default_message = "The token has expired; refresh it."


class InvalidTokenError(AppError):
    code = "INVALID_TOKEN"
    default_message = "The token is invalid."


class TokenRevokedError(AppError):
    code = "TOKEN_REVOKED"
    default_message = "The session of this token has ended; sign in again."


class ForbiddenError(AppError):
    code = "FORBIDDEN"
    default_message = "You are not allowed to do this."


class InvalidCredentialsError(AppError):
    code = "INVALID_CREDENTIALS"
    default_message = "Wrong email or password."


class AccountDisabledError(AppError):
    code = "ACCOUNT_DISABLED"
    default_message = "This account is disabled."


class RefreshTokenReusedError(AppError):
    code = "REFRESH_TOKEN_REUSED"
    default_message = "This refresh token was already used; the session has been ended."


class SessionExpiredError(AppError):
    code = "SESSION_EXPIRED"
    default_message = "The session has expired; sign in again."


class RateLimitedError(AppError):
    code = "RATE_LIMITED"
    default_message = "Too many attempts; try again later."

    def __init__(self, retry_after: int, message: str | None = None) -> None:
        super().__init__(message, retryAfter=max(1, retry_after))


class BadUserInputError(AppError):
    code = "BAD_USER_INPUT"
    default_message = "Invalid input."

    def __init__(self, field: str, message: str | None = None) -> None:
        super().__init__(message or f"Invalid value for '{field}'.", field=field)


class EmailTakenError(AppError):
    code = "EMAIL_TAKEN"
    default_message = "This email is already registered."


class NotFoundError(AppError):
    code = "NOT_FOUND"
    default_message = "Not found."


class QueryTooComplexError(AppError):
    code = "QUERY_TOO_COMPLEX"
    default_message = "The query is too complex."


class EmailNotVerifiedError(AppError):
    code = "EMAIL_NOT_VERIFIED"
    default_message = "Verify your email address first."


class FreshLoginRequiredError(AppError):
    code = "FRESH_LOGIN_REQUIRED"
    default_message = "Confirm your password to do this."


class ServiceUnavailableError(AppError):
    code = "SERVICE_UNAVAILABLE"
    default_message = "The service is busy or a dependency is down; retry later."


class PersistedQueryNotFoundError(AppError):
    # Apollo Client's persisted-queries link retries with the full text when it sees this
    # message or this code: both are kept exactly.
    code = "PERSISTED_QUERY_NOT_FOUND"
    default_message = "PersistedQueryNotFound"


class PersistedQueryNotSupportedError(AppError):
    code = "PERSISTED_QUERY_NOT_SUPPORTED"
    default_message = "PersistedQueryNotSupported"


class DocumentNotTrustedError(AppError):
    code = "DOCUMENT_NOT_TRUSTED"
    default_message = "Only the documents of the trusted-documents manifest are accepted here."


class MfaRequiredError(AppError):
    """The password was right; the second step is `verifyMfa(mfaToken, code)`."""

    code = "MFA_REQUIRED"
    default_message = "Enter the code from your authenticator app (or a recovery code)."

    def __init__(self, mfa_token: str, methods: list[str], expires_in: int) -> None:
        message = None
        if methods == ["passkey"]:
            message = "Confirm with your passkey (startPasskeySignIn with the mfaToken)."
        elif "passkey" in methods:
            message = (
                "Enter the code from your authenticator app (or a recovery code), or confirm "
                "with your passkey (startPasskeySignIn with the mfaToken)."
            )
        super().__init__(message, mfaToken=mfa_token, methods=methods, expiresIn=expires_in)


class InsufficientAuthenticationError(AppError):
    """A guard needs a second factor that this token's `amr` lacks."""

    code = "INSUFFICIENT_AUTHENTICATION"

    def __init__(self, enrolled: bool) -> None:
        message = (
            "Sign in again with your second factor (login, then verifyMfa or a passkey; or "
            "a passkey alone) to do this."
            if enrolled
            else "Turn on two-factor sign-in first: add a passkey (startPasskeyRegistration), "
            "or startTotpEnrollment, then confirmTotpEnrollment with a code from the app, then "
            "refresh your token."
        )
        super().__init__(message, enrolled=enrolled)
