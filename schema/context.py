"""The per-request Context: plain values that the web layer builds (api/web/view.py)
and resolvers read."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import strawberry
from strawberry.dataloader import DataLoader

from api.db.models import User
from api.db.reads import UserView, users_by_id
from api.errors import TokenRevokedError
from api.identity import AccessClaims, ClientInfo, Viewer
from api.services import Services
from schema.transport import Transport


async def _load_users(ids: list[str]) -> list[UserView | None]:
    users = await users_by_id(ids)
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

    @cached_property
    def users(self) -> DataLoader[str, UserView | None]:
        """What may be shown of users, by id, batched per request (one fixed statement:
        api/db/reads.py); made on first use (most requests never load one)."""
        return DataLoader(load_fn=_load_users)

    @property
    def claims(self) -> AccessClaims:
        """The signed-in viewer's claims: only under a guard that requires a signed-in viewer."""
        claims = self.viewer.claims
        assert claims is not None  # guaranteed by the field's guard
        return claims

    async def current_user(self) -> User:
        """The viewer's own model row, for the account changes that act on it."""
        assert self.viewer.user_id is not None
        user = await User.get_or_none(id=self.viewer.user_id)
        if user is None or not user.is_active:
            raise TokenRevokedError()
        return user

    async def viewer_view(self) -> UserView:
        """What may be shown of the viewer (one primary-key lookup per request, shared by
        every field); a deactivated or deleted viewer is refused."""
        assert self.viewer.user_id is not None
        user = await self.users.load(self.viewer.user_id)
        return self.active_viewer(user)

    @staticmethod
    def active_viewer(user: UserView | None) -> UserView:
        if user is None or not user.is_active:
            raise TokenRevokedError()
        return user

    async def load_email_verified(self) -> None:
        """REQUIRE_VERIFIED_EMAIL: read the viewer's row once, so guards can stay synchronous.

        The DataLoader keeps the row for the rest of the request (current_user() reuses it).
        """
        if self.viewer.user_id is not None:
            user = await self.users.load(self.viewer.user_id)
            self.email_verified = user is not None and user.email_verified


Info = strawberry.Info[Context, None]
