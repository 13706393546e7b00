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
        """REQUIRE_VERIFIED_EMAIL: read the viewer's row once, so guards can stay synchronous.

        The DataLoader keeps the row for the rest of the request (current_user() reuses it).
        """
        if self.viewer.user_id is not None:
            user = await self.users.load(self.viewer.user_id)
            self.email_verified = user is not None and user.email_verified


Info = strawberry.Info[Context, None]
