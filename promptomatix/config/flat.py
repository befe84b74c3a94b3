"""Flat options, as users give them, to an `OptimizationConfig` and back.

One option is one name everywhere: a `promptomatix optimize` flag (`--max-calls`), an
`optimize(max_calls=...)` keyword, a `--config` file key and an MLproject parameter. The names
and their kinds come from the config's own fields (`OptimizationConfig`, and `ModelSettings` for
the task model's `model`, `temperature`, ... and the optimizer model's `optimizer_model`, ...),
so a new field is a new option with nothing else to list. Plugin options (options.py) join them.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any

from promptomatix.config import (DEFAULT_MODEL, MODEL_KEYS, OPTIMIZER_MAX_TOKENS, PRESET_KEYS, SEARCH_PRESETS,
                                 TEMPLATE_KEYS, ModelSettings, OptimizationConfig, redact_url, to_number)
from promptomatix.config.plugin_options import OPTIONS, resolve
from promptomatix.errors import ConfigError
from promptomatix.templates import source_name

# Config fields that are not flat options: the model settings are given flat (MODEL_KEYS), and
# plugin options by their own names.
NESTED = ("task_model", "optimizer_model", "plugin_options")
# Lists of names that may also be given as one comma-separated text ("review,title").
FIELD_KEYS = ("input_fields", "output_fields", "labels")


def option_types() -> dict[str, Any]:
    """Every built-in flat option's name and type, read from the config's annotations."""
    config = typing.get_type_hints(OptimizationConfig)
    model = typing.get_type_hints(ModelSettings)
    return ({k: v for k, v in config.items() if k not in NESTED} | model
            | {f"optimizer_{k}": v for k, v in model.items()})


def flag_names() -> dict[str, str]:
    """Options whose command-line flag is spelled otherwise than their field (`--metric` sets
    `metric_weights`, `--hook` sets `hooks`): the flag's name, with underscores, to the field's.
    Either name works as a keyword or a `--config` key, so a user moving between the command
    line and Python need not translate."""
    names = {}
    for f in dataclasses.fields(OptimizationConfig):
        flag = f.metadata.get("flag")
        if flag:
            name = flag.lstrip("-").replace("-", "_")
            if name != f.name:
                names[name] = f.name
    return names


def _by_field_name(options: dict[str, Any]) -> dict[str, Any]:
    """`options` with flag spellings (`flag_names`) renamed to their fields; a `ConfigError` when
    an option is given under both names."""
    renamed = dict(options)
    for flag, name in flag_names().items():
        if flag in renamed:
            if name in renamed:
                raise ConfigError(f"{flag!r} and {name!r} are one option: give it once")
            renamed[name] = renamed.pop(flag)
    return renamed


def base_type(hint: Any) -> Any:
    """`hint` without its `| None`, and without its parameters (`tuple[str, ...]` -> tuple)."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        hint = next(arg for arg in typing.get_args(hint) if arg is not type(None))
    return typing.get_origin(hint) or hint


def config_from_options(**options) -> OptimizationConfig:
    """Build the config from flat options. `model`, `temperature`, `max_tokens` and `api_base`
    set the task model, the same names prefixed `optimizer_` the optimizer model, which
    otherwise follows the task model (and its API base) but samples warmer. None means unset.
    Plugin options get their declared type, and their default when not given."""
    options = _by_field_name({k: v for k, v in options.items() if v is not None})
    known = {f.name for f in dataclasses.fields(OptimizationConfig)} | set(MODEL_KEYS) | {f"optimizer_{k}" for k in MODEL_KEYS}
    plugin = {k: options.pop(k) for k in list(options) if k not in known and k in OPTIONS.names()}
    unknown = sorted(set(options) - known)
    if unknown:
        choices = (known - set(NESTED)) | set(OPTIONS.names()) | set(flag_names())
        raise ConfigError(f"unknown option {unknown[0]!r}; known options: {', '.join(sorted(choices))}")
    if "raw_input" not in options:
        raise ConfigError("raw input is empty: describe the task, e.g. 'Classify the sentiment of a movie review'")
    kinds = option_types()
    options = {k: _coerce(k, v, kinds.get(k)) for k, v in options.items()}
    options["plugin_options"] = resolve({**options.get("plugin_options", {}), **plugin})
    task = {k: options.pop(k) for k in MODEL_KEYS if k in options}
    opt = {k: options.pop(f"optimizer_{k}") for k in MODEL_KEYS if f"optimizer_{k}" in options}
    if task:
        options["task_model"] = ModelSettings(**task)
    defaults = {"model": task.get("model", DEFAULT_MODEL), "api_base": task.get("api_base"),
                "temperature": 0.7, "max_tokens": OPTIMIZER_MAX_TOKENS}
    options["optimizer_model"] = ModelSettings(**(defaults | opt))
    return OptimizationConfig(**options)


def to_options(config: OptimizationConfig) -> dict[str, Any]:
    """The flat options (`promptomatix optimize` flags, `optimize(**options)` keywords and
    `--config` file keys) that rebuild `config` with `config_from_options`."""
    options = {f.name: getattr(config, f.name) for f in dataclasses.fields(config) if f.name not in NESTED}
    options |= {k: source_name(options[k]) for k in TEMPLATE_KEYS}
    # Plugin options flat, as they are given; those at their default left out.
    options |= {k: v for k, v in config.plugin_options.items()
                if k in OPTIONS.names() and v != OPTIONS.get(k).default}
    # Sizes equal to the preset's and optimizer settings equal to what the task model
    # implies are left out, so that a re-run with another --search or --model moves them.
    preset = SEARCH_PRESETS[config.search]
    for key in PRESET_KEYS:
        if options[key] == getattr(preset, key):
            del options[key]
    options |= dataclasses.asdict(config.task_model)
    derived = {"model": config.task_model.model, "api_base": config.task_model.api_base,
               "temperature": 0.7, "max_tokens": OPTIMIZER_MAX_TOKENS}
    options |= {f"optimizer_{k}": v for k, v in dataclasses.asdict(config.optimizer_model).items() if v != derived[k]}
    for key in ("api_base", "optimizer_api_base"):
        if options.get(key):
            options[key] = redact_url(options[key])
    return {k: list(v) if isinstance(v, tuple) else v for k, v in options.items()}


def _coerce(key: str, value: Any, hint: Any) -> Any:
    """An option's value from a file or from Python, checked against its type and converted
    once. `hint` is the option's annotation (None for a config field given as a whole)."""
    label = key.replace("_", " ")
    kind = base_type(hint)
    if key in TEMPLATE_KEYS:
        if not (isinstance(value, str) or callable(value)):
            raise ConfigError(f"{label} must be a template name, a .txt file, module:function or a function, "
                              f"got {value!r}")
        return value
    if kind in (int, float):
        return to_number(label, value, kind)
    if kind is str and not isinstance(value, str):
        raise ConfigError(f"{label} must be text, got {value!r}")
    if kind is tuple:
        items = value.split(",") if isinstance(value, str) and key in FIELD_KEYS else value
        if isinstance(items, str) or not isinstance(items, (list, tuple)) or not all(isinstance(i, str) for i in items):
            raise ConfigError(f"{label} must be a list of names, got {value!r}")
        return tuple(items)
    if kind is dict and not isinstance(value, dict):
        raise ConfigError(f"{label} must be a mapping, got {value!r}")
    if kind is bool and not isinstance(value, bool):
        raise ConfigError(f"{key} must be true or false, got {value!r}")
    return value


def load_options(path: str) -> dict[str, Any]:
    """Options from a YAML (or JSON) file: a mapping of option names to values."""
    import yaml

    try:
        with open(path, encoding="utf-8") as handle:
            options = yaml.safe_load(handle) or {}
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(options, dict):
        raise ConfigError(f"{path}: expected a mapping of option names to values")
    return {str(k).replace("-", "_"): v for k, v in options.items()}
