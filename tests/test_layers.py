"""The layout holds: no import cycle among api.* and schema.*, and every module sits in a
layer of the import-linter contract (pyproject.toml; `lint-imports` checks the directions)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parent.parent


def _graph() -> grimp.ImportGraph:
    return grimp.build_graph("api", "schema", cache_dir=None)


def _cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    modules = sorted(graph.modules)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in modules:
        if start in index:
            continue
        work = [(start, iter(sorted(graph.find_modules_directly_imported_by(start))))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append(
                        (child, iter(sorted(graph.find_modules_directly_imported_by(child))))
                    )
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_import_cycle() -> None:
    assert _cycles(_graph()) == []


def test_the_cycle_check_sees_a_cycle() -> None:
    graph = grimp.ImportGraph()
    for a, b in [("x.a", "x.b"), ("x.b", "x.c"), ("x.c", "x.a"), ("x.c", "x.d")]:
        graph.add_import(importer=a, imported=b)
    assert _cycles(graph) == [["x.a", "x.b", "x.c"]]


def test_every_module_is_in_a_layer() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    layers = next(c for c in config["contracts"] if c["type"] == "layers")["layers"]
    named = {part.strip() for layer in layers for part in layer.split("|")}
    outside = sorted(
        module
        for module in _graph().modules
        if module not in {"api", "api.__main__", "schema"}
        and not any(module == name or module.startswith(name + ".") for name in named)
    )
    assert outside == [], f"add these to a layer in [tool.importlinter]: {outside}"


def test_readme_layout_names_every_module() -> None:
    """The README's layout tree is the map: each module and package appears in it."""
    readme = (ROOT / "README.md").read_text()
    tree = readme.split("## Layout", 1)[1].split("```", 2)[1]
    missing = sorted(
        str(path.relative_to(ROOT))
        for package in ("api", "schema")
        for path in (ROOT / package).rglob("*.py")
        if "migrations" not in path.parts and path.name != "__init__.py" and path.name not in tree
    )
    folders = sorted(
        str(path.relative_to(ROOT))
        for package in ("api", "schema")
        for path in (ROOT / package).rglob("__init__.py")
        if "migrations" not in path.parts and f"{path.parent.name}/" not in tree
    )
    assert missing == [] and folders == [], f"add to README.md's layout: {missing + folders}"
