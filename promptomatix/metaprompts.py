"""Meta-prompts: the text templates the optimizer model reads (`string.Template`, `$name`).

Built in: `intake`, `synthetic` (examples as JSON), `inputs` (inputs as plain text, for
classification), `rewrite` (the meta-prompt backend's) and `critique`. A user adds one
with `register_meta_prompt(name, path)` or an entry point in `promptomatix.meta_prompts`
(naming a template file), or passes a `.txt` file path wherever a name is accepted
(`--meta-prompt my_rewrite.txt`).
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from string import Template

from promptomatix.errors import ConfigError
from promptomatix.plugins import Registry


def _builtins(registry: Registry[str]) -> None:
    for name in ("intake", "synthetic", "inputs", "rewrite", "critique"):
        registry.register(name, str(files("promptomatix.templates").joinpath(f"{name}.txt")))


META_PROMPTS: Registry[str] = Registry("meta_prompts", _builtins)


def register_meta_prompt(name: str, path: str, *, replace: bool = False) -> str:
    """Register a template file under `name`."""
    if not Path(path).is_file():
        raise ConfigError(f"meta-prompt {name!r}: no template file at {path}")
    return META_PROMPTS.register(name, str(path), replace=replace)


def load_template(name_or_path: str, *, allowed: set[str] | None = None) -> Template:
    """A registered template by name, or a `.txt` file path. With `allowed`, a template naming
    any other `$placeholder` is refused (it could never be filled)."""
    path = Path(name_or_path)
    if not (path.suffix == ".txt" and path.is_file()):
        path = Path(META_PROMPTS.get(name_or_path))
    template = Template(path.read_text(encoding="utf-8"))
    if allowed is not None:
        unknown = sorted(set(template.get_identifiers()) - allowed)
        if unknown:
            raise ConfigError(f"meta-prompt {name_or_path}: unknown placeholders {', '.join('$' + u for u in unknown)}; "
                              f"available: {', '.join('$' + a for a in sorted(allowed))}")
    return template


def fill(name_or_path: str, **values) -> str:
    return load_template(name_or_path).substitute(**{k: str(v) for k, v in values.items()})
