"""Operation limits (depth, aliases, repeated fields, tokens, directives, introspection),
answered with QUERY_TOO_COMPLEX, checked before the other validation rules. Depth, aliases,
repeated fields and the document's size are counted on fields collected through fragments
(schema/cost.py); graphql-core's introspection-depth rule and our directive count are tagged."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from graphql import (
    ASTValidationRule,
    DirectiveNode,
    DocumentNode,
    GraphQLError,
    GraphQLSchema,
    GraphQLSyntaxError,
    MaxIntrospectionDepthRule,
    NoSchemaIntrospectionCustomRule,
    ValidationContext,
    ValidationRule,
    specified_rules,
    validate,
)
from strawberry.extensions import (
    AddValidationRules,
    MaxTokensLimiter,
    SchemaExtension,
)
from strawberry.schema.validation_rules.maybe_null import MaybeNullValidationRule
from strawberry.schema.validation_rules.one_of import OneOfInputValidationRule

from api.settings import Settings
from schema.cost import CostLimits, EmptySelectionError, OverLimitError, check_document
from schema.documents import TOO_COMPLEX, ValidationResults
from schema.text_input import NoControlCharactersRule, NumberLiteralLengthRule


class _TaggingContext:
    """A ValidationContext whose reported errors carry the QUERY_TOO_COMPLEX code."""

    def __init__(self, inner: ValidationContext) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def report_error(self, error: GraphQLError) -> None:
        error.extensions = {**(error.extensions or {}), "code": TOO_COMPLEX}
        self._inner.report_error(error)


def too_complex(rule: type[ASTValidationRule]) -> type[ASTValidationRule]:
    """The same rule, its errors tagged with the contract code."""

    class Tagged(rule):  # type: ignore[valid-type,misc]
        def __init__(self, context: ValidationContext) -> None:
            super().__init__(_TaggingContext(context))

    Tagged.__name__ = f"TooComplex{rule.__name__}"
    return Tagged


def max_directives_rule(limit: int) -> type[ValidationRule]:
    """Refuse operations with more than `limit` directives (directive overloading)."""

    class MaxDirectives(ValidationRule):
        def __init__(self, context: ValidationContext) -> None:
            super().__init__(context)
            self.count = 0

        def enter_directive(self, node: DirectiveNode, *_: Any) -> None:
            self.count += 1
            if self.count == limit + 1:
                self.report_error(GraphQLError(f"More than {limit} directives.", node))

    return MaxDirectives


class TagTokenLimit(SchemaExtension):
    """The parser's token limit surfaces as a syntax error: give it the contract code."""

    def on_operation(self) -> Iterator[None]:
        try:
            yield
        except GraphQLSyntaxError as error:  # ParseOnce raises parse errors from its own hook
            if "tokens" in error.message:
                error.extensions = {**(error.extensions or {}), "code": TOO_COMPLEX}
            raise


# graphql-core stops after this many errors (its default is 100): with suggestions on, each
# unknown name is compared with every name in the schema, ~2 ms per error here.
MAX_VALIDATION_ERRORS = 10
# strawberry's own rules, which its validate_document adds to every list.
_STRAWBERRY_RULES: tuple[type[ASTValidationRule], ...] = (
    MaybeNullValidationRule,
    OneOfInputValidationRule,
)


@dataclass(frozen=True, slots=True)
class Limits:
    """The MAX_* settings as checks: the collected-fields walk, then the limit rules."""

    cost: CostLimits
    rules: tuple[type[ASTValidationRule], ...]
    hide_suggestions: bool = True
    max_errors: int = MAX_VALIDATION_ERRORS

    def _run(
        self,
        schema: GraphQLSchema,
        document: DocumentNode,
        rules: tuple[type[ASTValidationRule], ...],
    ) -> list[GraphQLError]:
        # graphql-core's validate, not strawberry's validate_document: that one passes neither
        # hide_suggestions (the edit distances to every name are computed, then cut from the
        # message) nor max_errors.
        return validate(
            schema,
            document,
            (*rules, *_STRAWBERRY_RULES),
            max_errors=self.max_errors,
            hide_suggestions=self.hide_suggestions,
        )

    def validate(
        self,
        schema: GraphQLSchema,
        document: DocumentNode,
        rules: tuple[type[ASTValidationRule], ...],
    ) -> tuple[GraphQLError, ...]:
        """The limits first, then (within them only) every rule in `rules`.

        The walk runs before any validation pass: graphql-core's visit of a document costs
        more than the walk, and an operation over a limit should cost no more than that."""
        try:
            check_document(document, self.cost)
        except OverLimitError as error:
            return (GraphQLError(str(error), extensions={"code": TOO_COMPLEX}),)
        except EmptySelectionError as error:
            return (GraphQLError(str(error)),)
        found = self._run(schema, document, self.rules)
        if not found:
            found = self._run(schema, document, rules)
        return tuple(found)


class ValidateLimitsFirst(SchemaExtension):
    """Validation in two passes, both cached: the limit rules alone first, then, for an
    operation within the limits only, every rule.

    So an operation over a limit is refused with QUERY_TOO_COMPLEX alone, and before
    graphql-core's costlier rules spend any time on it.
    """

    def __init__(self, limits: Limits, results: ValidationResults) -> None:
        super().__init__()
        self._limits = limits
        self._results = results

    def on_validate(self) -> Iterator[None]:
        ctx = self.execution_context
        errors = self._results.get(ctx.query) if ctx.query is not None else None
        if errors is None:
            assert ctx.graphql_document is not None
            errors = self._limits.validate(
                ctx.schema._schema, ctx.graphql_document, ctx.validation_rules
            )
            if ctx.query is not None:
                self._results.put(ctx.query, errors, ctx.graphql_document)
        ctx.pre_execution_errors = list(errors)
        yield


def limits_for(settings: Settings) -> Limits:
    """The MAX_* settings as checks, their errors tagged QUERY_TOO_COMPLEX."""
    cost = CostLimits(
        max_depth=settings.max_query_depth,
        max_repeats=settings.max_aliases,
        max_fields=settings.max_fields,
        max_aliases=settings.max_aliases,
    )
    rules = (
        max_directives_rule(settings.max_directives),
        MaxIntrospectionDepthRule,  # graphql-core's (circular introspection), tagged
    )
    return Limits(
        cost,
        # Untagged: BAD_USER_INPUT, but in this first pass, before a rule converts the number.
        (*(too_complex(rule) for rule in rules), NumberLiteralLengthRule),
        hide_suggestions=not settings.field_suggestions,
    )


def limit_extensions(
    settings: Settings, results: ValidationResults
) -> list[Callable[[], SchemaExtension] | type[SchemaExtension]]:
    """The extensions that enforce the MAX_* settings (in every environment) and validate.

    They replace strawberry's ValidationCache (ValidateLimitsFirst is one, with a first pass);
    `results` is the schema's one cache, shared by every request.
    """
    limits = limits_for(settings)
    extensions: list[Callable[[], SchemaExtension] | type[SchemaExtension]] = [
        lambda: MaxTokensLimiter(max_token_count=settings.max_tokens),
        TagTokenLimit,
        lambda: ValidateLimitsFirst(limits, results),
    ]
    extensions.append(lambda: AddValidationRules(list(added_rules(settings))))
    return extensions


def added_rules(settings: Settings) -> tuple[type[ASTValidationRule], ...]:
    """The rules added to graphql-core's specified ones, for every operation."""
    rules: list[type[ASTValidationRule]] = [NoControlCharactersRule]
    if not settings.introspection:
        rules.append(NoSchemaIntrospectionCustomRule)
    return tuple(rules)


def all_rules(settings: Settings) -> tuple[type[ASTValidationRule], ...]:
    """Every validation rule an ad-hoc operation meets (after the limits' first pass)."""
    return (*specified_rules, *added_rules(settings))
