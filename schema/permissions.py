"""Guards for resolvers. They read the Context; they never decode tokens.

Each guard raises the contract's own error (api.errors: a code per reason) instead of returning
False, so strawberry's `message`/`error_class`/`on_unauthorized` are never used and not set.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from strawberry.extensions import FieldExtension
from strawberry.permission import BasePermission, PermissionExtension

from api.errors import (
    EmailNotVerifiedError,
    ForbiddenError,
    InsufficientAuthenticationError,
    UnauthenticatedError,
)
from schema.context import Info


def _signed_in(info: Info) -> None:
    """Raise the reason a request is not signed in (a refused token, or none at all)."""
    viewer = info.context.viewer
    if viewer.error is not None:
        raise viewer.error
    if viewer.claims is None:
        raise UnauthenticatedError()


class IsSignedIn(BasePermission):
    """A valid, unrevoked access token, verified email or not: only for what an unverified
    user needs (me, logout, logoutAll, requestEmailVerification, changeEmail, deleteAccount)."""

    def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        _signed_in(info)
        return True


def _second_factor(info: Info) -> None:
    """INSUFFICIENT_AUTHENTICATION unless the token's `amr` says multi-factor."""
    claims = info.context.viewer.claims
    if claims is not None and not claims.multi_factor:
        raise InsufficientAuthenticationError(enrolled=info.context.mfa_enrolled is True)


class IsAuthenticated(BasePermission):
    """Signed in; with REQUIRE_VERIFIED_EMAIL on, a verified email address; and for holders
    of a role in MFA_REQUIRED_ROLES, a token signed in with a second factor."""

    def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        _signed_in(info)
        ctx = info.context
        # Fails closed: a context that did not read the flag counts as unverified.
        if ctx.services.settings.require_verified_email and ctx.email_verified is not True:
            raise EmailNotVerifiedError()
        required = ctx.services.settings.mfa_required_roles
        if required and any(ctx.viewer.has_role(role) for role in required):
            _second_factor(info)
        return True


class MultiFactor(BasePermission):
    """The token was signed in with a second factor (`amr` holds `mfa`), whatever the roles."""

    def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        _signed_in(info)
        _second_factor(info)
        return True


class FreshLogin(BasePermission):
    """The password was entered within FRESH_AUTH_MAX_AGE (the token's auth_time)."""

    def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        claims = info.context.viewer.claims
        if claims is None:
            raise UnauthenticatedError()
        info.context.services.fresh.require(claims.auth_time)
        return True


@cache
def HasRole(role: str) -> type[BasePermission]:
    """A guard class for one role (authentication is checked first)."""

    class _HasRole(IsAuthenticated):
        def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
            super().has_permission(source, info, **kwargs)
            if not info.context.viewer.has_role(role):
                raise ForbiddenError()
            return True

    _HasRole.__name__ = _HasRole.__qualname__ = f"HasRole({role!r})"
    return _HasRole


class Public(BasePermission):
    """The explicit marker for a field anyone may call."""

    def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        return True


def guard(*permissions: type[BasePermission]) -> list[FieldExtension]:
    """Field extensions for `@strawberry.field(extensions=guard(IsAuthenticated))`."""
    return [PermissionExtension(permissions=[p() for p in permissions], use_directives=False)]
