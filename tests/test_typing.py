"""mypy checks every module: its exclude list (pyproject.toml, [tool.mypy]) may only shrink.

`make lint` runs mypy itself; this test keeps a module from leaving the check unnoticed.
"""

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Each entry left, and why. Remove an entry here when its module is typed; never add one.
ALLOWED_EXCLUDES: dict[str, str] = {}


def _mypy_config() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["mypy"]


def test_mypy_exclude_list_does_not_grow():
    exclude = _mypy_config().get("exclude", [])
    if isinstance(exclude, str):  # mypy also takes a single regular expression
        exclude = [exclude]
    unexpected = sorted(set(exclude) - set(ALLOWED_EXCLUDES))
    assert not unexpected, (f"mypy's exclude list gained {unexpected}: type the module instead "
                            f"(every module is checked, issue 41)")


def test_mypy_checks_the_package():
    config = _mypy_config()
    assert config.get("files") == ["promptomatix"]
    for pattern in config.get("exclude", []):
        assert re.fullmatch(r"\^promptomatix/[\w/]+\\\.py\$", pattern), f"{pattern!r} excludes more than one module"


def test_no_override_silences_a_promptomatix_module():
    for override in _mypy_config().get("overrides", []):
        modules = override.get("module", [])
        modules = [modules] if isinstance(modules, str) else modules
        ours = [m for m in modules if m == "promptomatix" or m.startswith("promptomatix.")]
        assert not (ours and override.get("ignore_errors")), f"ignore_errors on {ours}: type them instead"
