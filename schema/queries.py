"""Root query fields."""

from __future__ import annotations

from collections.abc import Awaitable

import strawberry

from schema.context import Info
from schema.permissions import IsAuthenticated, IsSignedIn, guard
from schema.selection import selected
from schema.types import SessionType, UserType

# What `me` answers from the token alone; anything else reads the viewer's row first.
FROM_TOKEN = frozenset({"id", "roles", "__typename"})


async def _with_row(info: Info, user: UserType) -> UserType:
    """The viewer's row read now, so every field of `me` answers synchronously (no
    coroutine per field, no DataLoader round); a deactivated viewer is refused."""
    ctx = info.context
    user.row = ctx.active_viewer((await ctx.read_users([user.user_id])).get(user.user_id))
    return user


@strawberry.type
class Query:
    @strawberry.field(
        extensions=guard(IsSignedIn), description="The signed-in user.", graphql_type=UserType
    )
    def me(self, info: Info) -> UserType | Awaitable[UserType]:
        claims = info.context.viewer.claims
        assert claims is not None
        user = UserType(user_id=claims.sub, known_roles=list(claims.roles))
        if selected(info) <= FROM_TOKEN:
            return user  # no coroutine, no database: the token answers
        return _with_row(info, user)

    @strawberry.field(
        extensions=guard(IsAuthenticated), description="The signed-in user's live sessions."
    )
    async def my_sessions(self, info: Info) -> list[SessionType]:
        viewer = info.context.viewer
        assert viewer.claims is not None
        rows = await info.context.services.sessions.live(viewer.claims.sub)
        return [SessionType.from_row(row, viewer.claims.sid) for row in rows]
