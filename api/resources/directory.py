"""Looking people up: one user (self or admin), and the admin's user list and audit trail.

The admin-only lists are guarded at the field (HasRole("admin")); `user(id)` is decided
here, per object, by `USERS`: a user "owns" their own row, admins may read any.
"""

from __future__ import annotations

from tortoise.expressions import Q

from api.db.models import AuditEvent, User
from api.errors import BadUserInputError
from api.identity import Viewer, parse_id
from api.resources.ownership import Action, IsOwnerOrAdmin
from api.resources.pagination import Page, paginate

SEARCH_MAX = 254

USERS = IsOwnerOrAdmin(User, owner_field="id", admin_may=(Action.READ,))


class Directory:
    async def user(self, viewer: Viewer, user_id: str) -> User:
        """The viewer themself, or anyone for an admin; NOT_FOUND otherwise."""
        return await USERS.get(viewer, user_id, Action.READ)

    async def users(self, first: int, after: str | None, search: str | None) -> Page[User]:
        """Every user, newest first; `search` is a case-insensitive substring of the email
        or the display name (LIKE wildcards in it match literally)."""
        query = User.all()
        term = (search or "").strip()
        if len(term) > SEARCH_MAX:
            raise BadUserInputError("search", f"'search' has at most {SEARCH_MAX} characters.")
        if term:
            query = query.filter(Q(email__icontains=term) | Q(display_name__icontains=term))
        return await paginate(query, first, after)

    async def audit_events(
        self, first: int, after: str | None, user_id: str | None
    ) -> Page[AuditEvent]:
        """The audit trail, newest first, optionally of one user."""
        query = AuditEvent.all()
        if user_id is not None:
            key = parse_id(user_id)
            if key is None:
                raise BadUserInputError("userId", "'userId' must be a user id (a UUID).")
            query = query.filter(user_id=key)
        return await paginate(query, first, after, time_field="at")
