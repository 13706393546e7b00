"""What a document asks of a field: a resolver may read ahead in one query what its
sub-fields would otherwise load one by one (a page's owners, the viewer's own row)."""

from __future__ import annotations

from collections.abc import Iterable

from graphql import FieldNode, FragmentSpreadNode, InlineFragmentNode, SelectionNode

from schema.context import Info


def _fields(selections: Iterable[SelectionNode], info: Info) -> list[FieldNode]:
    """The fields of a selection set, through inline fragments and fragment spreads."""
    fragments = info._raw_info.fragments  # graphql-core's own: the document's fragments
    pending = list(selections)
    fields: list[FieldNode] = []
    spread: set[str] = set()
    while pending:
        sel = pending.pop()
        if isinstance(sel, FieldNode):
            fields.append(sel)
        elif isinstance(sel, InlineFragmentNode):
            pending.extend(sel.selection_set.selections)
        elif isinstance(sel, FragmentSpreadNode) and sel.name.value not in spread:
            spread.add(sel.name.value)
            fragment = fragments.get(sel.name.value)
            if fragment is not None:
                pending.extend(fragment.selection_set.selections)
    return fields


# (id of the field's first AST node, path) -> (that node, the answer). Documents are kept
# and reused (schema/execution.py), so each is walked once; the node is held so that its
# id cannot be reused by another while the entry lives. Bounded, oldest out.
_SEEN: dict[tuple[int, tuple[str, ...]], tuple[FieldNode, frozenset[str]]] = {}
_SEEN_MAX = 1024


def selected(info: Info, path: tuple[str, ...] = ()) -> frozenset[str]:
    """The names of the fields the document selects at `path` below the current field
    (`()`: its own sub-fields; `("edges", "node")`: those of each edge's node)."""
    nodes = info._raw_info.field_nodes
    key = (id(nodes[0]), path)
    seen = _SEEN.get(key)
    if seen is not None and seen[0] is nodes[0] and len(nodes) == 1:
        return seen[1]
    names = frozenset(_walk(info, path))
    if len(nodes) == 1:
        if len(_SEEN) >= _SEEN_MAX:
            del _SEEN[next(iter(_SEEN))]
        _SEEN[key] = (nodes[0], names)
    return names


def _walk(info: Info, path: tuple[str, ...]) -> set[str]:
    level = [node for node in info._raw_info.field_nodes if node.selection_set]
    for name in path:
        below = [
            field
            for node in level
            if node.selection_set is not None
            for field in _fields(node.selection_set.selections, info)
            if field.name.value == name and field.selection_set is not None
        ]
        if not below:
            return set()
        level = below
    return {
        field.name.value
        for node in level
        if node.selection_set is not None
        for field in _fields(node.selection_set.selections, info)
    }
