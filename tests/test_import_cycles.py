"""The package's modules import each other without cycles.

A cycle means no module of it can be understood, tested or loaded without all the others, and
an import placed inside a function to dodge Python's partial-module error only hides it (that
is how `config` once loaded every plugin registry). So every import counts here: inside
functions, and under `if TYPE_CHECKING:` too (a type-only cycle still ties the modules' meaning
together, and is one refactor away from a runtime one).

Importing `a.b.c` (or `from a.b import c`, or `from a.b.c import x`) runs `a/__init__` and
`a/b/__init__` first, so it is an edge to each of those packages as well, except to the
importing module's own packages: their `__init__` has started before the module's first line
runs, so reaching them again adds nothing (a name taken from one, `from a import x` where `x`
is not a submodule, is still an edge to it).
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "promptomatix"


def _modules() -> dict[str, Path]:
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _imports(tree: ast.AST):
    """Every import statement of `tree`, at any depth: in functions and under `if TYPE_CHECKING:`."""
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node


def import_graph() -> dict[str, set[str]]:
    """Module name -> the package's modules it imports (a name imported from a package counts
    as its submodule when it is one, else as the package), with the packages whose `__init__`
    those imports run on the way."""
    modules = _modules()
    return {module: _targets(module, path.read_text(encoding="utf-8"), path.name == "__init__.py", set(modules))
            for module, path in modules.items()}


def _targets(module: str, source: str, is_package: bool, modules: set[str]) -> set[str]:
    # The module and the packages it is in: their `__init__` has started before it runs.
    parts = module.split(".")
    own = {".".join(parts[:i]) for i in range(1, len(parts) + 1)}

    def owner(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    def on_the_way(name: str) -> set[str | None]:
        """The packages whose `__init__` importing `name` runs (`a`, `a.b` for `a.b.c`)."""
        steps = name.split(".")
        return {".".join(steps[:i]) for i in range(1, len(steps))} - own

    targets: set[str | None] = set()
    for node in _imports(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                found = owner(alias.name)
                targets |= {found} | (on_the_way(found) if found else set())
            continue
        base = node.module or ""
        if node.level:  # relative: from the module's package upwards
            package = module if is_package else module.rpartition(".")[0]
            for _ in range(node.level - 1):
                package = package.rpartition(".")[0]
            base = f"{package}.{base}".rstrip(".")
        for alias in node.names:
            full = f"{base}.{alias.name}"
            found = full if full in modules else owner(base)
            targets |= {found} | (on_the_way(found) if found else set())
    return {t for t in targets if t and t in modules and t != module}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in sorted(graph.get(node, ())):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def test_the_package_has_no_import_cycles():
    graph = import_graph()
    found = cycles(graph)
    detail = "\n".join(
        " <-> ".join(c) + "\n    " + "; ".join(f"{m} -> {', '.join(sorted(graph[m] & set(c)))}" for m in c)
        for c in found)
    assert not found, f"import cycles:\n{detail}"


def test_the_checker_sees_imports_in_functions_and_under_type_checking():
    graph = {"promptomatix.a": {"promptomatix.b"}, "promptomatix.b": {"promptomatix.c"},
             "promptomatix.c": {"promptomatix.a"}, "promptomatix.d": {"promptomatix.a"}}
    assert cycles(graph) == [["promptomatix.a", "promptomatix.b", "promptomatix.c"]]
    tree = ast.parse("import os\ndef f():\n    from promptomatix import config\n"
                     "if TYPE_CHECKING:\n    from promptomatix import api\n")
    assert [n.module for n in _imports(tree) if isinstance(n, ast.ImportFrom)] == ["promptomatix"] * 2


# A package `p` whose `__init__` imports its submodule `p.sub`, and a module `m` beside it.
MODULES = {"promptomatix", "promptomatix.m", "promptomatix.p", "promptomatix.p.sub", "promptomatix.p.q",
           "promptomatix.p.q.leaf"}


def test_an_import_through_a_package_is_an_edge_to_its_init():
    def targets(source: str, module: str = "promptomatix.m") -> set[str]:
        return _targets(module, source, False, MODULES)

    assert targets("from promptomatix.p.sub import x") == {"promptomatix.p", "promptomatix.p.sub"}
    assert targets("from promptomatix.p import sub") == {"promptomatix.p", "promptomatix.p.sub"}
    assert targets("import promptomatix.p.q.leaf") == {"promptomatix.p", "promptomatix.p.q", "promptomatix.p.q.leaf"}
    assert targets("from promptomatix.p import name_in_init") == {"promptomatix.p"}
    assert targets("if TYPE_CHECKING:\n    from promptomatix.p.q import leaf") == {
        "promptomatix.p", "promptomatix.p.q", "promptomatix.p.q.leaf"}
    # From inside `p`, its own `__init__` has already started: only what is named counts.
    assert targets("from promptomatix.p.q.leaf import x", "promptomatix.p.sub") == {
        "promptomatix.p.q", "promptomatix.p.q.leaf"}
    assert targets("from promptomatix.p import name_in_init", "promptomatix.p.sub") == {"promptomatix.p"}
    assert targets("from . import q", "promptomatix.p.sub") == {"promptomatix.p.q"}


def test_the_checker_sees_a_cycle_through_a_package_init():
    # `m` uses `p.q` only, but that runs `p/__init__`, which imports `p.sub`, which imports `m`.
    graph = {"promptomatix.m": _targets("promptomatix.m", "from promptomatix.p import q", False, MODULES),
             "promptomatix.p": _targets("promptomatix.p", "from promptomatix.p.sub import y", True, MODULES),
             "promptomatix.p.sub": _targets("promptomatix.p.sub", "def f():\n    from promptomatix import m",
                                            False, MODULES)}
    assert cycles(graph) == [["promptomatix.m", "promptomatix.p", "promptomatix.p.sub"]]
