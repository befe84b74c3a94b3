"""What the pipeline step scripts (`run_<entry point>.py`) share: the command line `mlflow run`
gives them, and artifact URIs (`runs:/<id>/data/train.jsonl`) turned into local files.

An entry point's command passes the parameters MLproject declares as `--flag={value}`;
`mlflow run` appends every other `-P name=value` as the two words `--name value`, and logs each
parameter as a run param under its own name. MLproject declares few parameters (no empty
defaults: MLflow would log them as `''`), so most options arrive the second way; `given` turns
both into `--flag=value`, and an empty value (`--flag=`) means "not given".
The scripts are named `run_*.py`: `python pipelines/x.py` puts pipelines/ first on sys.path, so
a script named like a package (`evaluate.py`, `data.py`) would shadow it.
"""

from __future__ import annotations

import re
import shlex

URI_PREFIXES = ("runs:/", "mlflow-artifacts:/", "file://")
TRUE, FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off", "")
# `--name` as `mlflow run` writes an undeclared parameter's name (MLflow's own `-P` key, as given).
_EXTRA_NAME = re.compile(r"^--[A-Za-z0-9][A-Za-z0-9_.-]*$")


def given(argv: list[str]) -> list[str]:
    """`argv` as `--flag=value` items (`mlflow run`'s `--name value` pairs joined, `_` in a name
    made `-`), each unquoted (see `unquote`), without the items whose value is empty."""
    return [arg for arg in pairs(list(map(unquote, argv))) if not (arg.startswith("--") and arg.endswith("="))]


def pairs(argv: list[str]) -> list[str]:
    """`argv` with each `--name value` pair `mlflow run` appends for a `-P` parameter the entry
    point does not declare made one `--name=value` item (`-P max_calls=40` arrives as
    `--max_calls 40`: `--max-calls=40`). Declared parameters arrive as `--flag=value` already."""
    out, i = [], 0
    while i < len(argv):
        arg = argv[i]
        if _EXTRA_NAME.match(arg) and i + 1 < len(argv):
            out.append(f"--{arg[2:].replace('_', '-')}={argv[i + 1]}")
            i += 2
        else:
            out.append(arg)
            i += 1
    return out


def cli_flags(args: list[str], command_name: str) -> list[str]:
    """`--flag=value` items as the click command `promptomatix <command_name>` takes them: a
    switch's `--cache=false` is `--no-cache` (`--quiet=true` is `--quiet`, `--quiet=false`
    nothing), a repeatable option's `--hook=a,b` is `--hook=a --hook=b`; other items as given
    (click then refuses what it does not know, in one line)."""
    import click

    from promptomatix.cli import cli

    command = cli.commands[command_name]  # type: ignore[attr-defined]
    options: dict[str, click.Option] = {}
    for param in command.get_params(click.Context(command)):
        if isinstance(param, click.Option):
            for opt in [*param.opts, *param.secondary_opts]:
                options.setdefault(opt, param)
    out = []
    for arg in args:
        flag, sep, value = arg.partition("=")
        option = options.get(flag) if flag.startswith("--") else None
        if not sep or option is None:
            out.append(arg)
        elif option.is_flag and value.lower() in TRUE + FALSE:
            on = (value.lower() in TRUE) != (flag in option.secondary_opts)  # `--no-cache=true` is off
            out += option.opts[:1] if on else option.secondary_opts[:1]
        elif option.multiple:
            out += [f"{flag}={item.strip()}" for item in value.split(",") if item.strip()]
        else:
            out.append(arg)
    return out


def unquote(arg: str) -> str:
    """`arg` without the shell quoting MLflow's Kubernetes backend leaves on it. That backend
    splits the entry point's command into words, shell-quotes each one again and hands the list
    to Kubernetes, which runs it without a shell: `--raw-input=a b` arrives as
    `'--raw-input=a b'`, quotes included (mlflow/projects/kubernetes.py, `_get_run_command`).
    Our options all start with `--`, so an argument that is one quoted shell word is that (an
    option, or the value `mlflow run` passes after an undeclared parameter's `--name`)."""
    if arg.startswith("'"):
        try:
            words = shlex.split(arg)
        except ValueError:  # not shell quoting after all
            return arg
        if len(words) == 1:
            return words[0]
    return arg


def local(value: str) -> str:
    """A local path for an MLflow artifact URI (downloaded to a temp dir); other values as given."""
    if not value.startswith(URI_PREFIXES):
        return value
    import mlflow
    from mlflow.exceptions import MlflowException

    from promptomatix.errors import DataError

    try:
        return mlflow.artifacts.download_artifacts(artifact_uri=value)
    except (MlflowException, OSError) as exc:
        raise DataError(f"{value}: cannot download the artifact ({str(exc).splitlines()[0]})") from None


def localize(argv: list[str], *flags: str) -> list[str]:
    """`argv` with the values of `flags` (`--train-data=...`) made local by `local`."""
    out = []
    for arg in argv:
        flag, sep, value = arg.partition("=")
        out.append(f"{flag}={local(value)}" if sep and flag in flags and value else arg)
    return out


def run_cli(args: list[str]) -> None:
    """`promptomatix <args>`, with the CLI's one-line errors and exit statuses (SIGTERM and SIGHUP
    included: the run ends KILLED, exit 128 + the signal). Stopped like that also when the
    `mlflow run` that started it dies, since a SIGTERM sent to `mlflow run` alone kills it
    without passing the signal on."""
    from promptomatix.cli import cli
    from promptomatix.run.signals import stop_with_parent

    stop_with_parent()
    cli(args, prog_name="promptomatix")


def fail(exc: Exception) -> None:
    """One line on stderr, the reason on the run `mlflow run` created, and the error's exit status."""
    import os
    import sys

    print(f"Error: {exc}", file=sys.stderr, flush=True)
    if os.environ.get("MLFLOW_RUN_ID"):
        from promptomatix.tracking.failure import record_failure

        record_failure(str(exc), os.environ["MLFLOW_RUN_ID"])
    raise SystemExit(getattr(exc, "exit_code", 1))
