"""Fields that graphql-core calls directly (schema/lean_fields.py): only those strawberry's
wrapper had nothing to do for, answering as before."""

from __future__ import annotations

import pytest
import strawberry

from schema.lean_fields import NotLeanError, lean_fields


@strawberry.type(name="User")
class ArgumentUser:
    @strawberry.field
    def email(self, shout: bool) -> str:
        return "ADA" if shout else "ada"


@strawberry.type
class ArgumentQuery:
    @strawberry.field
    def me(self) -> ArgumentUser:
        return ArgumentUser()


@strawberry.type(name="User")
class PlainUser:
    @strawberry.field
    def email(self, info: strawberry.Info) -> str:
        return f"{info.context['who']}@example.com"


@strawberry.type
class PlainQuery:
    @strawberry.field
    def me(self) -> PlainUser:
        return PlainUser()


def test_a_field_with_arguments_keeps_strawberrys_wrapper_and_refuses_to_start() -> None:
    with pytest.raises(NotLeanError, match=r"User\.email"):
        lean_fields(strawberry.Schema(query=ArgumentQuery))


def test_a_lean_field_answers_as_before() -> None:
    schema = strawberry.Schema(query=PlainQuery)
    assert lean_fields(schema) == ["User.email"]
    result = schema.execute_sync("{ me { email } }", context_value={"who": "ada"})
    assert result.errors is None and result.data == {"me": {"email": "ada@example.com"}}
