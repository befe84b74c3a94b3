"""Meta-prompts are text files (`string.Template` syntax, `$name`), easy to read, diff and swap."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from string import Template


def load_template(name_or_path: str) -> Template:
    """A built-in template by name (`intake`, `synthetic`, `rewrite`) or a file path."""
    path = Path(name_or_path)
    if path.suffix == ".txt" and path.is_file():
        return Template(path.read_text(encoding="utf-8"))
    return Template(files("promptomatix.templates").joinpath(f"{name_or_path}.txt").read_text(encoding="utf-8"))


def fill(name_or_path: str, **values) -> str:
    return load_template(name_or_path).substitute(**{k: str(v) for k, v in values.items()})
