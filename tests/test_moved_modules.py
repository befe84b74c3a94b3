"""Old module paths (before the subpackages) still import, as the modules at their new paths.

A registered version stores a copy of `promptomatix/serving.py` and MLflow runs that copy, old
imports and all, whenever the version is loaded; a user's plugin may use the old paths too.
"""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from promptomatix.moved import MOVED

PACKAGE = Path(__file__).resolve().parent.parent / "promptomatix"


@pytest.mark.parametrize("old", sorted(MOVED))
def test_an_old_path_is_the_module_at_its_new_path_with_a_warning(old):
    assert not (PACKAGE.parent / (old.replace(".", "/") + ".py")).exists(), f"{old} is still a file: drop it from MOVED"
    sys.modules.pop(old, None)
    with pytest.warns(DeprecationWarning, match=f"{old} has moved to {MOVED[old]}"):
        module = importlib.import_module(old)
    assert module is importlib.import_module(MOVED[old])


def test_the_imports_of_a_serving_py_stored_before_the_move_still_work():
    # The imports of promptomatix/serving.py as registered versions stored it before the move.
    stored = textwrap.dedent("""
        import warnings
        warnings.simplefilter("error")
        warnings.simplefilter("ignore", DeprecationWarning)
        from promptomatix import record
        from promptomatix.config import ModelSettings
        from promptomatix.evaluation import answer
        from promptomatix.models.lm import LM
        from promptomatix.models.usage import UsageMeter
        print(record.__name__, answer.__module__, ModelSettings.__module__)
    """)
    done = subprocess.run([sys.executable, "-c", stored], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["promptomatix.tracking.record", "promptomatix.scoring.evaluator", "promptomatix.config"]


def test_no_module_of_the_project_imports_an_old_path():
    # Old paths import with only a DeprecationWarning (which pytest does not show): this is what
    # keeps new code off them.
    root = PACKAGE.parent
    found = []
    for folder in ("promptomatix", "tests", "pipelines", "benchmarks", "examples", "scripts"):
        for path in (root / folder).rglob("*.py"):
            if path.name == "test_moved_modules.py":
                continue
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                names = []
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module:
                    names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
                found += [f"{path.relative_to(root)}:{node.lineno} {name}" for name in names if name in MOVED]
    assert not found, "imports of old paths:\n" + "\n".join(found)
