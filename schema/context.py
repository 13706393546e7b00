"""The per-request Context: plain values that the web layer builds (api/web/view.py)
and resolvers read."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from functools import cached_property

import strawberry
from strawberry.dataloader import DataLoader

from api.auth.second_factor import has_passkey
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
    # Read only for a viewer whose roles need a second factor their token lacks: whether
    # they enrolled (they sign in again) or not (they enrol first). None: not read.
    mfa_enrolled: bool | None = None

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

    async def read_users(self, ids: list[str]) -> dict[str, UserView]:
        """Users read at once, without waiting for the DataLoader's batch (a resolver that
        knows what its sub-fields need). The loader holds them from the start, so another
        field of the request asking meanwhile waits for this read instead of making its own."""
        loader, loop = self.users, asyncio.get_running_loop()
        known = {key: loader.cache_map.get(key) for key in dict.fromkeys(ids)}
        wanted: dict[str, asyncio.Future[UserView | None]] = {
            key: loop.create_future() for key, seen in known.items() if seen is None
        }
        for key, pending in wanted.items():
            loader.cache_map.set(key, pending)
        try:
            rows = await users_by_id(list(wanted)) if wanted else {}
        except BaseException as exc:
            for key, pending in wanted.items():
                loader.cache_map.delete(key)
                pending.set_exception(exc)
                pending.exception()  # waiters get it; nobody waiting is not an error
            raise
        for key, pending in wanted.items():
            pending.set_result(rows.get(key))
        for key, future in known.items():
            if future is not None and (view := await future) is not None:
                rows[key] = view
        return rows

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
            self.mfa_enrolled = user is not None and (
                user.totp_enabled or (refused and await has_passkey(user.id))
            )

    @property
    def needs_guard_facts(self) -> bool:
        """Whether `load_email_verified` has anything to read for this request."""
        settings = self.services.settings
        return settings.require_verified_email or bool(settings.mfa_required_roles)


Info = strawberry.Info[Context, None]
