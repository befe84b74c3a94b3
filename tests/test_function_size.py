"""No function of the package over 50 lines (its docstring included): a function that grows
past it is split into named steps, so that a reader can hold each one (issue 41). Complexity is
ruff's C901 (pyproject.toml, `make lint`)."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "promptomatix"
MAX_LINES = 50


def test_no_function_of_the_package_is_over_50_lines():
    long = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_LINES:
                    long.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {node.name} ({lines} lines)")
    assert long == [], "split these into named steps: " + "; ".join(long)
