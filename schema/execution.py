"""The schema's execution: error masking, and a fast path for operations seen before.

A query text that once parsed and validated without errors (ValidationResults keeps its
document) skips strawberry's pipeline: the same document, resolvers and permission
classes, the same error processing, masking and telemetry as on the full pipeline, without
building an execution context, the extension instances and their hook context managers on
every request (a fifth of the CPU of a small guarded query). Such an operation runs on its
compiled plan (schema/plan.py: a query without directives or abstract types), else on
graphql-core's `execute`; both answer alike (tests/schema/test_plan.py, and the
differential check the test suite runs on every prepared operation).

Entry point for a parsed and validated document held elsewhere (trusted documents, APQ):
`GraphGateSchema.execute_prepared(document, definition, variables, context, ...)`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Iterable
from functools import partial
from typing import Any

import strawberry
from graphql import (
    DocumentNode,
    GraphQLError,
    OperationDefinitionNode,
    VariableDefinitionNode,
    execute,
    get_operation_ast,
)
from graphql import (
    ExecutionResult as GraphQLExecutionResult,
)
from graphql import (
    OperationType as GraphQLOperationType,
)
from graphql.execution.values import VariableValues, get_variable_values
from strawberry.execution import optimized_is_awaitable
from strawberry.extensions import (
    AddValidationRules,
    MaskErrors,
    MaxTokensLimiter,
    SchemaExtension,
)
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.types import ExecutionResult
from strawberry.types.graphql import OperationType

from api.db import connection as db
from api.errors import AppError, BadUserInputError, ServiceUnavailableError
from schema.documents import ParseOnce, ValidationResults
from schema.limits import TagTokenLimit, ValidateLimitsFirst
from schema.plan import OperationPlan, PlanCache
from schema.telemetry import RequestTelemetry, record_operation
from schema.text_input import bad_variables

log = logging.getLogger("graphgate.errors")
_MASKED = "Internal server error."
# graphql-core's operation kinds as strawberry's (a dict look-up: the Enum call costs more)
_KINDS = {kind: OperationType(kind.value) for kind in GraphQLOperationType}
_OVER_HTTP = frozenset({OperationType.QUERY, OperationType.MUTATION})
_SUGGESTION = " Did you mean "  # graphql-core appends every suggestion as this sentence


def _is_unexpected(error: GraphQLError) -> bool:
    """Mask only errors that came from an exception that is neither ours nor graphql-core's
    own answer to the request (a variable value its scalar refused, say)."""
    original = error.original_error
    return original is not None and not isinstance(original, AppError | GraphQLError)


def _bad_variable(error: GraphQLError) -> str | None:
    """The variable an error is about (missing, or a value its type refuses), if any."""
    node = error.nodes[0] if error.nodes else None
    return node.variable.name.value if isinstance(node, VariableDefinitionNode) else None


def _masked(original: BaseException | None) -> tuple[str, dict[str, Any]]:
    """The message and extensions a client sees instead of an unexpected exception."""
    if original is not None and db.is_unavailable(original):
        return ServiceUnavailableError.default_message, {"code": ServiceUnavailableError.code}
    return _MASKED, {"code": AppError.code}


class GraphGateExecutionContext(StrawberryGraphQLCoreExecutionContext):
    """Variable values that do not coerce (missing, or refused by their type) are invalid
    input, in the contract's words: BAD_USER_INPUT naming the variable. Tagged here, where
    graphql-core coerces them, so the validation rules' errors about variables (a variable
    never used, say: the document's fault) keep no code."""

    @classmethod
    def build(cls, *args: Any, **kwargs: Any) -> Any:
        built = super().build(*args, **kwargs)
        if not isinstance(built, list):
            return bad_variables(built.variable_values.coerced) or built
        return _tag_variable_errors(built)


def _tag_variable_errors(errors: list[GraphQLError]) -> list[GraphQLError]:
    for error in errors:
        variable = _bad_variable(error)
        if variable is not None:
            error.extensions = {"code": BadUserInputError.code, "field": variable}
    return errors


# graphql-core's default, which `execute` uses on the other path.
MAX_COERCION_ERRORS = 50


def coerce_variables(
    schema: Any, operation: OperationDefinitionNode, raw: dict[str, Any] | None
) -> VariableValues | list[GraphQLError]:
    """The operation's variables as GraphGateExecutionContext.build coerces them (the same
    errors, tagged alike), for a compiled plan."""
    if not operation.variable_definitions:  # what coercion answers: inputs are ignored
        return VariableValues({}, {})
    values = get_variable_values(
        schema, operation.variable_definitions or (), raw or {}, max_errors=MAX_COERCION_ERRORS
    )
    if isinstance(values, list):
        return _tag_variable_errors(values)
    return bad_variables(values.coerced) or values


class MaskUnexpectedErrors(MaskErrors):
    """Contract errors pass through; a database outage becomes SERVICE_UNAVAILABLE and
    anything else INTERNAL_SERVER_ERROR, with the details only in the log."""

    def __init__(self) -> None:
        super().__init__(should_mask_error=_is_unexpected, error_message=_MASKED)

    def _process_result(self, result: object) -> None:
        # The base class first runs isinstance() against a typing Protocol (slow): skip it
        # for the common answer without errors.
        if getattr(result, "errors", None):
            super()._process_result(result)

    def anonymise_error(self, error: GraphQLError) -> GraphQLError:
        masked = super().anonymise_error(error)
        masked.message, masked.extensions = _masked(error.original_error)
        return masked

    def mask(self, errors: list[GraphQLError]) -> list[GraphQLError]:
        """What on_operation does to a result's errors, for the prepared path."""
        return self._process_errors(errors)


# Extensions whose work on a prepared operation is done: parsing and validation happened
# when the text was first seen (and cannot come out otherwise), masking and telemetry are
# repeated by hand.
_KNOWN_EXTENSIONS: frozenset[type[SchemaExtension]] = frozenset(
    {
        ParseOnce,
        MaxTokensLimiter,
        TagTokenLimit,
        ValidateLimitsFirst,
        AddValidationRules,
        MaskUnexpectedErrors,
        RequestTelemetry,
    }
)


class GraphGateSchema(strawberry.Schema):
    def __init__(
        self,
        *args: Any,
        hide_suggestions: bool,
        prepared: ValidationResults,
        execution_timeout: float,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("execution_context_class", GraphGateExecutionContext)
        super().__init__(*args, **kwargs)
        self.hide_suggestions = hide_suggestions
        self._timeout = execution_timeout
        self._prepared = prepared
        self._masker = MaskUnexpectedErrors()
        self.plans = PlanCache(self)
        extensions = self.get_extensions()
        kinds = {type(extension) for extension in extensions}
        # The fast path does by hand what our extensions do after validation (masking,
        # telemetry); any other extension, one with a resolve hook (middleware) or a schema
        # directive would be skipped there, so any of those turns it off.
        self._fast_path = (
            MaskUnexpectedErrors in kinds
            and kinds <= _KNOWN_EXTENSIONS
            and not self.directives
            and not any(extension._implements_resolve() for extension in extensions)
        )

    def process_errors(self, errors: list[GraphQLError], execution_context: Any = None) -> None:
        for error in errors:
            if self.hide_suggestions and _SUGGESTION in error.message:
                # strawberry strips field suggestions only: argument, type and enum value
                # suggestions would still spell out the schema (what clairvoyance feeds on).
                error.message = error.message.split(_SUGGESTION, 1)[0]
            if not _is_unexpected(error):
                continue  # contract errors are answers, not incidents
            assert error.original_error is not None
            if db.is_unavailable(error.original_error):
                log.warning("dependency unavailable in %s: %r", error.path, error.original_error)
            else:
                log.error("unexpected error in %s", error.path, exc_info=error.original_error)
            # Masked here too: an exception before execution (a validation rule, an
            # extension) never reaches MaskUnexpectedErrors.
            error.message, error.extensions = _masked(error.original_error)

    async def execute(
        self,
        query: str | None,
        variable_values: dict[str, Any] | None = None,
        context_value: Any | None = None,
        root_value: Any | None = None,
        operation_name: str | None = None,
        allowed_operation_types: Iterable[OperationType] | None = None,
        operation_extensions: dict[str, Any] | None = None,
    ) -> ExecutionResult:
        """Run one operation; TimeoutError past EXECUTION_TIMEOUT (the view answers it)."""
        # Subscriptions are served over WebSocket only (schema.subscribe): over HTTP their
        # resolver would run as a plain field and fail; strawberry answers this with a 400.
        allowed_operation_types = (
            _OVER_HTTP
            if allowed_operation_types is None
            else set(allowed_operation_types or _OVER_HTTP) - {OperationType.SUBSCRIPTION}
        )
        operation = self._prepared_operation(query, operation_name, allowed_operation_types)
        if operation is None:  # first sight, invalid, or an error strawberry must raise
            async with asyncio.timeout(self._timeout):
                return await super().execute(
                    query,
                    variable_values,
                    context_value,
                    root_value,
                    operation_name,
                    allowed_operation_types,
                    operation_extensions,
                )
        document, definition = operation
        return await self.execute_prepared(
            document,
            definition,
            variable_values,
            context_value,
            root_value,
            operation_name,
            operation_extensions,
        )

    async def execute_prepared(
        self,
        document: DocumentNode,
        definition: OperationDefinitionNode,
        variable_values: dict[str, Any] | None = None,
        context_value: Any | None = None,
        root_value: Any | None = None,
        operation_name: str | None = None,
        operation_extensions: dict[str, Any] | None = None,
    ) -> ExecutionResult:
        """Run `definition`, the operation `operation_name` selects in `document`, a document
        that parsed and validated without errors under this schema's rules: on its compiled
        plan when it has one, else on graphql-core's executor; errors processed and masked,
        telemetry recorded, EXECUTION_TIMEOUT armed once it waits, as for any request.

        The entry point for a path that keeps documents itself (trusted documents, say); like
        `_prepared_operation`, the caller refuses subscriptions and any operation type its
        transport does not allow before calling it."""
        plan = self.plans.get(document, definition)
        run = self._run_executor if plan is None else partial(self._run_compiled, plan)
        outcome = run(
            document,
            variable_values,
            context_value,
            root_value,
            operation_name,
            operation_extensions,
        )
        if isinstance(outcome, GraphQLExecutionResult):
            result = outcome  # answered without waiting (`me { id roles }`): nothing to time
        else:
            async with asyncio.timeout(self._timeout):
                result = await outcome
        errors = result.errors
        if errors:
            self._process_errors(errors)
            errors = self._masker.mask(errors)
        name = definition.name.value if definition.name else None
        record_operation(context_value, name, definition.operation.value, errors or [])
        return ExecutionResult(data=result.data, errors=errors)

    def _run_executor(
        self,
        document: DocumentNode,
        variable_values: dict[str, Any] | None,
        context_value: Any,
        root_value: Any,
        operation_name: str | None,
        operation_extensions: dict[str, Any] | None,
    ) -> GraphQLExecutionResult | Awaitable[GraphQLExecutionResult]:
        """A prepared operation on graphql-core's executor (before masking)."""
        return execute(
            self._schema,
            document,
            root_value=root_value,
            variable_values=variable_values,
            operation_name=operation_name,
            context_value=context_value,
            executor_class=self.execution_context_class,
            is_awaitable=optimized_is_awaitable,  # type: ignore[arg-type]
            operation_extensions=operation_extensions,
        )

    def _run_compiled(
        self,
        plan: OperationPlan,
        document: DocumentNode,
        variable_values: dict[str, Any] | None,
        context_value: Any,
        root_value: Any,
        operation_name: str | None,
        operation_extensions: dict[str, Any] | None,
    ) -> GraphQLExecutionResult | Awaitable[GraphQLExecutionResult]:
        """A prepared operation on its compiled plan (before masking)."""
        variables = coerce_variables(self._schema, plan.operation, variable_values)
        if isinstance(variables, list):
            return GraphQLExecutionResult(None, variables)
        return plan.run(variables, context_value, root_value, operation_extensions)

    def _prepared_operation(
        self,
        query: str | None,
        operation_name: str | None,
        allowed: Iterable[OperationType] | None,
    ) -> tuple[DocumentNode, OperationDefinitionNode] | None:
        if not self._fast_path or not query:
            return None
        document = self._prepared.valid_document(query)
        if document is None:
            return None
        definition = get_operation_ast(document, operation_name)
        if definition is None:  # strawberry raises for an unknown operation name
            return None
        kind = _KINDS[definition.operation]
        if kind is OperationType.SUBSCRIPTION or (allowed is not None and kind not in allowed):
            return None  # strawberry refuses these (InvalidOperationTypeError)
        return document, definition
