"""Deny by default: a root field without a guard stops the app from starting."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable

import pytest
import strawberry

from api.settings import Settings
from api.web.app import create_app
from schema import build
from schema.guards import UnguardedFieldError
from schema.permissions import IsAuthenticated, guard
from schema.sdl import guard_table


@strawberry.type
class LeakyQuery:
    @strawberry.field
    def leak(self) -> str:
        return "secret"


@strawberry.type
class LeakySubscription:
    @strawberry.subscription
    async def leak_feed(self) -> AsyncGenerator[str, None]:
        yield "secret"


@strawberry.type
class GuardedSubscription:
    @strawberry.subscription(extensions=guard(IsAuthenticated))
    async def guarded_feed(self) -> AsyncGenerator[str, None]:
        yield "fine"


@pytest.mark.parametrize(
    ("root", "extra", "named"),
    [
        ("QUERIES", LeakyQuery, "Query.leak"),
        ("SUBSCRIPTIONS", LeakySubscription, "Subscription.leakFeed"),
    ],
)
def test_an_unguarded_root_field_is_refused_by_name(
    monkeypatch: pytest.MonkeyPatch,
    make_settings: Callable[..., Settings],
    root: str,
    extra: type,
    named: str,
) -> None:
    monkeypatch.setattr(build, root, (*getattr(build, root), extra))
    with pytest.raises(UnguardedFieldError, match=named):
        build.build_schema(make_settings())
    with pytest.raises(UnguardedFieldError, match=named):  # the app does not start
        create_app(make_settings())


def test_a_guarded_subscription_is_accepted(
    monkeypatch: pytest.MonkeyPatch, make_settings: Callable[..., Settings]
) -> None:
    monkeypatch.setattr(build, "SUBSCRIPTIONS", (*build.SUBSCRIPTIONS, GuardedSubscription))
    build.build_schema(make_settings())


def test_guards_table_shows_every_domain_field(make_settings: Callable[..., Settings]) -> None:
    table = dict(line.split(None, 1) for line in guard_table(make_settings()).splitlines())
    assert table["Query.notes"] == "IsAuthenticated"
    assert table["Query.note"] == "IsAuthenticated"
    assert table["Query.user"] == "IsAuthenticated"
    assert table["Query.users"] == "HasRole('admin')"
    assert table["Query.auditEvents"] == "HasRole('admin')"
    assert table["Mutation.createNote"] == "IsAuthenticated"
    assert table["Mutation.updateNote"] == "IsAuthenticated"
    assert table["Mutation.deleteNote"] == "IsAuthenticated"
    assert table["Subscription.noteEvents"] == "IsAuthenticated"
    assert "NONE" not in table.values()
