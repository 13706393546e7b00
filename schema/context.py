"""The per-request Context: plain values that the web layer builds (api/web/view.py)
and resolvers read."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import strawberry
from strawberry.dataloader import DataLoader

from api.db.models import User
from api.errors import TokenRevokedError
from api.identity import AccessClaims, ClientInfo, Viewer
from api.services import Services
from schema.transport import Transport


async def _load_users(ids: list[str]) -> list[User | None]:
    users = {str(user.id): user for user in await User.filter(id__in=ids)}
    return [users.get(user_id) for user_id in ids]


@dataclass
class Context:
    """What a resolver may know of its request: the services, who asks, from where, and how
    refresh tokens travel."""

    services: Services
    viewer: Viewer
    client: ClientInfo
    transport: Transport
    # Read only with REQUIRE_VERIFIED_EMAIL on (load_email_verified); None: not read.
    email_verified: bool | None = None
    # Read only for a viewer whose roles need a second factor their token lacks: whether
    # they enrolled (they sign in again) or not (they enrol first). None: not read.
    mfa_enrolled: bool | None = None

    @cached_property
    def users(self) -> DataLoader[str, User | None]:
        """Users by id, batched per request; made on first use (most requests never load one)."""
        return DataLoader(load_fn=_load_users)

    @property
    def claims(self) -> AccessClaims:
        """The signed-in viewer's claims: only under a guard that requires a signed-in viewer."""
        claims = self.viewer.claims
        assert claims is not None  # guaranteed by the field's guard
        return claims

    async def current_user(self) -> User:
        """The viewer's own row (one primary-key lookup per request, shared by every field)."""
        assert self.viewer.user_id is not None
        user = await self.users.load(self.viewer.user_id)
        if user is None or not user.is_active:
            raise TokenRevokedError()
        return user

    async def load_email_verified(self) -> None:
        """What synchronous guards need from the viewer's row, read once per request, and
        only when a guard will ask: REQUIRE_VERIFIED_EMAIL's flag, and whether a viewer that
        MFA_REQUIRED_ROLES refuses has enrolled (for INSUFFICIENT_AUTHENTICATION's message).

        The DataLoader keeps the row for the rest of the request (current_user() reuses it).
        """
        claims = self.viewer.claims
        if claims is None:
            return
        settings = self.services.settings
        refused = not claims.multi_factor and any(
            role in settings.mfa_required_roles for role in claims.roles
        )
        if settings.require_verified_email or refused:
            user = await self.users.load(claims.sub)
            self.email_verified = user is not None and user.email_verified
            self.mfa_enrolled = user is not None and user.totp_secret is not None

    @property
    def needs_guard_facts(self) -> bool:
        """Whether `load_email_verified` has anything to read for this request."""
        settings = self.services.settings
        return settings.require_verified_email or bool(settings.mfa_required_roles)


Info = strawberry.Info[Context, None]
