"""Compiled plans: a known query run without graphql-core's executor, with the same answer.

Entry points, for any path that holds a parsed and validated document (trusted documents,
APQ): `GraphGateSchema.execute_prepared(document, definition, ...)` (schema/execution.py)
runs one of its operations the way every prepared request runs, masking and telemetry
included, which is what such a path wants. Underneath, `schema.plans.get(document,
definition)` (a PlanCache) returns the OperationPlan of that operation, compiled on first
use and kept while the document lives, or None when the operation is outside the
supported subset (then graphql-core's `execute` runs it); `plan.run(variable_values,
context, root_value, operation_extensions)` (variables coerced by `coerce_variables` in
schema/execution.py) returns graphql-core's ExecutionResult, or an awaitable of one.

What compiling does: graphql-core collects the fields of each selection set (fragments
expanded), looks up each field's definition, builds a Path, a resolve info and its
completion steps by testing the return type, on every request. A plan does all the
looking up once, per document: each field knows its definition, its response key, its
field nodes, its sub-plan, how to complete its type, and how to call its resolver. The
run then mirrors graphql-core 3.3's executor step for step (`Executor.execute_fields`,
`execute_field`, `complete_value`, `handle_field_error`, `CollectedErrors`, the
concurrency of sibling awaitables with `gather_with_cancel`), so results, errors (message,
locations, path, original error), null propagation and which resolvers run are the same.

Resolvers are called in one of three ways, decided per field at compile time:

- basic: a strawberry field without resolver or extension: strawberry's own resolve
  function, which reads the attribute and never looks at the info (none is built);
- direct: a strawberry field with a resolver, no GraphQL arguments, no exception handler,
  and only extensions that keep the arguments as they are (the permission classes): the
  same chain of extension resolvers strawberry builds (`build_field_extension_resolvers`:
  every permission class runs on every request), then the resolver, with its `self`,
  `info`, `root`/`parent` parameters filled in as strawberry's `get_arguments` does;
  without strawberry's per-call argument conversion and `reduce`/`partial` chain;
- generic: anything else (arguments, `__typename`, introspection): the field's own
  resolve function with a resolve info and `get_argument_values`, as graphql-core does.

Supported (compiled): query operations whose selections are fields, inline fragments and
fragment spreads on the very object type they are in (or without a type condition),
returning objects, scalars, enums, lists and non-null wrappers of them. Falls back to
graphql-core (`plans.get` answers None): mutations (run serially and dominated by their
database work: nothing to win) and subscriptions; any directive (`@skip`/`@include`, on an
operation, field or fragment); a fragment on an interface or union, or a field returning
one (none exists in this schema today); fragment variables.
"""

from __future__ import annotations

import weakref
from asyncio import gather, get_running_loop
from collections import OrderedDict
from collections.abc import AsyncIterable, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial, reduce
from typing import Any, cast

from graphql import (
    DocumentNode,
    ExecutionResult,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLBoolean,
    GraphQLError,
    GraphQLID,
    GraphQLLeafType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLSchema,
    GraphQLString,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    is_abstract_type,
    is_leaf_type,
    is_list_type,
    is_non_null_type,
    is_object_type,
    located_error,
)
from graphql.execution.executor import CollectedErrors, default_field_resolver
from graphql.execution.values import VariableValues, get_argument_values
from graphql.pyutils import Path, Undefined, gather_with_cancel, inspect, is_iterable
from graphql.type import GraphQLField
from graphql.type.definition import GraphQLResolveInfoHelpers
from strawberry.execution import optimized_is_awaitable
from strawberry.extensions.field_extension import FieldExtension, build_field_extension_resolvers
from strawberry.permission import PermissionExtension
from strawberry.schema.schema import _OperationContextAwareGraphQLResolveInfo
from strawberry.schema.schema_converter import GraphQLCoreConverter
from strawberry.types.field import StrawberryField
from strawberry.utils.await_maybe import await_maybe

_BASIC, _DIRECT, _GENERIC = 0, 1, 2  # how a field's resolver is called (module docstring)
_NON_NULL, _LIST, _LEAF, _OBJECT = 0, 1, 2, 3  # what completing a value takes


_ResolveInfo = _OperationContextAwareGraphQLResolveInfo
_new_tuple = tuple.__new__
# Never awaitable: what optimized_is_awaitable answers first, checked inline where hot.
_PLAIN = frozenset({type(None), bool, int, float, str, list, dict})
_UNCHANGED: dict[Any, type] = {GraphQLString: str, GraphQLID: str, GraphQLBoolean: bool}


class Unsupported(Exception):
    """The document uses something the compiler leaves to graphql-core."""


@dataclass(slots=True)
class _Completion:
    """How to complete a value of one output type (graphql-core's complete_value)."""

    kind: int
    output_type: GraphQLOutputType
    inner: _Completion | None = None  # non-null and list: the wrapped type
    # leaf: a value of exactly this class is its own output (String and ID: str, Boolean:
    # bool), which is what their coerce_output_value answers for it
    same: type | None = None
    fields: list[_FieldPlan] = field(default_factory=list)  # object: its selection


@dataclass(slots=True)
class _FieldPlan:
    key: str  # the response key (alias or name)
    name: str
    nodes: list[FieldNode]
    definition: GraphQLField
    parent: GraphQLObjectType
    kind: int
    resolve: Callable[..., Any]
    completion: _Completion
    has_arguments: bool = False
    strawberry_field: StrawberryField | None = None
    needs_info: bool = True
    info_head: tuple[Any, ...] = ()  # the resolve info's fields before `path`
    type_name: str = ""  # the parent's name, as a Path names it

    def __post_init__(self) -> None:
        self.info_head = (self.name, self.nodes, self.definition.type, self.parent)
        self.type_name = self.parent.name


class _Compiler:
    def __init__(self, schema: Any, document: DocumentNode) -> None:
        self.strawberry = schema
        self.schema: GraphQLSchema = schema._schema
        self.info_class = schema.config.info_class
        self.exception_handlers = bool(
            getattr(schema.schema_converter, "_exception_handler_specs", ())
        )
        self.size = 0
        self.fragments: dict[str, FragmentDefinitionNode] = {}
        for definition in document.definitions:
            if isinstance(definition, FragmentDefinitionNode):
                if definition.variable_definitions:
                    raise Unsupported("fragment variables")
                self.fragments[definition.name.value] = definition

    def collect(
        self,
        parent: GraphQLObjectType,
        selection_set: SelectionSetNode,
        into: dict[str, list[FieldNode]],
        visited: set[str],
    ) -> None:
        """graphql-core's collect_fields, for selections without directives."""
        for selection in selection_set.selections:
            if selection.directives:
                raise Unsupported("directives")
            if isinstance(selection, FieldNode):
                into.setdefault((selection.alias or selection.name).value, []).append(selection)
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                if condition is not None and condition.name.value != parent.name:
                    raise Unsupported("fragment on another type")
                self.collect(parent, selection.selection_set, into, visited)
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                if name in visited:
                    continue
                visited.add(name)
                fragment = self.fragments[name]
                if fragment.directives:
                    raise Unsupported("directives")
                if fragment.type_condition.name.value != parent.name:
                    raise Unsupported("fragment on another type")
                self.collect(parent, fragment.selection_set, into, visited)
            else:  # pragma: no cover - the grammar has no other selection
                raise Unsupported(type(selection).__name__)

    def selection(
        self, parent: GraphQLObjectType, nodes: Iterable[SelectionSetNode]
    ) -> list[_FieldPlan]:
        grouped: dict[str, list[FieldNode]] = {}
        visited: set[str] = set()
        for selection_set in nodes:
            self.collect(parent, selection_set, grouped, visited)
        plans = []
        for key, field_nodes in grouped.items():
            plan = self.field(parent, key, field_nodes)
            if plan is not None:
                plans.append(plan)
        return plans

    def completion(self, type_: GraphQLOutputType, nodes: list[FieldNode]) -> _Completion:
        if is_non_null_type(type_):
            assert isinstance(type_, GraphQLNonNull)
            return _Completion(_NON_NULL, type_, self.completion(type_.of_type, nodes))
        if is_list_type(type_):
            assert isinstance(type_, GraphQLList)
            return _Completion(_LIST, type_, self.completion(type_.of_type, nodes))
        if is_leaf_type(type_):
            return _Completion(_LEAF, type_, same=_UNCHANGED.get(type_))
        if is_abstract_type(type_) or not is_object_type(type_):
            raise Unsupported("abstract type")
        assert isinstance(type_, GraphQLObjectType)
        sets = [node.selection_set for node in nodes if node.selection_set]
        return _Completion(_OBJECT, type_, fields=self.selection(type_, sets))

    def field(
        self, parent: GraphQLObjectType, key: str, nodes: list[FieldNode]
    ) -> _FieldPlan | None:
        first = nodes[0]
        name = first.name.value
        self.size += 1
        definition = self.schema.get_field(parent, name)
        if definition is None:
            return None  # graphql-core skips it too (validation refuses it first)
        completion = self.completion(definition.type, nodes)
        plan = _FieldPlan(
            key=key,
            name=name,
            nodes=nodes,
            definition=definition,
            parent=parent,
            kind=_GENERIC,
            resolve=definition.resolve or default_field_resolver,
            completion=completion,
            has_arguments=bool(definition.args or first.arguments),
        )
        if not plan.has_arguments:
            self.shortcut(plan)
        return plan

    def shortcut(self, plan: _FieldPlan) -> None:
        """Call a strawberry field's resolver without its per-call wrapper, when the wrapper
        would only pass the source and the info through (see the module docstring)."""
        extensions = plan.definition.extensions or {}
        strawberry_field = extensions.get(GraphQLCoreConverter.DEFINITION_BACKREF)
        if not isinstance(strawberry_field, StrawberryField) or self.exception_handlers:
            return
        if getattr(plan.resolve, "__name__", "") == "_get_basic_result":
            plan.kind, plan.needs_info = _BASIC, False
            return
        resolver = strawberry_field.base_resolver
        if resolver is None or strawberry_field.arguments:
            return
        for extension in strawberry_field.extensions:
            if type(extension) is not PermissionExtension or (
                type(extension).map_arguments is not FieldExtension.map_arguments
            ):
                return
        plan.kind = _DIRECT
        plan.strawberry_field = strawberry_field
        plan.resolve = _direct_call(strawberry_field)
        plan.needs_info = bool(strawberry_field.extensions) or resolver.info_parameter is not None


def _direct_call(field: StrawberryField) -> Callable[[Any, Any], Any]:
    """What strawberry's `_resolver`/`_async_resolver` does for a field without arguments,
    given the strawberry Info: its extension chain, then the resolver."""
    resolver = field.base_resolver
    assert resolver is not None
    takes_self = resolver.self_parameter is not None
    source_names = [
        parameter.name
        for parameter in (resolver.parent_parameter, resolver.root_parameter)
        if parameter is not None
    ]
    info_name = resolver.info_parameter.name if resolver.info_parameter is not None else None
    # strawberry takes an `info` keyword out of the extensions' kwargs and puts it back for
    # the resolver; a differently named info parameter travels through the extensions.
    info_travels = info_name is not None and info_name != "info"
    # StrawberryResolver.__call__ calls wrapped_func, once it checked that it can be called.
    call = resolver.wrapped_func if callable(resolver.wrapped_func) else resolver.__call__

    def get_result(source: Any, info: Any, **kwargs: Any) -> Any:
        if info_name == "info":
            kwargs["info"] = info
        return call(source, **kwargs) if takes_self else call(**kwargs)

    chain = reduce(
        lambda chained, next_fn: partial(next_fn, chained),
        build_field_extension_resolvers(field) if field.extensions else [],
        get_result,
    )

    def resolve(source: Any, info: Any) -> Any:
        kwargs: dict[str, Any] = {}
        for name in source_names:
            kwargs[name] = source
        if info_travels:
            assert info_name is not None
            kwargs[info_name] = info
        return chain(source, info, **kwargs)

    if not field.is_async:
        return resolve

    async def resolve_async(source: Any, info: Any) -> Any:
        return await await_maybe(resolve(source, info))

    return resolve_async


class OperationPlan:
    """One query operation of one document, compiled."""

    def __init__(self, schema: Any, document: DocumentNode, operation: OperationDefinitionNode):
        if operation.operation is not OperationType.QUERY:
            raise Unsupported(operation.operation.value)
        if operation.directives:
            raise Unsupported("directives")
        compiler = _Compiler(schema, document)
        root = compiler.schema.get_root_type(operation.operation)
        if root is None:
            raise Unsupported("no root type")
        self.schema = compiler.schema
        self.info_class = compiler.info_class
        self.operation = operation
        self.fragments = compiler.fragments
        self.root_type = root
        self.fields = compiler.selection(root, [operation.selection_set])
        self.size = compiler.size  # compiled fields, all levels

    def run(
        self,
        variable_values: VariableValues,
        context: Any,
        root_value: Any = None,
        operation_extensions: dict[str, Any] | None = None,
    ) -> ExecutionResult | Awaitable[ExecutionResult]:
        """Execute the operation: the result, or an awaitable of it when a resolver waits."""
        return _Run(self, variable_values, context, root_value, operation_extensions).start()


class _Run:
    """The state of one execution (graphql-core's Executor, less what a plan knows)."""

    __slots__ = (
        "background",
        "context",
        "errors",
        "extensions",
        "helpers",
        "info_tail",
        "plan",
        "root",
        "variables",
    )

    def __init__(
        self,
        plan: OperationPlan,
        variables: VariableValues,
        context: Any,
        root: Any,
        extensions: dict[str, Any] | None,
    ) -> None:
        self.plan = plan
        self.variables = variables
        self.context = context
        self.root = root
        self.extensions = extensions
        self.errors = CollectedErrors()
        self.background: set[Any] = set()
        self.helpers = GraphQLResolveInfoHelpers(gather=_gather, track=self.track)
        self.info_tail = (
            plan.schema,
            plan.fragments,
            root,
            plan.operation,
            variables.coerced,  # strawberry hands resolvers the plain dict
            context,
            optimized_is_awaitable,
            None,  # abort signal
            self.helpers,
            extensions,
        )

    def start(self) -> ExecutionResult | Awaitable[ExecutionResult]:
        try:
            data = self.fields(self.plan.fields, self.root, None)
            if not isinstance(data, dict):  # an awaitable: some resolver waits
                return self.finish_later(data)
        except GraphQLError as error:
            self.errors.add(error, None)
            return ExecutionResult(None, self.errors.errors or None)
        return ExecutionResult(data, self.errors.errors or None)

    async def finish_later(self, pending: Awaitable[dict[str, Any]]) -> ExecutionResult:
        try:
            data: dict[str, Any] | None = await pending
        except GraphQLError as error:
            self.errors.add(error, None)
            data = None
        return ExecutionResult(data, self.errors.errors or None)

    # Background settling, as graphql-core's settle_in_background / track_async_work.
    def settle(self, awaitables: list[Awaitable[Any]]) -> None:
        try:
            get_running_loop()
        except RuntimeError:
            for awaitable in awaitables:
                close = getattr(awaitable, "close", None)
                if close is not None:
                    close()
            return
        future = gather(*awaitables, return_exceptions=True)
        self.background.add(future)
        future.add_done_callback(self.background.discard)

    def track(self, values: Iterable[Any]) -> None:
        awaitables = [value for value in values if optimized_is_awaitable(value)]
        if awaitables:
            self.settle(awaitables)

    def info(self, plan: _FieldPlan, path: Path) -> Any:
        """The resolve info strawberry's execution context builds for a field (its
        NamedTuple's fields, in order, made as one tuple)."""
        return _new_tuple(_ResolveInfo, (*plan.info_head, path, *self.info_tail))

    def fields(
        self, plans: list[_FieldPlan], source: Any, path: Path | None
    ) -> dict[str, Any] | Awaitable[dict[str, Any]]:
        """Executor.execute_fields."""
        results: dict[str, Any] = {}
        pending: list[str] = []
        try:
            for plan in plans:
                result = self.field(
                    plan, source, _new_tuple(Path, (path, plan.key, plan.type_name))
                )
                results[plan.key] = result
                if type(result) not in _PLAIN and optimized_is_awaitable(result):
                    pending.append(plan.key)
        except Exception:
            if pending:
                self.settle([results[key] for key in pending])
            raise
        if not pending:
            return results
        return self.gather_fields(results, pending)

    @staticmethod
    async def gather_fields(results: dict[str, Any], pending: list[str]) -> dict[str, Any]:
        if len(pending) == 1:
            key = pending[0]
            results[key] = await results[key]
        else:
            awaited = await gather_with_cancel(*(results[key] for key in pending))
            results.update(zip(pending, awaited, strict=True))
        return results

    def field(self, plan: _FieldPlan, source: Any, path: Path) -> Any:
        """Executor.execute_field."""
        kind = plan.kind
        raw_info = self.info(plan, path) if plan.needs_info else None
        try:
            if kind == _BASIC:
                result = plan.resolve(source, raw_info)
            elif kind == _DIRECT:
                field = plan.strawberry_field
                info = (
                    None
                    if raw_info is None
                    else self.plan.info_class(_raw_info=raw_info, _field=field)
                )
                result = plan.resolve(source, info)
            else:
                args = (
                    get_argument_values(plan.definition, plan.nodes[0], self.variables)
                    if plan.has_arguments
                    else {}
                )
                result = plan.resolve(source, raw_info, **args)
            if optimized_is_awaitable(result):
                return self.complete_awaitable(plan, path, result)
            completed = self.complete(plan.completion, plan, path, result)
            if type(completed) not in _PLAIN and optimized_is_awaitable(completed):
                return self.await_completed(plan, plan.completion, path, completed)
        except Exception as raw_error:
            self.field_error(raw_error, plan.completion, plan, path)
            return None
        return completed

    async def await_completed(
        self, plan: _FieldPlan, completion: _Completion, path: Path, completed: Awaitable[Any]
    ) -> Any:
        try:
            return await completed
        except Exception as raw_error:
            self.field_error(raw_error, completion, plan, path)
            return None

    async def complete_awaitable(
        self, plan: _FieldPlan, path: Path, result: Awaitable[Any], completion: Any = None
    ) -> Any:
        """Executor.complete_awaitable_value (and complete_awaitable_list_item_value)."""
        completion = plan.completion if completion is None else completion
        try:
            completed = self.complete(completion, plan, path, await result)
            if optimized_is_awaitable(completed):
                completed = await completed
        except Exception as raw_error:
            self.field_error(raw_error, completion, plan, path)
            completed = None
        return completed

    def field_error(
        self, raw_error: Exception, completion: _Completion, plan: _FieldPlan, path: Path
    ) -> None:
        """Executor.handle_field_error: a non-null position passes the error up."""
        error = located_error(raw_error, plan.nodes, path.as_list())
        if completion.kind == _NON_NULL:
            raise error
        self.errors.add(error, path)

    def complete(self, completion: _Completion, plan: _FieldPlan, path: Path, result: Any) -> Any:
        """Executor.complete_value, its type tests done at compile time."""
        if type(result) is completion.same:  # a String, ID or Boolean leaf, nullable
            return result
        if isinstance(result, Exception):
            raise result
        kind = completion.kind
        if kind == _NON_NULL:
            inner = completion.inner
            assert inner is not None
            if type(result) is inner.same:  # the same, non-null
                return result
            completed = self.complete(inner, plan, path, result)
            if completed is None:
                raise TypeError(
                    f"Cannot return null for non-nullable field {plan.parent.name}.{plan.name}."
                )
            return completed
        if result is None or result is Undefined:
            return None
        if kind == _LEAF:
            leaf: GraphQLLeafType = completion.output_type  # type: ignore[assignment]
            coerced = leaf.coerce_output_value(result)
            if coerced is Undefined or coerced is None:
                raise TypeError(
                    f"Expected `{inspect(leaf)}.coerce_output_value({inspect(result)})`"
                    f" to return non-nullable value, returned: {inspect(coerced)}"
                )
            return coerced
        if kind == _OBJECT:
            return self.complete_object(completion, plan, path, result)
        return self.complete_list(completion, plan, path, result)

    def complete_object(
        self, completion: _Completion, plan: _FieldPlan, path: Path, result: Any
    ) -> Any:
        object_type: GraphQLObjectType = completion.output_type  # type: ignore[assignment]
        if object_type.is_type_of:
            is_type_of = object_type.is_type_of(result, self.info(plan, path))
            if optimized_is_awaitable(is_type_of):
                return self.complete_object_later(
                    completion, plan, path, result, cast("Awaitable[bool]", is_type_of)
                )
            if not is_type_of:
                raise _invalid_return_type(object_type, result, plan)
        return self.fields(completion.fields, result, path)

    async def complete_object_later(
        self,
        completion: _Completion,
        plan: _FieldPlan,
        path: Path,
        result: Any,
        is_type_of: Awaitable[bool],
    ) -> Any:
        if not await is_type_of:
            raise _invalid_return_type(completion.output_type, result, plan)  # type: ignore[arg-type]
        sub_fields = self.fields(completion.fields, result, path)
        if optimized_is_awaitable(sub_fields):
            return await sub_fields  # type: ignore[misc]
        return sub_fields  # pragma: no cover - graphql-core's own branch, kept alike

    def complete_list(
        self, completion: _Completion, plan: _FieldPlan, path: Path, result: Any
    ) -> Any:
        """Executor.complete_list_value and complete_iterable_value."""
        item_completion = completion.inner
        assert item_completion is not None
        same = item_completion.same
        if same is None and item_completion.kind == _NON_NULL:
            same = item_completion.inner.same  # type: ignore[union-attr]
        if same is not None and type(result) in (list, tuple):
            # Items that each complete to themselves (a list of strings, say): no item can
            # fail or wait, so the loop below would copy them one by one.
            for item in result:
                if type(item) is not same:
                    break
            else:
                return list(result)
        if isinstance(result, AsyncIterable):
            return self.complete_async_list(item_completion, plan, path, result)
        if not is_iterable(result):
            raise GraphQLError(
                "Expected Iterable, but did not find one for field"
                f" '{plan.parent.name}.{plan.name}'."
            )
        completed: list[Any] = []
        pending: list[int] = []
        iterator = iter(result)
        index = 0
        try:
            for item in iterator:
                item_path = Path(path, index, None)
                if optimized_is_awaitable(item):
                    completed.append(
                        self.complete_awaitable(plan, item_path, item, item_completion)
                    )
                    pending.append(index)
                elif self.complete_item(item, completed, item_completion, plan, item_path):
                    pending.append(index)
                index += 1
        except Exception:
            leftovers = [completed[i] for i in pending]
            leftovers.extend(item for item in iterator if optimized_is_awaitable(item))
            if leftovers:
                self.settle(leftovers)
            raise
        if not pending:
            return completed
        return self.gather_items(completed, pending)

    @staticmethod
    async def gather_items(completed: list[Any], pending: list[int]) -> list[Any]:
        if len(pending) == 1:
            index = pending[0]
            completed[index] = await completed[index]
        else:
            awaited = await gather_with_cancel(*(completed[index] for index in pending))
            for index, value in zip(pending, awaited, strict=True):
                completed[index] = value
        return completed

    def complete_item(
        self,
        item: Any,
        completed: list[Any],
        completion: _Completion,
        plan: _FieldPlan,
        path: Path,
    ) -> bool:
        """Executor.complete_list_item_value: True when the item is still pending."""
        try:
            value = self.complete(completion, plan, path, item)
            if optimized_is_awaitable(value):
                completed.append(self.await_completed(plan, completion, path, value))
                return True
            completed.append(value)
        except Exception as raw_error:
            self.field_error(raw_error, completion, plan, path)
            completed.append(None)
        return False

    async def complete_async_list(
        self, completion: _Completion, plan: _FieldPlan, path: Path, result: AsyncIterable[Any]
    ) -> list[Any]:
        """Executor.complete_async_iterator_value without @stream: item after item."""
        completed: list[Any] = []
        index = 0
        async for item in result:
            item_path = Path(path, index, None)
            if self.complete_item(item, completed, completion, plan, item_path):
                completed[index] = await completed[index]
            index += 1
        return completed


def _gather(values: Sequence[Awaitable[Any]]) -> Awaitable[list[Any]]:
    """Executor.gather_async_work, offered to resolvers in their info."""
    return gather_with_cancel(*values)


def _invalid_return_type(type_: GraphQLObjectType, result: Any, plan: _FieldPlan) -> GraphQLError:
    return GraphQLError(
        f"Expected value of type '{type_.name}' but got: {inspect(result)}.", plan.nodes
    )


# Compiled fields kept by one schema's plans, all documents together: ~1.1 KB each
# (tests/schema/test_plan.py measures it), so ~11 MB at most. A plan holds one entry per
# field position once fragments are expanded; MAX_FIELDS bounds that per operation, but
# fragments make that many out of a short text, so the document cache's byte budget alone
# would not bound them.
MAX_PLANNED_FIELDS = 10_000


@dataclass(slots=True)
class _Cached:
    document: weakref.ref[DocumentNode]
    plan: OperationPlan | None
    size: int


class PlanCache:
    """Plans by document and operation: each kept while its document lives (the document
    cache, ValidationResults, decides that) and while all plans together hold at most
    `max_fields` compiled fields (least recently used out first)."""

    def __init__(self, schema: Any, max_fields: int = MAX_PLANNED_FIELDS) -> None:
        self._schema = schema
        self._max_fields = max_fields
        self._entries: OrderedDict[tuple[int, int], _Cached] = OrderedDict()
        self.fields = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(
        self, document: DocumentNode, operation: OperationDefinitionNode
    ) -> OperationPlan | None:
        """The compiled plan of `operation` (one of `document`'s), None when unsupported."""
        key = (id(document), id(operation))
        entry = self._entries.get(key)
        if entry is not None and entry.document() is document:
            self._entries.move_to_end(key)
            return entry.plan
        try:
            plan: OperationPlan | None = OperationPlan(self._schema, document, operation)
        except Unsupported:
            plan = None
        reference = weakref.ref(document, partial(self._forget, key))
        entry = _Cached(reference, plan, 1 if plan is None else plan.size)
        self._drop(key)
        self._entries[key] = entry
        self.fields += entry.size
        while self.fields > self._max_fields and len(self._entries) > 1:
            self._drop(next(iter(self._entries)))
        return plan

    def _drop(self, key: tuple[int, int]) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self.fields -= entry.size

    def _forget(self, key: tuple[int, int], reference: weakref.ref[DocumentNode]) -> None:
        """Its document is gone (dropped from the document cache)."""
        entry = self._entries.get(key)
        if entry is not None and entry.document is reference:
            self._drop(key)
