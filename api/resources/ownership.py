"""Object-level permission for rows that belong to one user: `IsOwnerOrAdmin`.

The field guard (IsAuthenticated) says who may call a resolver at all; this says what the
caller may do to one object. Owners may do anything; admins only what `admin_may` lists
(e.g. read and delete, but not edit someone else's words); anyone else gets NOT_FOUND,
exactly as for an id that does not exist, so ids never reveal what others own.
"""

from __future__ import annotations

import enum
from collections.abc import Collection
from typing import Generic, TypeVar

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.models import Model
from tortoise.queryset import QuerySet

from api.errors import ForbiddenError, NotFoundError
from api.identity import Viewer, parse_id

ADMIN_ROLE = "admin"

M = TypeVar("M", bound=Model)


class Action(enum.Enum):
    READ = "read"
    CHANGE = "change"
    DELETE = "delete"


class IsOwnerOrAdmin(Generic[M]):
    """Who may do what to the rows of `model`, owned through `owner_field`."""

    def __init__(
        self,
        model: type[M],
        *,
        owner_field: str = "owner_id",
        admin_may: Collection[Action] = (Action.READ, Action.DELETE),
    ) -> None:
        self.model = model
        self.owner_field = owner_field
        self.admin_may = frozenset(admin_may)

    def is_owner(self, viewer: Viewer, row: M) -> bool:
        return viewer.user_id is not None and str(getattr(row, self.owner_field)) == viewer.user_id

    def check(self, viewer: Viewer, row: M, action: Action) -> None:
        """Return if `viewer` may do `action` to `row`; raise FORBIDDEN or NOT_FOUND if not."""
        if self.is_owner(viewer, row):
            return
        if viewer.has_role(ADMIN_ROLE):
            if action in self.admin_may:
                return
            raise ForbiddenError()  # an admin may know the object exists, not change it
        # Same answer as a missing id: another user's object is never confirmed to exist.
        raise NotFoundError()

    def owned_by(self, viewer: Viewer) -> QuerySet[M]:
        """The rows the viewer owns (for lists: `notes` shows the caller's own only)."""
        return self.model.filter(**{self.owner_field: viewer.user_id})

    async def get(
        self,
        viewer: Viewer,
        raw_id: str,
        action: Action,
        *,
        using_db: BaseDBAsyncClient | None = None,
        for_update: bool = False,
    ) -> M:
        """The row with this id if the viewer may do `action` to it, else NOT_FOUND/FORBIDDEN.

        With `for_update` (inside a transaction) the row stays locked until commit, so a
        concurrent update or delete waits instead of acting on a stale row (PostgreSQL).
        """
        key = parse_id(raw_id)
        if key is None:
            raise NotFoundError()
        query = self.model.filter(pk=key).using_db(using_db)
        if for_update:
            query = query.select_for_update()
        row = await query.first()
        if row is None:
            raise NotFoundError()
        self.check(viewer, row, action)
        return row
