"""Options that plugins declare: per-run settings for a plugin's hook, backend, metric or data step.

A plugin declares each option once, `register_option(PluginOption(name, type, default, help))`,
or as an entry point in `promptomatix.config.plugin_options` naming a `PluginOption`. The option is then a
flag of `promptomatix optimize` (`--stop-target 0.8`, shown in `--help`), a key of `--config`
files and a keyword of `promptomatix.optimize(stop_target=0.8)`, converted and checked like the
built-in options before the run starts, and logged as the param `promptomatix.<name>`.

Its value reaches the plugin by name: a hook or backend factory, a data step (or data-step
class) and a callable metric whose signature has a parameter of the option's name get the run's
value there; backends and hooks can also read `task.config.plugin_options[name]`.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from promptomatix.config import builtin_option_names, to_number
from promptomatix.errors import ConfigError, PluginError
from promptomatix.plugins import Registry

TYPES = {"str": str, "int": int, "float": float, "bool": bool}
_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


@dataclass(frozen=True)
class PluginOption:
    """One option: its `name` (snake_case), `type` (str, int, float or bool, or their names),
    `default` (None for none), `help` (shown by `--help`) and, optionally, the allowed `choices`."""

    name: str
    type: type | str = str
    default: Any = None
    help: str = ""
    choices: tuple = ()

    def __post_init__(self):
        if not isinstance(self.name, str) or not _NAME_RE.match(self.name):
            raise ConfigError(f"plugin option name {self.name!r}: use lower-case letters, digits and '_'")
        kind = TYPES.get(self.type, self.type) if isinstance(self.type, str) else self.type
        if kind not in TYPES.values():
            raise ConfigError(f"plugin option {self.name!r}: type must be one of str, int, float, bool, got {self.type!r}")
        object.__setattr__(self, "type", kind)
        object.__setattr__(self, "choices", tuple(self.choices))
        if self.default is not None:
            object.__setattr__(self, "default", self.convert(self.default))

    def convert(self, value: Any) -> Any:
        """`value` (from a flag, a file or Python) as the option's type; ConfigError otherwise."""
        label = self.name.replace("_", " ")
        kind = self.type
        if kind is bool:
            if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
                value = value.lower() in ("true", "1", "yes")
            if not isinstance(value, bool):
                raise ConfigError(f"{label} must be true or false, got {value!r}")
        elif kind in (int, float):
            value = to_number(label, value, kind)
        elif not isinstance(value, str):
            raise ConfigError(f"{label} must be text, got {value!r}")
        if self.choices and value not in self.choices:
            raise ConfigError(f"{label} must be one of {', '.join(map(str, self.choices))}, got {value!r}")
        return value


OPTIONS: Registry[PluginOption] = Registry("options")


def register_option(option: PluginOption, *, replace: bool = False) -> PluginOption:
    """Declare a plugin option. Its name must not be a built-in option's."""
    if not isinstance(option, PluginOption):
        raise ConfigError(f"register_option takes a PluginOption, got {type(option).__name__}")
    if option.name in builtin_option_names():
        raise ConfigError(f"plugin option {option.name!r} is a built-in option's name; choose another")
    return OPTIONS.register(option.name, option, replace=replace)


def resolve(given: Mapping[str, Any]) -> dict[str, Any]:
    """Every declared option's value for a run: `given`'s, converted, else the default.
    ConfigError for a name no plugin declares."""
    declared = {name: OPTIONS.get(name) for name in OPTIONS.names()}
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise ConfigError(f"unknown option {unknown[0]!r}; plugin options: {', '.join(sorted(declared)) or '(none)'}")
    for name, option in declared.items():
        if not isinstance(option, PluginOption):
            raise PluginError(f"option {name!r} (promptomatix.options) is a {type(option).__name__}, not a PluginOption")
    return {name: option.convert(given[name]) if given.get(name) is not None else option.default
            for name, option in declared.items()}


def wanted(func: Callable, options: Mapping[str, Any]) -> dict[str, Any]:
    """The options `func` names as parameters (none when its signature cannot be read)."""
    try:
        params = inspect.signature(func).parameters
    except (TypeError, ValueError):
        return {}
    return {k: v for k, v in options.items() if k in params}


def call_with_options(func: Callable, options: Mapping[str, Any], *args, **kwargs):
    """`func(*args, **kwargs)` plus the options it names."""
    return func(*args, **kwargs, **wanted(func, options))
