"""The click options of `promptomatix optimize`, made from the options themselves: one per config
field (its type, default and `help`, see `config._option`) and one per declared plugin option.

A new config field is therefore a new flag, with nothing to restate here; the flags' values
reach `config.flat.config_from_options` under the field names.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import click

from promptomatix.config import MODEL_KEYS, ModelSettings, OptimizationConfig
from promptomatix.config.flat import base_type, FIELD_KEYS, NESTED, option_types
from promptomatix.config.plugin_options import OPTIONS


def config_params() -> list[click.Option]:
    """A click option for every config field that has a flag, in the fields' order, the task and
    optimizer models' settings where those fields are."""
    types = option_types()
    model = {f.name: f for f in dataclasses.fields(ModelSettings)}
    params = []
    for f in dataclasses.fields(OptimizationConfig):
        if f.name in ("task_model", "optimizer_model"):
            prefix = "" if f.name == "task_model" else "optimizer_"
            for key in MODEL_KEYS:
                meta = model[key].metadata
                # No default here: the optimizer model's follow the task model's when not given.
                params.append(_param(prefix + key, types[prefix + key], None,
                                     meta["optimizer_help"] if prefix else meta["help"], {}))
        elif f.name not in NESTED and f.metadata.get("flag", "") is not None:
            default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
            help_ = f.metadata.get("help", "")
            params.append(_param(f.name, types[f.name], None if default is dataclasses.MISSING else default,
                                 help_() if callable(help_) else help_, f.metadata))
    return params


def _param(name: str, hint: Any, default: Any, help_: str, meta) -> click.Option:
    flag = meta.get("flag") or "--" + name.replace("_", "-")
    kind = base_type(hint)
    extra: dict[str, Any] = {"help": help_}
    if meta.get("metavar"):
        extra["metavar"] = meta["metavar"]
    if kind is bool:
        return click.Option([f"{flag}/--no-{flag[2:]}"], default=default, show_default=True, **extra)
    if kind in (tuple, dict) and name not in FIELD_KEYS:
        # Repeatable (`--hook a --hook b`); a mapping's items are KEY=VALUE, read by the CLI.
        return click.Option([flag, name], multiple=True, **extra)
    if meta.get("choices"):
        extra["type"] = click.Choice(list(meta["choices"]))
    elif kind in (int, float):
        extra["type"] = kind
    if default is not None and default != ():
        extra |= {"default": default, "show_default": True}
    return click.Option([flag, name], **extra)


def with_plugin_options(params: list) -> list:
    """`params` and a click option for each declared plugin option they lack."""
    taken = {p.name for p in params}
    return params + [_plugin_param(OPTIONS.get(name)) for name in OPTIONS.names() if name not in taken]


def _plugin_param(option) -> click.Option:
    flag = "--" + option.name.replace("_", "-")
    kind = click.Choice([str(c) for c in option.choices]) if option.choices and option.type is str else option.type
    help_ = f"{option.help} [plugin option; default: {option.default}]".strip()
    if option.type is bool:
        return click.Option([f"{flag}/--no-{flag[2:]}", ], default=None, help=help_)
    return click.Option([flag], type=kind, default=None, help=help_)
