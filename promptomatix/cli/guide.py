"""The original Promptomatix guide's command line: its flags on our `optimize` command, and the
`promtomatic` command. The only module of the guide's layer that knows click.
"""

from __future__ import annotations

import copy
import logging
import sys

import click
from click.core import ParameterSource

from promptomatix.cli.options import with_plugin_options
from promptomatix.errors import PromptomatixError
from promptomatix.guide.names import (FLAGS, GUIDE_BACKENDS, GUIDE_FLAGS, GUIDE_SEARCH_TYPES, GUIDE_TASK_TYPES,
                                      fold_guide_options)

_WRAPPED = "__promptomatix_guide__"  # marks a callback add_guide_aliases has wrapped


class _GuideValue(click.ParamType):
    """A parameter type that maps the guide's values onto ours, then converts as `inner` does."""

    def __init__(self, inner: click.ParamType, mapping: dict[str, str]):
        self.inner = inner
        self.mapping = mapping
        self.name = inner.name

    def convert(self, value, param, ctx):
        if isinstance(value, str):
            value = self.mapping.get(value, value)
        return self.inner.convert(value, param, ctx)

    def get_metavar(self, param, ctx=None):
        return self.inner.get_metavar(param, ctx) if hasattr(self.inner, "get_metavar") else None


def add_guide_aliases(command: click.Command) -> click.Command:
    """Give the `optimize` command (or a copy of it) the guide's flags, in place, and return it.

    Flags that only differ in spelling are added to the existing options' spellings
    (`--raw_input` next to `--raw-input`); the guide's values are translated as they are parsed
    (`--backend simple_meta_prompt`, `--search_type quick_search`); `--model_provider`,
    `--config_model_provider` and `--load_data_local` are new options combined with the model
    and data options before the command runs. Calling it again changes nothing."""
    params = {param.name: param for param in command.params}
    for name, spelling in GUIDE_FLAGS.items():
        param = params.get(name)
        if param is not None and spelling not in param.opts:
            param.opts.append(spelling)
    if "backend" in params and not isinstance(params["backend"].type, _GuideValue):
        params["backend"].type = _GuideValue(params["backend"].type, GUIDE_BACKENDS)
    if "task_type" in params and not isinstance(params["task_type"].type, _GuideValue):
        params["task_type"].type = _GuideValue(params["task_type"].type, GUIDE_TASK_TYPES)
    search = params.get("search")
    if search is not None and not isinstance(search.type, _GuideValue):
        inner = search.type
        if isinstance(inner, click.Choice):  # the guide's names are valid choices too
            inner = click.Choice([*inner.choices, *GUIDE_SEARCH_TYPES])
        search.type = _GuideValue(inner, GUIDE_SEARCH_TYPES)
    for option in (
        click.Option(["--model_provider", "--model-provider"],
                     help="The guide's provider of --model_name (openai, anthropic, togetherai, local, "
                          "or any LiteLLM provider): openai + gpt-4o is openai/gpt-4o."),
        click.Option(["--config_model_provider"], help="The guide's provider of --config_model_name."),
        click.Option(["--load_data_local"], is_flag=True, default=False,
                     help="The guide's switch for --local_train_data_path / --local_test_data_path."),
    ):
        if option.name not in params:
            command.params.append(option)
    if not getattr(command.callback, _WRAPPED, False):
        command.callback = _guide_callback(command.callback)
    return command


def _guide_callback(callback):
    """`callback` after the guide's combined options are folded into ours."""

    def run(**kwargs):
        ctx = click.get_current_context()
        providers = {key: kwargs.pop(key, None) or None for key in ("model_provider", "config_model_provider")}
        load_local = True if kwargs.pop("load_data_local", False) else None  # a flag: absent is not False
        for key in fold_guide_options(kwargs, providers, load_local, FLAGS):
            ctx.set_parameter_source(key, ParameterSource.COMMANDLINE)  # given, as the provider was
        for key in ("input_fields", "output_fields"):
            if isinstance(kwargs.get(key), list):  # the guide's "['a', 'b']", as our "a,b"
                kwargs[key] = ",".join(kwargs[key])
        return callback(**kwargs)

    setattr(run, _WRAPPED, True)
    run.__doc__ = callback.__doc__
    return run


class _GuideCommand(click.Command):
    """A top-level command: typed errors become one line and the error's exit status; plugin
    options are flags as on `promptomatix optimize`."""

    def get_params(self, ctx):
        return with_plugin_options(super().get_params(ctx))

    def invoke(self, ctx):
        logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
        for noisy in ("LiteLLM", "litellm", "httpx", "mlflow", "alembic", "urllib3"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
        from promptomatix.run.signals import exit_now, stop_on_signals, Terminated

        with stop_on_signals():  # SIGTERM/SIGHUP end the run KILLED, as under `promptomatix`
            try:
                return super().invoke(ctx)
            except PromptomatixError as exc:
                click.echo(f"Error: {exc}", err=True)
                sys.exit(exc.exit_code)
            except Terminated as exc:
                click.echo(f"Error: {exc}", err=True)
                exit_now(exc.exit_code)


def guide_command(base: click.Command, name: str = "promtomatic") -> click.Command:
    """A copy of `base` (`promptomatix optimize`) named `name`, taking the guide's flags as well
    as ours. `base` itself is left as it is."""
    params = []
    for param in base.params:
        clone = copy.copy(param)
        clone.opts, clone.secondary_opts = list(param.opts), list(param.secondary_opts)
        params.append(clone)
    command = _GuideCommand(name, params=params, callback=base.callback, help=base.help,
                            context_settings=dict(base.context_settings))
    return add_guide_aliases(command)
