"""The size of an operation as graphql-core will see it: fields *collected* through inline and
named fragments, so a limit cannot be walked around by wrapping fields in `... on Query { }`.

graphql-core's OverlappingFieldsCanBeMerged compares every pair of fields that answer under
one response key, through fragments, and recurses into their selections: its cost grows
with the square of the copies. Counting the copies after fragments are expanded (merged per
response-key path, the way that rule and execution merge them) bounds that cost; the walk
itself stops as soon as a limit is passed, so measuring costs no more than the limit.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from graphql import (
    DirectiveNode,
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    ListValueNode,
    ObjectValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    ValueNode,
)


@dataclass(frozen=True, slots=True)
class CostLimits:
    """How big one operation may be once its fragments are expanded."""

    max_depth: int  # nesting of fields (introspection fields excluded), top level is 0
    max_repeats: int  # fields answering under one response key in one merged selection
    # fields, fragment spreads, variables and argument values (each list item and object
    # field) in the whole expanded document: every one is visited by each validation rule
    max_fields: int
    max_aliases: int  # aliased fields in the whole expanded document


class OverLimitError(Exception):
    """The operation passes a limit; the message says which, for the client."""


class EmptySelectionError(Exception):
    """A selection set with nothing in it: the grammar asks for one selection at least
    (graphql-core 3.3 parses `{ }` and no rule refuses it)."""


@dataclass(slots=True)
class _Merged:
    """Every field answering under one response-key path, fragments expanded."""

    count: int = 0
    children: dict[str, _Merged] = field(default_factory=dict)


class _Walk:
    def __init__(
        self,
        limits: CostLimits,
        fragments: dict[str, FragmentDefinitionNode],
    ) -> None:
        self.limits = limits
        self.fragments = fragments
        self.name = "anonymous"
        self.check_depth = True
        self.collected = 0
        self.aliases = 0

    def count(self) -> None:
        self.collected += 1
        if self.collected > self.limits.max_fields:
            raise OverLimitError(
                f"'{self.name}' selects more than {self.limits.max_fields} fields, "
                "arguments and values once its fragments are expanded."
            )

    def values(self, node: ValueNode | None) -> None:
        """Count a literal value node by node: a list of 2,000 items is 2,000 nodes that
        every validation rule visits (send large inputs as variables)."""
        pending = [node] if node is not None else []
        while pending:
            value = pending.pop()
            self.count()
            if isinstance(value, ListValueNode):
                pending.extend(value.values)
            elif isinstance(value, ObjectValueNode):
                pending.extend(field.value for field in value.fields)

    def arguments(self, node: FieldNode | DirectiveNode) -> None:
        for argument in node.arguments or ():
            self.values(argument.value)

    def selection_set(
        self,
        node: SelectionSetNode,
        merged: _Merged,
        depth: int,
        introspection: bool,
        expanding: frozenset[str],
        visited: set[str],
    ) -> None:
        """Collect `node` into `merged`. `visited` holds the fragments already spread into
        this selection (spread twice, a fragment is collected once, as graphql-core does);
        `expanding` the ones being expanded around it (a cycle is refused elsewhere)."""
        if not node.selections:
            raise EmptySelectionError("A selection set must select at least one field.")
        for selection in node.selections:
            if isinstance(selection, FieldNode):
                self._field(selection, merged, depth, introspection, expanding)
            elif isinstance(selection, InlineFragmentNode):
                self.selection_set(
                    selection.selection_set, merged, depth, introspection, expanding, visited
                )
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                fragment = self.fragments.get(name)
                if fragment is None or name in visited or name in expanding:
                    continue  # unknown or cyclic: graphql-core's own rules report it
                visited.add(name)
                self.count()
                self.selection_set(
                    fragment.selection_set,
                    merged,
                    depth,
                    introspection,
                    expanding | {name},
                    visited,
                )

    def _field(
        self,
        node: FieldNode,
        merged: _Merged,
        depth: int,
        introspection: bool,
        expanding: frozenset[str],
    ) -> None:
        self.count()
        self.arguments(node)
        for directive in node.directives or ():
            self.arguments(directive)
        key = (node.alias or node.name).value
        if node.alias is not None:
            self.aliases += 1
            if self.aliases > self.limits.max_aliases:
                raise OverLimitError(
                    f"More than {self.limits.max_aliases} aliases (fragments included)."
                )
        child = merged.children.get(key)
        if child is None:
            child = merged.children[key] = _Merged()
        child.count += 1
        if child.count > self.limits.max_repeats:
            raise OverLimitError(
                f"A field is repeated more than {self.limits.max_repeats} times "
                "(fragments included)."
            )
        # Introspection fields do not count towards depth (GraphiQL's own query is deep);
        # graphql-core's MaxIntrospectionDepthRule bounds them instead.
        introspection = introspection or node.name.value.startswith("__")
        if self.check_depth and not introspection and depth > self.limits.max_depth:
            raise OverLimitError(
                f"'{self.name}' exceeds maximum operation depth of {self.limits.max_depth}"
            )
        if node.selection_set is not None:
            self.selection_set(
                node.selection_set, child, depth + 1, introspection, expanding, set()
            )


def check_document(document: DocumentNode, limits: CostLimits) -> int:
    """The number of fields and spreads the document collects, each operation and each
    fragment definition walked (graphql-core's overlap check visits both); OverLimitError
    as soon as a limit is passed."""
    fragments = {
        definition.name.value: definition
        for definition in document.definitions
        if isinstance(definition, FragmentDefinitionNode)
    }
    walk = _Walk(limits, fragments)
    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode):
            walk.name = definition.name.value if definition.name else "anonymous"
            walk.check_depth = True
            for variable in definition.variable_definitions or ():
                walk.count()  # each is checked and coerced: part of the budget
                walk.values(variable.default_value)
            expanding: frozenset[str] = frozenset()
        elif isinstance(definition, FragmentDefinitionNode):
            walk.check_depth = False  # its depth counts where an operation spreads it
            expanding = frozenset({definition.name.value})
        else:
            continue
        walk.selection_set(definition.selection_set, _Merged(), 0, False, expanding, set())
    return walk.collected
