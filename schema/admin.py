"""Looking people up: `user(id)` for oneself or an admin; the admin's lists of users and
audit events. Decisions live in api/resources/directory.py."""

from __future__ import annotations

from datetime import datetime

import strawberry

from api.db.models import AuditEvent
from schema.context import Info
from schema.pagination import Connection
from schema.permissions import HasRole, IsAuthenticated, guard
from schema.types import UserType


@strawberry.type(name="AuditEvent", description="A security-relevant event (admins only).")
class AuditEventType:
    id: strawberry.ID
    kind: str
    ip: str | None
    at: datetime
    detail: str | None
    user_id: strawberry.Private[str | None]

    @strawberry.field(description="Who it concerns, if anyone (loaded once per page).")
    def user(self) -> UserType | None:
        return None if self.user_id is None else UserType(user_id=self.user_id)

    @classmethod
    def from_row(cls, row: AuditEvent) -> AuditEventType:
        return cls(
            id=strawberry.ID(str(row.id)),
            kind=row.kind,
            ip=row.ip,
            at=row.at,
            detail=row.detail,
            user_id=None if row.user_id is None else str(row.user_id),
        )


@strawberry.type
class AdminQuery:
    @strawberry.field(
        extensions=guard(IsAuthenticated),
        description="One user: yourself, or anyone for an admin; otherwise NOT_FOUND.",
    )
    async def user(self, info: Info, id: strawberry.ID) -> UserType | None:
        ctx = info.context
        row = await ctx.services.directory.user(ctx.viewer, str(id))
        return UserType.from_row(row)

    @strawberry.field(
        extensions=guard(HasRole("admin")),
        description="Admin: every user, newest first; `search` matches a case-insensitive "
        "substring of the email or display name.",
    )
    async def users(
        self,
        info: Info,
        first: int | None = 20,
        after: str | None = None,
        search: str | None = None,
    ) -> Connection[UserType]:
        first = 20 if first is None else first  # an explicit null means the default
        page = await info.context.services.directory.users(first, after, search)
        return Connection.of(page, UserType.from_row)

    @strawberry.field(
        extensions=guard(HasRole("admin")),
        description="Admin: the audit trail, newest first, optionally of one user.",
    )
    async def audit_events(
        self,
        info: Info,
        first: int | None = 50,
        after: str | None = None,
        user_id: strawberry.ID | None = None,
    ) -> Connection[AuditEventType]:
        first = 50 if first is None else first  # an explicit null means the default
        uid = None if user_id is None else str(user_id)
        page = await info.context.services.directory.audit_events(first, after, uid)
        return Connection.of(page, AuditEventType.from_row)
