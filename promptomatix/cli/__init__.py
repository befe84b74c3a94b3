"""The `promptomatix` command: thin click commands over the Python API.

This module is the group and `optimize`; the package also holds `options` (the click options
made from the config's options), `guide` (the original guide's flags), `lifecycle`, `feedback`
and `batch` (their command groups), and `__main__` (`python -m promptomatix.cli`)."""

from __future__ import annotations

import logging
import os
import sys

import click

from promptomatix.cli.batch import add_to as add_batch_commands
from promptomatix.cli.feedback import add_to as add_feedback_commands
from promptomatix.cli.guide import add_guide_aliases, guide_command
from promptomatix.cli.lifecycle import add_to as add_lifecycle_commands
from promptomatix.cli.options import config_params, with_plugin_options
from promptomatix.errors import PluginError, PromptomatixError
from promptomatix.plugins import Registry
from promptomatix.run.progress import quiet as quiet_output
from promptomatix.run.signals import exit_now, stop_on_signals, Terminated
from promptomatix.run.summary import summary  # noqa: F401 (also the run's description)


# Commands contributed by plugins: click commands in the entry-point group
# `promptomatix.commands` (or `register_command`) appear under `promptomatix`.
COMMANDS: Registry[click.Command] = Registry("commands")


def register_command(command: click.Command, *, replace: bool = False) -> click.Command:
    if not command.name:  # click allows a nameless command; a subcommand is found by its name
        raise PluginError(f"a command to add to promptomatix needs a name: {command!r}")
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
                    from promptomatix.tracking.servercheck import check_server

                    check_server(os.environ.get("MLFLOW_TRACKING_URI", ""))  # before MLflow's slow import
                    from promptomatix.tracking.mlflow_tracker import check_store
                    from promptomatix.tracking.storeretry import install as retry_store_calls

                    retry_store_calls()  # calls to a tracking server survive a flaky network (storeretry.py)
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
            except Exception as exc:  # a tracking server still failing after the retries: one line, exit 1
                from promptomatix.tracking.storeretry import error_line

                if (line := error_line(exc, ctx.invoked_subcommand)) is None:
                    raise
                click.echo(f"Error: {line}", err=True)
                sys.exit(1)


# Commands that never open the tracking store.
NO_STORE_COMMANDS = frozenset({"plugins"})


def _uses_store(ctx: click.Context) -> bool:
    """Whether the command about to run opens the tracking store (not for help, nor for a
    command that does not)."""
    args = [*ctx._protected_args, *ctx.args]
    if not args or any(arg in ctx.help_option_names or arg == "--dry-run" for arg in args):
        return False  # a dry run writes nothing (intake's calls only): it must not create ./mlflow.db
    return args[0] not in NO_STORE_COMMANDS


def _record_on_mlflow_run(reason: str, status: str | None = None) -> None:
    """Under `mlflow run`, the run exists before our code starts: say on it why it failed, and
    end it with `status` if nothing ended it yet (`mlflow run` itself may be gone: a SIGTERM
    sent to it alone kills it at once)."""
    run_id = os.environ.get("MLFLOW_RUN_ID")
    if run_id:
        from mlflow import MlflowClient

        from promptomatix.tracking.failure import record_failure

        record_failure(reason, run_id)
        client = MlflowClient()
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
    # absl: rouge_score says "Using default tokenizer." at every ROUGE-L score.
    for noisy in ("LiteLLM", "litellm", "httpx", "mlflow", "alembic", "urllib3", "absl"):
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
    """`optimize`, with a flag for every option a plugin declares (promptomatix/config/plugin_options.py),
    added when the command is used (so that importing the CLI loads no plugin)."""

    def get_params(self, ctx):
        return with_plugin_options(super().get_params(ctx))


@cli.command(cls=_OptimizeCommand)
@click.option("--config", "config_file", type=click.Path(dir_okay=False),
              help="YAML file of options (keys as these flags, with '_'); flags given here override it.")
@click.option("--config-from", metavar="RUN_ID", help="Start from the options of an earlier optimization run.")
@click.option("--from", "from_", metavar="NAME@VERSION",
              help="Improve a registered version: start from its prompt, task and data, and address its open "
                   "feedback (options default to its run's).")
@click.option("--resume", metavar="RUN_ID", help="Go on with a killed optimization from its last completed step.")
@click.option("--dry-run", is_flag=True, help="Read the task (intake's few model calls), print how it was read and "
                                             "the planned calls and budget, and exit: no run, nothing written.")
@click.option("--quiet", is_flag=True, help="Print only the final summary and errors.")
def optimize(config_file, config_from, from_, resume, quiet, dry_run, **flags) -> None:
    """Optimize a prompt for a task and register it (one MLflow run)."""
    with quiet_output(quiet):
        _optimize(config_file, config_from, from_, resume, quiet, dry_run, **flags)


def _add_config_options(command: click.Command) -> None:
    """The options themselves, one per config field (`options`), among the command's own:
    the task first, then where its options come from (--config, --config-from, --from,
    --resume), the options, and the switches (--dry-run, --quiet) last, as --help lists them."""
    own = {param.name: param for param in command.params}
    task, *options = config_params()
    command.params[:] = [task, *(own[k] for k in ("config_file", "config_from", "from_", "resume")), *options,
                         own["dry_run"], own["quiet"]]


def promtomatic() -> click.Command:
    """`optimize` under the original guide's name, taking the guide's flags as well as ours."""
    return guide_command(optimize)


def _optimize(config_file, config_from, from_, resume, quiet, dry_run, **flags) -> None:
    from promptomatix.api import optimize as run_optimization, plan, understand
    from promptomatix.config.flat import load_options
    from promptomatix.errors import ConfigError

    flags["field_map"] = _mapping(flags["field_map"])
    flags["metric_weights"] = _weights(flags["metric_weights"])
    for key in ("input_fields", "output_fields", "labels"):
        flags[key] = _fields(flags[key])
    source = click.get_current_context().get_parameter_source
    # Only the flags given: those left at their default are the config's defaults, which lose to
    # an earlier run's options (api.optimize merges them).
    given = {k: v for k, v in flags.items() if source(k) is not click.core.ParameterSource.DEFAULT}
    if resume:
        if given or config_file or config_from or from_:
            raise ConfigError("--resume goes on with the options of the run it resumes: give no other options")
        click.echo(summary(run_optimization(resume=resume, show_progress=not quiet)))
        return
    chosen = (load_options(config_file) if config_file else {}) | given  # the flags win over the file
    if dry_run:
        if from_ or resume:
            raise ConfigError("--dry-run plans a new optimization: drop --from and --resume")
        reading = understand(config_from=config_from, **chosen)
        click.echo("\n".join([*reading.lines(), *(f"check: {doubt}" for doubt in reading.doubts), ""]))
        click.echo(plan(config_from=config_from, **(chosen | {"task_type": reading.spec.task_type})))
        return
    click.echo(summary(run_optimization(from_=from_, config_from=config_from, show_progress=not quiet, **chosen)))


@cli.command()
def plugins() -> None:
    """List what each extension point offers, plugins included, and plugins that failed."""
    from promptomatix.backends import BACKENDS
    from promptomatix.backends.dspy.optimizers import OPTIMIZERS as DSPY_OPTIMIZERS
    from promptomatix.backends.dspy.program import MODULES as DSPY_MODULES
    from promptomatix.config.plugin_options import OPTIONS
    from promptomatix.data.sources import DATA_SOURCES
    from promptomatix.data.steps import DATA_STEPS
    from promptomatix.models.providers import PROVIDERS
    from promptomatix.run.callbacks import HOOKS
    from promptomatix.scoring import METRICS
    from promptomatix.task.types import TASK_TYPES
    from promptomatix.templates import META_PROMPTS

    for registry in (BACKENDS, DSPY_OPTIMIZERS, DSPY_MODULES, TASK_TYPES, METRICS, META_PROMPTS, DATA_SOURCES,
                     DATA_STEPS, PROVIDERS, HOOKS, COMMANDS, OPTIONS):
        click.echo(f"{registry.kind} (entry points: {registry.group}): {', '.join(registry.names()) or '(none)'}")
        for name, error in sorted(registry.errors.items()):
            click.echo(f"  failed plugin {name!r}: {error}")


_add_config_options(optimize)
add_guide_aliases(optimize)  # the original Promptomatix's flag spellings (--raw_input, ...)
add_lifecycle_commands(cli)
add_feedback_commands(cli)
add_batch_commands(cli)


def main() -> None:
    cli(prog_name="promptomatix")
