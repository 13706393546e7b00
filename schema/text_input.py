"""Control characters in String input are the client's error, checked once at the GraphQL
boundary: in variables (each request) and in literals (a validation rule, cached).

NUL cannot be stored by PostgreSQL (a 500 otherwise) and no other C0/C1 control character
belongs in an email, a name or a note; tab, LF and CR are allowed.

A number literal over MAX_NUMBER_LITERAL characters is refused the same way: Python refuses
to convert an int of over 4,300 digits (ValueError inside graphql-core: a 500 otherwise).
"""

from __future__ import annotations

import re
from typing import Any

from graphql import (
    ArgumentNode,
    FloatValueNode,
    GraphQLError,
    IntValueNode,
    StringValueNode,
    ValidationRule,
    VariableDefinitionNode,
)

from api.errors import BadUserInputError

_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
MESSAGE = "Text may not contain control characters."
# No Int (32 bits) or Float (a double) needs more; Python's int() stops at 4,300 digits.
MAX_NUMBER_LITERAL = 1000


def has_control_characters(value: Any) -> bool:
    """Whether a (coerced) input value holds a string with a control character."""
    if isinstance(value, str):
        return _CONTROL.search(value) is not None
    if isinstance(value, dict):
        return any(has_control_characters(item) for item in value.values())
    if isinstance(value, list):
        return any(has_control_characters(item) for item in value)
    return False


def bad_variables(variables: dict[str, Any]) -> list[GraphQLError]:
    """BAD_USER_INPUT for the first variable whose text holds a control character."""
    for name, value in variables.items():
        if has_control_characters(value):
            return [
                GraphQLError(
                    f"Variable '${name}': {MESSAGE}",
                    extensions={"code": BadUserInputError.code, "field": name},
                )
            ]
    return []


class NoControlCharactersRule(ValidationRule):
    """A string literal with a control character (written as an escape) is BAD_USER_INPUT,
    naming the argument it is given to."""

    def __init__(self, context: Any) -> None:
        super().__init__(context)
        self._argument: str | None = None

    def enter_argument(self, node: ArgumentNode, *_: Any) -> None:
        self._argument = node.name.value

    def enter_string_value(self, node: StringValueNode, *_: Any) -> None:
        if _CONTROL.search(node.value):
            field = self._argument or "value"
            self.report_error(
                GraphQLError(
                    f"Argument '{field}': {MESSAGE}",
                    node,
                    extensions={"code": BadUserInputError.code, "field": field},
                )
            )


class NumberLiteralLengthRule(ValidationRule):
    """An Int or Float literal (an argument, a variable's default) longer than
    MAX_NUMBER_LITERAL characters is BAD_USER_INPUT, before any rule converts it."""

    def __init__(self, context: Any) -> None:
        super().__init__(context)
        self._argument: str | None = None

    def enter_argument(self, node: ArgumentNode, *_: Any) -> None:
        self._argument = node.name.value

    def enter_variable_definition(self, node: VariableDefinitionNode, *_: Any) -> None:
        self._argument = node.variable.name.value  # its default value

    def leave_argument(self, *_: Any) -> None:
        self._argument = None

    leave_variable_definition = leave_argument

    def _check(self, node: IntValueNode | FloatValueNode) -> None:
        if len(node.value) > MAX_NUMBER_LITERAL:
            field = self._argument or "value"
            self.report_error(
                GraphQLError(
                    f"Argument '{field}': a number may have at most {MAX_NUMBER_LITERAL} "
                    "characters.",
                    node,
                    extensions={"code": BadUserInputError.code, "field": field},
                )
            )

    def enter_int_value(self, node: IntValueNode, *_: Any) -> None:
        self._check(node)

    def enter_float_value(self, node: FloatValueNode, *_: Any) -> None:
        self._check(node)
