"""What the pipeline step scripts (`run_<entry point>.py`) share: MLproject's "empty means not given" convention, and
artifact URIs (`runs:/<id>/data/train.jsonl`) turned into local files.

MLproject cannot leave an option out, so `--flag=` (an empty value) means "not given".
The scripts are named `run_*.py`: `python pipelines/x.py` puts pipelines/ first on sys.path, so
a script named like a package (`evaluate.py`, `data.py`) would shadow it.
"""

from __future__ import annotations

import shlex

URI_PREFIXES = ("runs:/", "mlflow-artifacts:/", "file://")


def given(argv: list[str]) -> list[str]:
    """`argv` without the `--flag=` items whose value is empty (and each unquoted, see below)."""
    return [arg for arg in map(unquote, argv) if not (arg.startswith("--") and arg.endswith("="))]


def unquote(arg: str) -> str:
    """`arg` without the shell quoting MLflow's Kubernetes backend leaves on it. That backend
    splits the entry point's command into words, shell-quotes each one again and hands the list
    to Kubernetes, which runs it without a shell: `--raw-input=a b` arrives as
    `'--raw-input=a b'`, quotes included (mlflow/projects/kubernetes.py, `_get_run_command`).
    Our options all start with `--`, so an argument that is one quoted shell word is that."""
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
    from promptomatix.signals import stop_with_parent

    stop_with_parent()
    cli(args, prog_name="promptomatix")


def fail(exc: Exception) -> None:
    """One line on stderr, the reason on the run `mlflow run` created, and the error's exit status."""
    import os
    import sys

    print(f"Error: {exc}", file=sys.stderr, flush=True)
    if os.environ.get("MLFLOW_RUN_ID"):
        from promptomatix.failures import record_failure

        record_failure(str(exc), os.environ["MLFLOW_RUN_ID"])
    raise SystemExit(getattr(exc, "exit_code", 1))
