"""IsOwnerOrAdmin on its own, without HTTP or a database: the rule every owned type reuses."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import pytest

from api.db.models import Note
from api.errors import ForbiddenError, NotFoundError
from api.identity import ANONYMOUS, AccessClaims, Viewer
from api.resources.ownership import Action, IsOwnerOrAdmin

OWNER, OTHER = str(uuid.uuid4()), str(uuid.uuid4())


def viewer(user_id: str, *roles: str) -> Viewer:
    claims = AccessClaims(user_id, "sid", "jti", 0, 0, ("user", *roles), 0)
    return Viewer(claims=claims)


@dataclass
class Row:
    owner_id: str


POLICY: IsOwnerOrAdmin[Any] = IsOwnerOrAdmin(Note, admin_may=(Action.READ, Action.DELETE))


@pytest.mark.parametrize("action", list(Action))
def test_owner_may_do_anything(action: Action) -> None:
    POLICY.check(viewer(OWNER), Row(OWNER), action)


@pytest.mark.parametrize("action", list(Action))
def test_anyone_else_is_told_it_does_not_exist(action: Action) -> None:
    for who in (viewer(OTHER), ANONYMOUS):
        with pytest.raises(NotFoundError):
            POLICY.check(who, Row(OWNER), action)


def test_admins_may_only_what_the_policy_lists() -> None:
    admin = viewer(OTHER, "admin")
    POLICY.check(admin, Row(OWNER), Action.READ)
    POLICY.check(admin, Row(OWNER), Action.DELETE)
    with pytest.raises(ForbiddenError):
        POLICY.check(admin, Row(OWNER), Action.CHANGE)
    read_only: IsOwnerOrAdmin[Any] = IsOwnerOrAdmin(Note, admin_may=())
    with pytest.raises(ForbiddenError):
        read_only.check(admin, Row(OWNER), Action.READ)
