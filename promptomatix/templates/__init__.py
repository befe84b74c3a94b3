"""Meta-prompts: the text templates the optimizer model reads (`string.Template`, `$name`).

Built in: `intake`, `task_type` (intake's choice of type, for a model that scores options),
`synthetic` (examples as JSON), `inputs` (inputs as plain text, for classification), `rewrite`
(the meta-prompt backend's) and `critique`. A user adds one
with `register_meta_prompt(name, path)` or an entry point in `promptomatix.meta_prompts`
(naming a template file).

Per run, each of the rewrite, intake, synthetic and inputs templates is chosen by an option
(`meta_prompt`, `intake_prompt`, `synthetic_prompt`, `inputs_prompt`) whose value is a
*template source*: a registered name, a `.txt` file path, an import path `package.module:function`
or (from Python) the function itself. A function is called with the placeholders' values as
keyword arguments (those it names, or all of them with `**values`) and returns the finished
text, which is not substituted again.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from importlib.resources import files
from pathlib import Path
from string import Template

from promptomatix.errors import ConfigError, PluginError
from promptomatix.plugins import Registry

TemplateSource = str | Callable[..., str]


def _builtins(registry: Registry[str]) -> None:
    for name in ("intake", "task_type", "synthetic", "inputs", "rewrite", "critique"):
        registry.register(name, str(files("promptomatix.templates").joinpath(f"{name}.txt")))


META_PROMPTS: Registry[str] = Registry("meta_prompts", _builtins)


def register_meta_prompt(name: str, path: str, *, replace: bool = False) -> str:
    """Register a template file under `name`."""
    if not Path(path).is_file():
        raise ConfigError(f"meta-prompt {name!r}: no template file at {path}")
    return META_PROMPTS.register(name, str(path), replace=replace)


def source_name(source: TemplateSource) -> str:
    """How a template source is written in params and config files: a function as
    `module:qualname` (which `resolve` imports back when it is importable)."""
    if callable(source):
        return f"{getattr(source, '__module__', '?')}:{getattr(source, '__qualname__', type(source).__name__)}"
    return source


def resolve(source: TemplateSource) -> str | Callable[..., str]:
    """A callable, a `.txt` path, or the path a registered name stands for. An import path
    `module:function` is imported; ConfigError if it cannot be."""
    if callable(source):
        return source
    if not isinstance(source, str) or not source.strip():
        raise ConfigError(f"a meta-prompt is a name, a .txt file, module:function or a function, got {source!r}")
    path = Path(source)
    if path.suffix == ".txt" and path.is_file():
        return str(path)
    if ":" in source and source not in META_PROMPTS.names():
        module, _, attr = source.partition(":")
        try:
            target = importlib.import_module(module)
            for part in attr.split("."):
                target = getattr(target, part)
        except Exception as exc:  # ImportError, AttributeError, or the module's own error
            raise ConfigError(f"meta-prompt {source}: cannot import it ({type(exc).__name__}: {exc})") from None
        if not callable(target):
            raise ConfigError(f"meta-prompt {source} is not a function returning the text")
        return target
    return META_PROMPTS.get(source)


def check_source(source: TemplateSource, allowed: set[str], label: str = "meta-prompt") -> None:
    """Refuse, before any work, a template naming a placeholder outside `allowed`, or a function
    requiring an argument that is not one of them."""
    found = resolve(source)
    if callable(found):
        try:
            params = inspect.signature(found).parameters
        except (TypeError, ValueError):
            return
        required = [p.name for p in params.values() if p.default is p.empty
                    and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and p.name not in allowed]
        if required:
            raise ConfigError(f"{label} {source_name(source)} requires {', '.join(required)}; "
                              f"it may take: {', '.join(sorted(allowed))}")
        return
    assert isinstance(source, str)  # a callable source resolves to itself (returned above); any other non-str is refused
    load_template(source, allowed=allowed)


def load_template(name_or_path: str, *, allowed: set[str] | None = None) -> Template:
    """A registered template by name, or a `.txt` file path. With `allowed`, a template naming
    any other `$placeholder` is refused (it could never be filled)."""
    path = Path(name_or_path)
    if not (path.suffix == ".txt" and path.is_file()):
        path = Path(META_PROMPTS.get(name_or_path))
    template = Template(path.read_text(encoding="utf-8"))
    if allowed is not None:
        unknown = sorted(placeholders(template) - allowed)
        if unknown:
            raise ConfigError(f"meta-prompt {name_or_path}: unknown placeholders {', '.join('$' + u for u in unknown)}; "
                              f"available: {', '.join('$' + a for a in sorted(allowed))}")
    return template


def placeholders(template: Template) -> set[str]:
    """The `$names` a template uses (`Template.get_identifiers` from Python 3.11, which the
    project does not require: it supports 3.10)."""
    return {match.group("named") or match.group("braced") for match in template.pattern.finditer(template.template)
            if match.group("named") or match.group("braced")}


def fill(source: TemplateSource, **values) -> str:
    """The text of template `source` with `values` in it (a function is called with them)."""
    found = resolve(source)
    if not callable(found):
        return load_template(found).substitute(**{k: str(v) for k, v in values.items()})
    params = inspect.signature(found).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        values = {k: v for k, v in values.items() if k in params}
    try:
        text = found(**values)
    except Exception as exc:  # a user's function: name it, keep the cause
        raise PluginError(f"meta-prompt {source_name(source)} failed: {type(exc).__name__}: {exc}") from exc
    if not isinstance(text, str) or not text.strip():
        raise PluginError(f"meta-prompt {source_name(source)} must return the text, got {text!r:.80}")
    return text
