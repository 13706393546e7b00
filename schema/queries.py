"""Root query fields."""

from __future__ import annotations

import strawberry

from schema.context import Info
from schema.permissions import IsAuthenticated, IsSignedIn, guard
from schema.types import SessionType, UserType


@strawberry.type
class Query:
    @strawberry.field(extensions=guard(IsSignedIn), description="The signed-in user.")
    def me(self, info: Info) -> UserType:
        claims = info.context.viewer.claims
        assert claims is not None
        return UserType(user_id=claims.sub, known_roles=list(claims.roles))

    @strawberry.field(
        extensions=guard(IsAuthenticated), description="The signed-in user's live sessions."
    )
    async def my_sessions(self, info: Info) -> list[SessionType]:
        viewer = info.context.viewer
        assert viewer.claims is not None
        rows = await info.context.services.sessions.live(viewer.claims.sub)
        return [SessionType.from_row(row, viewer.claims.sid) for row in rows]
