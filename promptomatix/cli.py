"""The `promptomatix` command: thin click commands over the Python API."""

from __future__ import annotations

import logging
import os
import sys

import click

from promptomatix.cli_batch import add_to as add_batch_commands
from promptomatix.cli_feedback import add_to as add_feedback_commands
from promptomatix.cli_lifecycle import add_to as add_lifecycle_commands
from promptomatix.compat import add_guide_aliases
from promptomatix.config import SEARCH_PRESETS
from promptomatix.errors import PromptomatixError
from promptomatix.plugins import Registry
from promptomatix.progress import quiet as quiet_output
from promptomatix.signals import Terminated, exit_now, stop_on_signals
from promptomatix.summary import summary  # noqa: F401 (also the run's description)


# Commands contributed by plugins: click commands in the entry-point group
# `promptomatix.commands` (or `register_command`) appear under `promptomatix`.
COMMANDS: Registry[click.Command] = Registry("commands")


def register_command(command: click.Command, *, replace: bool = False) -> click.Command:
    return COMMANDS.register(command.name, command, replace=replace)


class _Group(click.Group):
    """Adds plugins' commands; typed errors become one line on stderr and the error's exit
    status, with no traceback."""

    def list_commands(self, ctx):
        return sorted(set(super().list_commands(ctx)) | set(COMMANDS.names()))

    def get_command(self, ctx, name):
        command = super().get_command(ctx, name)
        if command is None and name in COMMANDS.names():
            command = COMMANDS.get(name)
        return command

    def invoke(self, ctx):
        # SIGTERM/SIGHUP stop a command as Ctrl-C does (signals.py); the handlers stay set while
        # the error is reported, so a second signal does not cut that short.
        _configure_logging(ctx.params.get("verbose", False))
        with stop_on_signals():
            try:
                if _uses_store(ctx):  # a server that is down, or a store that cannot be opened: one line, at once
                    from promptomatix.servercheck import check_server

                    check_server(os.environ.get("MLFLOW_TRACKING_URI", ""))  # before MLflow's slow import
                    from promptomatix.tracking import check_store

                    check_store()
                return super().invoke(ctx)
            except PromptomatixError as exc:
                click.echo(f"Error: {exc}", err=True)
                _record_on_mlflow_run(str(exc))
                sys.exit(exc.exit_code)
            except click.UsageError as exc:  # click would print the usage block first: one line here too
                where = exc.ctx.command_path if exc.ctx else ctx.command_path
                click.echo(f"Error: {exc.format_message()} (see '{where} --help')", err=True)
                sys.exit(exc.exit_code)
            except Terminated as exc:
                click.echo(f"Error: {exc}", err=True)
                _record_on_mlflow_run(str(exc), status="KILLED")
                exit_now(exc.exit_code)


# Commands that never open the tracking store.
NO_STORE_COMMANDS = frozenset({"plugins"})


def _uses_store(ctx: click.Context) -> bool:
    """Whether the command about to run opens the tracking store (not for help, nor for a
    command that does not)."""
    args = [*ctx._protected_args, *ctx.args]
    if not args or any(arg in ctx.help_option_names or arg == "--dry-run" for arg in args):
        return False  # a dry run makes no call and writes nothing: it must not create ./mlflow.db
    return args[0] not in NO_STORE_COMMANDS


def _record_on_mlflow_run(reason: str, status: str | None = None) -> None:
    """Under `mlflow run`, the run exists before our code starts: say on it why it failed, and
    end it with `status` if nothing ended it yet (`mlflow run` itself may be gone: a SIGTERM
    sent to it alone kills it at once)."""
    run_id = os.environ.get("MLFLOW_RUN_ID")
    if run_id:
        from mlflow import MlflowClient

        client = MlflowClient()
        client.set_tag(run_id, "promptomatix.error", reason[:5000])
        if status and client.get_run(run_id).info.status == "RUNNING":
            client.set_terminated(run_id, status)


@click.group(cls=_Group)
@click.option("-v", "--verbose", is_flag=True, help="Show debug logging.")
def cli(verbose: bool) -> None:
    """Turn a plain-language task into an optimized, versioned prompt tracked in MLflow.

    The tracking store is MLflow's: MLFLOW_TRACKING_URI, or ./mlflow.db when unset.
    """
    # Logging is set up in _Group.invoke, before the store is checked (a new store logs at INFO).


def _configure_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(message)s", stream=sys.stderr)
    # MLflow sets its own loggers' levels when imported (later): tell it through its variable.
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "DEBUG" if verbose else "WARNING")
    # MLflow draws a "Downloading artifacts" bar for every artifact read (the config and data of
    # a resumed run, a checkpoint): noise around our own output, even under --quiet.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    for noisy in ("LiteLLM", "litellm", "httpx", "mlflow", "alembic", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if verbose else logging.WARNING)


def _fields(value: str | None):
    return tuple(v.strip() for v in value.split(",") if v.strip()) if value else None


def _weights(values: tuple[str, ...]) -> dict[str, float]:
    weights = {}
    for item in values:
        name, sep, weight = item.rpartition("=")
        try:
            weights[name if sep else item] = float(weight) if sep else 1.0
        except ValueError:
            raise click.BadParameter(f"{item!r} is not NAME=WEIGHT", param_hint="--metric") from None
    return weights


def _mapping(values: tuple[str, ...]) -> dict[str, str]:
    pairs = {}
    for item in values:
        column, sep, name = item.partition("=")
        if not sep or not column or not name:
            raise click.BadParameter(f"{item!r} is not COLUMN=FIELD", param_hint="--field-map")
        pairs[column] = name
    return pairs


class _OptimizeCommand(click.Command):
    """`optimize`, with a flag for every option a plugin declares (promptomatix/options.py),
    added when the command is used (so that importing the CLI loads no plugin)."""

    def get_params(self, ctx):
        return with_plugin_options(super().get_params(ctx))


def with_plugin_options(params: list) -> list:
    """`params` and a click option for each declared plugin option they lack."""
    from promptomatix.options import OPTIONS

    taken = {p.name for p in params}
    return params + [_plugin_param(OPTIONS.get(name)) for name in OPTIONS.names() if name not in taken]


def _plugin_param(option) -> click.Option:
    flag = "--" + option.name.replace("_", "-")
    kind = click.Choice([str(c) for c in option.choices]) if option.choices and option.type is str else option.type
    help_ = f"{option.help} [plugin option; default: {option.default}]".strip()
    if option.type is bool:
        return click.Option([f"{flag}/--no-{flag[2:]}", ], default=None, help=help_)
    return click.Option([flag], type=kind, default=None, help=help_)


@cli.command(cls=_OptimizeCommand)
@click.option("--raw-input", help="The task in plain language (markers such as [TASK] allowed).")
@click.option("--config", "config_file", type=click.Path(dir_okay=False),
              help="YAML file of options (keys as these flags, with '_'); flags given here override it.")
@click.option("--config-from", metavar="RUN_ID", help="Start from the options of an earlier optimization run.")
@click.option("--from", "from_", metavar="NAME@VERSION",
              help="Improve a registered version: start from its prompt, task and data, and address its open "
                   "feedback (options default to its run's).")
@click.option("--resume", metavar="RUN_ID", help="Go on with a killed optimization from its last completed step.")
@click.option("--name", help="Registry name (default: from the task's first words).")
@click.option("--backend", default="meta_prompt", show_default=True, help="Optimization backend.")
@click.option("--meta-prompt", default="rewrite", show_default=True,
              help="Rewrite template of the meta-prompt backend: a registered name, a .txt file or "
                   "package.module:function returning the text.")
@click.option("--intake-prompt", default="intake", show_default=True,
              help="Template that reads the task (as --meta-prompt: name, .txt file or module:function).")
@click.option("--synthetic-prompt", default="synthetic", show_default=True,
              help="Template that writes synthetic examples as JSON (as --meta-prompt).")
@click.option("--inputs-prompt", default="inputs", show_default=True,
              help="Template that writes the inputs of a classification's synthetic examples (as --meta-prompt).")
@click.option("--optimizer", default="MIPROv2", show_default=True,
              help="DSPy optimizer for --backend dspy (MIPROv2, GEPA, BootstrapFewShot, ...).")
@click.option("--dspy-module", default="Predict", show_default=True,
              help="DSPy module for --backend dspy: Predict, ChainOfThought, ProgramOfThought, ReAct or package.module:Class.")
@click.option("--task-type", help="Override the task type found by intake (e.g. classification, qa).")
@click.option("--input-fields", help="Comma-separated input field names (override intake).")
@click.option("--output-fields", help="Comma-separated output field names (override intake).")
@click.option("--model", help="Task model, any LiteLLM name [default: embedded/gemma-3-270m].")
@click.option("--temperature", type=float, help="Task model temperature [default: 0].")
@click.option("--max-tokens", type=int, help="Task model max tokens per answer [default: 256].")
@click.option("--api-base", help="Task model API base URL (keys come from the environment).")
@click.option("--optimizer-model", help="Model that writes data and rewrites prompts [default: the task model].")
@click.option("--optimizer-temperature", type=float, help="[default: 0.7]")
@click.option("--optimizer-max-tokens", type=int,
              help="Cap on each optimizer-model answer; synthetic batches shrink to fit [default: 1024]")
@click.option("--optimizer-api-base", help="Optimizer model API base URL.")
@click.option("--search", type=click.Choice(list(SEARCH_PRESETS)), default="quick", show_default=True,
              help="Preset budgets: " + "; ".join(
                  f"{name} at most {p.max_calls} model calls, {p.synthetic_data_size} synthetic examples, "
                  f"{p.iterations} iterations of {p.candidates} candidates" for name, p in SEARCH_PRESETS.items()) + ".")
@click.option("--max-calls", type=int, help="Budget: model calls in all, task and optimizer (overrides --search).")
@click.option("--max-cost", type=float, help="Budget: US dollars of model calls (as LiteLLM prices them).")
@click.option("--max-seconds", type=float, help="Budget: seconds of optimization.")
@click.option("--dry-run", is_flag=True, help="Print the planned model calls and the budget, make none, and exit.")
@click.option("--synthetic-data-size", type=int, help="Number of synthetic examples (overrides --search).")
@click.option("--train-ratio", type=float, default=0.5, show_default=True, help="Share of examples used to train.")
@click.option("--batch-size", type=int, default=5, show_default=True, help="Synthetic examples per model call.")
@click.option("--train-data", help="Your data: .csv, .tsv, .jsonl, .json, a saved `datasets` folder or hf:NAME[:SPLIT].")
@click.option("--valid-data", help="Validation data (default: split from --train-data).")
@click.option("--field-map", multiple=True, metavar="COLUMN=FIELD", help="Rename a data column to a field (repeatable).")
@click.option("--iterations", type=int, help="Optimization rounds (overrides --search).")
@click.option("--candidates", type=int, help="New prompts per round (overrides --search).")
@click.option("--num-demos", type=int, default=8, show_default=True, help="Few-shot demos a candidate may carry.")
@click.option("--lambda-penalty", type=float, default=0.0001, show_default=True,
              help="Length penalty: objective = score x exp(-lambda x prompt words).")
@click.option("--num-threads", type=int, default=4, show_default=True, help="Parallel scoring calls.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--experiment", help="MLflow experiment name (ignored inside `mlflow run`).")
@click.option("--register/--no-register", default=True, show_default=True, help="Register the result.")
@click.option("--cache/--no-cache", default=True, show_default=True,
              help="Answer repeated model requests from the shared cache (PROMPTOMATIX_CACHE: folder or 'off').")
@click.option("--traces/--no-traces", default=True, show_default=True,
              help="Record every LLM call as an MLflow trace of the run (the run's Traces tab).")
@click.option("--metric", "metric_weights", multiple=True, metavar="NAME[:KEY]=WEIGHT",
              help="Score with a weighted mix of metrics instead of the task type's (repeatable), "
                   "e.g. --metric classification=0.7 --metric brevity=0.3.")
@click.option("--eval-metric", "eval_metrics", multiple=True, metavar="NAME[:KEY]",
              help="Final-evaluation metric, reported on the run as final.NAME and used by `promptomatix "
                   "evaluate` (repeatable; default: the task type's).")
@click.option("--hook", "hooks", multiple=True, metavar="NAME", help="Run a registered hook (repeatable).")
@click.option("--data-step", "data_steps", multiple=True, metavar="NAME",
              help="Preprocess/validate every example with a registered step, in order (repeatable): "
                   "strip, known_label, no_duplicates or a plugin's.")
@click.option("--quiet", is_flag=True, help="Print only the final summary and errors.")
def optimize(config_file, config_from, from_, resume, quiet, dry_run, **flags) -> None:
    """Optimize a prompt for a task and register it (one MLflow run)."""
    with quiet_output(quiet):
        _optimize(config_file, config_from, from_, resume, quiet, dry_run, **flags)


def _optimize(config_file, config_from, from_, resume, quiet, dry_run, **flags) -> None:
    from promptomatix.api import optimize as run_optimization
    from promptomatix.api import options_from_run, plan
    from promptomatix.config import config_from_options, load_options
    from promptomatix.errors import ConfigError

    flags["field_map"] = _mapping(flags["field_map"])
    flags["metric_weights"] = _weights(flags["metric_weights"])
    flags["input_fields"], flags["output_fields"] = _fields(flags["input_fields"]), _fields(flags["output_fields"])
    source = click.get_current_context().get_parameter_source
    given = {k: v for k, v in flags.items() if source(k) is not click.core.ParameterSource.DEFAULT}
    defaults = {k: v for k, v in flags.items() if k not in given}
    if resume:
        if given or config_file or config_from or from_:
            raise ConfigError("--resume goes on with the options of the run it resumes: give no other options")
        click.echo(summary(run_optimization(resume=resume, show_progress=not quiet)))
        return
    if config_from and from_:
        raise ConfigError("--from takes its options from the version's run: drop --config-from")
    chosen = (load_options(config_file) if config_file else {}) | given
    if dry_run:
        if from_ or resume:
            raise ConfigError("--dry-run plans a new optimization: drop --from and --resume")
        saved = options_from_run(config_from) if config_from else {}
        click.echo(plan(config_from_options(**(defaults | saved | chosen))))
        return
    if from_:  # the version's run's options, then these (the flags' defaults are the config's)
        result = run_optimization(from_=from_, show_progress=not quiet, **chosen)
    else:
        saved = options_from_run(config_from) if config_from else {}
        # Precedence: the flags' defaults < an earlier run's options < the config file < flags given.
        result = run_optimization(config_from_options(**(defaults | saved | chosen)), show_progress=not quiet)
    click.echo(summary(result))


@cli.command()
def plugins() -> None:
    """List what each extension point offers, plugins included, and plugins that failed."""
    from promptomatix.backends import BACKENDS
    from promptomatix.backends.dspy.optimizers import OPTIMIZERS as DSPY_OPTIMIZERS
    from promptomatix.backends.dspy.program import MODULES as DSPY_MODULES
    from promptomatix.callbacks import HOOKS
    from promptomatix.data.sources import DATA_SOURCES
    from promptomatix.data.steps import DATA_STEPS
    from promptomatix.metaprompts import META_PROMPTS
    from promptomatix.models.providers import PROVIDERS
    from promptomatix.options import OPTIONS
    from promptomatix.scoring import METRICS
    from promptomatix.tasks import TASK_TYPES

    for registry in (BACKENDS, DSPY_OPTIMIZERS, DSPY_MODULES, TASK_TYPES, METRICS, META_PROMPTS, DATA_SOURCES,
                     DATA_STEPS, PROVIDERS, HOOKS, COMMANDS, OPTIONS):
        click.echo(f"{registry.kind} (entry points: {registry.group}): {', '.join(registry.names()) or '(none)'}")
        for name, error in sorted(registry.errors.items()):
            click.echo(f"  failed plugin {name!r}: {error}")


add_guide_aliases(optimize)  # the original Promptomatix's flag spellings (--raw_input, ...)
add_lifecycle_commands(cli)
add_feedback_commands(cli)
add_batch_commands(cli)


def main() -> None:
    cli(prog_name="promptomatix")


if __name__ == "__main__":
    main()
