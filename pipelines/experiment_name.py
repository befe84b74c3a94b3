"""The experiment a `mlflow run` of the `main` entry point belongs in: the one named after the
prompt's registered name, where `promptomatix optimize` files a run it starts itself.

    python pipelines/experiment_name.py "Classify the sentiment of a movie review"   # prints it
    mlflow run . --env-manager local --experiment-name classify-the-sentiment-of-a -P raw_input="..."

Under `mlflow run` the entry point cannot choose: `mlflow run` creates the run before the entry
point starts, in the experiment named by `--experiment-name` (or MLFLOW_EXPERIMENT_NAME), else in
`Default`, and a run cannot move to another experiment. So the Makefile passes the name, and the
entry point, finding itself in `Default`, says in one line how to pass it (`default_hint`).
"""

from __future__ import annotations

import os
import shlex
import sys


def experiment_name(raw_input: str, name: str = "") -> str:
    """The registered name the optimization will use: `name` when given, else the task's."""
    from promptomatix.api import default_name

    return name or default_name(raw_input)


def default_hint(raw_input: str, name: str = "") -> str | None:
    """One line saying how to file the run under its name, when `mlflow run` filed it in
    `Default`; None elsewhere (outside `mlflow run`, or in an experiment the user chose)."""
    experiment_id = os.environ.get("MLFLOW_EXPERIMENT_ID")
    if not os.environ.get("MLFLOW_RUN_ID") or not experiment_id:
        return None
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    try:
        experiment = MlflowClient().get_experiment(experiment_id)
    except MlflowException:  # the store cannot be read: the optimization will say so itself
        return None
    if experiment.name != "Default":
        return None
    return (f"hint: mlflow run filed this run in the experiment 'Default'; to file it under its name, pass "
            f"--experiment-name {shlex.quote(experiment_name(raw_input, name))} to mlflow run (make run does)")


if __name__ == "__main__":
    print(experiment_name(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else ""))
