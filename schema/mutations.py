"""Root mutation fields: each translates arguments, calls a service, shapes the answer."""

from __future__ import annotations

import strawberry

from api.errors import NotFoundError
from api.identity import parse_id
from schema.context import Info
from schema.permissions import FreshLogin, HasRole, IsAuthenticated, IsSignedIn, Public, guard
from schema.types import TokenPair, UserType


@strawberry.type
class Mutation:
    @strawberry.mutation(
        extensions=guard(Public), description="Create an ordinary user and sign in."
    )
    async def register(
        self,
        info: Info,
        email: str,
        password: str,
        display_name: str | None = None,
        device: str | None = None,
    ) -> TokenPair:
        ctx = info.context
        pair = await ctx.services.accounts.register(
            email, password, display_name=display_name, device=device, client=ctx.client
        )
        return TokenPair.delivered(pair, info.context.transport)

    @strawberry.mutation(extensions=guard(Public), description="Sign in: a new session.")
    async def login(
        self, info: Info, email: str, password: str, device: str | None = None
    ) -> TokenPair:
        ctx = info.context
        pair = await ctx.services.accounts.login(email, password, device=device, client=ctx.client)
        return TokenPair.delivered(pair, info.context.transport)

    @strawberry.mutation(
        extensions=guard(Public),
        description="Spend a refresh token for a new pair (rotation; a spent token is reuse).",
    )
    async def refresh(self, info: Info, refresh_token: str | None = None) -> TokenPair:
        ctx = info.context
        token = info.context.transport.refresh_token(refresh_token)
        pair = await ctx.services.sessions.rotate(token, ctx.client)
        return TokenPair.delivered(pair, info.context.transport)

    @strawberry.mutation(extensions=guard(IsSignedIn), description="End the current session.")
    async def logout(self, info: Info) -> bool:
        claims = info.context.claims
        ctx = info.context
        await ctx.services.sessions.end(
            [claims.sid], reason="logout", client=ctx.client, kind="logout", user_id=claims.sub
        )
        info.context.transport.clear()
        return True

    @strawberry.mutation(
        extensions=guard(IsSignedIn),
        description="End every session of the user and retire every pending mailed link "
        "(an email change, a verification); returns how many sessions were ended.",
    )
    async def logout_all(self, info: Info) -> int:
        claims = info.context.claims
        ctx = info.context
        return await ctx.services.accounts.sign_out_everywhere(claims, ctx.client)

    @strawberry.mutation(
        extensions=guard(IsAuthenticated),
        description="End one of your own sessions; any other id is NOT_FOUND.",
    )
    async def revoke_session(self, info: Info, id: strawberry.ID) -> bool:
        claims = info.context.claims
        ctx = info.context
        if not await ctx.services.sessions.revoke_own(claims, str(id), ctx.client):
            raise NotFoundError("No such session.")
        return True

    @strawberry.mutation(
        extensions=guard(IsAuthenticated),
        description="Change your password: every other session ends; this one gets a new pair.",
    )
    async def change_password(
        self, info: Info, current_password: str, new_password: str
    ) -> TokenPair:
        claims = info.context.claims
        ctx = info.context
        pair = await ctx.services.accounts.change_password(
            claims, current_password, new_password, ctx.client
        )
        return TokenPair.delivered(pair, info.context.transport)

    @strawberry.mutation(
        extensions=guard(HasRole("admin"), FreshLogin),
        description="Admin: replace a user's roles; their access tokens are refused at once. "
        "Needs a sign-in within FRESH_AUTH_MAX_AGE.",
    )
    async def set_user_roles(
        self, info: Info, user_id: strawberry.ID, roles: list[str]
    ) -> UserType:
        ctx = info.context
        user = await ctx.services.admin.set_roles(
            info.context.claims,
            parse_id(str(user_id)),
            roles,
            ctx.services.settings.roles,
            ctx.client,
        )
        return UserType.from_row(user)

    @strawberry.mutation(
        extensions=guard(HasRole("admin"), FreshLogin),
        description="Admin: (de)activate a user; deactivating ends all their sessions. "
        "Needs a sign-in within FRESH_AUTH_MAX_AGE.",
    )
    async def set_user_active(self, info: Info, user_id: strawberry.ID, active: bool) -> UserType:
        ctx = info.context
        user = await ctx.services.admin.set_active(
            info.context.claims, parse_id(str(user_id)), active, ctx.client
        )
        return UserType.from_row(user)
