"""MLproject entry point `pipeline`: the prompt lifecycle as a multistep workflow, the way
MLflow's examples/multistep_workflow does it. Inside the run `mlflow run` created (the parent),
each step is its own child run (tag `mlflow.parentRunId`), started with
`mlflow.projects.run(<this project>, entry_point=..., env_manager="local")`:

    data      split --train-data into train / valid / test artifacts
    optimize  `main` on runs:/<data>/data/train.jsonl and valid.jsonl; registers a version
    evaluate  scores that version on runs:/<data>/data/test.jsonl
    promote   moves --alias to that version if it scores at least as well as the holder

A step whose entry point, parameters and source version (git commit) match an earlier FINISHED
run of this experiment is not run again: that run is reused (`already_ran`). The parent records,
per step, `promptomatix.pipeline.<step>.run_id` and `.reused` (true/false), and the version's
model URI and test score. A failed step fails the pipeline (exit 1) with one line naming it.

    python pipelines/run_pipeline.py --raw-input="Classify ..." --train-data=/abs/rows.jsonl --alias=champion ...
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import mlflow
from step_utils import fail, given
from mlflow import MlflowClient
from mlflow.exceptions import ExecutionException
from mlflow.utils import mlflow_tags

from promptomatix.errors import PromptomatixError
from promptomatix.run.signals import exit_now, is_stop_reason, stop_on_signals, stop_with_parent, Terminated
from promptomatix.tracking.failure import ERROR_TAG, record_failure

PROJECT = str(Path(__file__).resolve().parents[1])
DATA_OPTIONS = ("train_data", "test_ratio", "train_ratio", "seed")
PIPELINE_OPTIONS = ("alias", "test_ratio", "train_ratio")  # the pipeline's own: not options of `optimize`
# On each step's run: the parameters the pipeline gave it, as JSON (`already_ran` compares them).
STEP_PARAMETERS = "promptomatix.pipeline.parameters"


class StepFailed(PromptomatixError):
    """A pipeline step's run did not finish."""


def already_ran(entry_point: str, parameters: dict[str, str], git_commit: str | None, experiment_id: str):
    """The latest FINISHED run of `entry_point` in the experiment that the pipeline gave exactly
    these parameters (its `STEP_PARAMETERS` tag), at this source version; None when there is none."""
    runs = MlflowClient().search_runs(
        [experiment_id], f"tags.`{mlflow_tags.MLFLOW_PROJECT_ENTRY_POINT}` = '{entry_point}' "
                         f"and attributes.status = 'FINISHED'", order_by=["attributes.start_time DESC"])
    wanted = step_parameters(parameters)
    for run in runs:
        if run.data.tags.get(mlflow_tags.MLFLOW_GIT_COMMIT) == git_commit and run.data.tags.get(STEP_PARAMETERS) == wanted:
            return run
    return None


def step_parameters(parameters: dict[str, str]) -> str:
    return json.dumps(parameters, sort_keys=True, ensure_ascii=False)


def step(entry_point: str, parameters: dict[str, str], parent) -> tuple[object, bool]:
    """Run `entry_point` as a child of `parent`, or reuse a finished identical run: (run, reused)."""
    experiment_id = parent.info.experiment_id
    git_commit = parent.data.tags.get(mlflow_tags.MLFLOW_GIT_COMMIT)
    found = already_ran(entry_point, parameters, git_commit, experiment_id)
    if found is not None:
        print(f"[pipeline] {entry_point}: reusing finished run {found.info.run_id}", flush=True)
        return found, True
    print(f"[pipeline] {entry_point}: running", flush=True)
    try:
        submitted = mlflow.projects.run(PROJECT, entry_point=entry_point, parameters=parameters,
                                        env_manager="local", experiment_id=experiment_id, run_name=entry_point)
    except ExecutionException as exc:
        raise StepFailed(f"step {entry_point} failed: {str(exc).splitlines()[0]}") from None
    except Terminated:
        restore_killed(parent.info.run_id, experiment_id)
        raise
    MlflowClient().set_tag(submitted.run_id, STEP_PARAMETERS, step_parameters(parameters))
    return MlflowClient().get_run(submitted.run_id), False


def restore_killed(parent_run_id: str, experiment_id: str) -> None:
    """The step a stop signal cancelled ends its own run KILLED; MLflow 3.17.2 then marks it
    FAILED anyway (`_maybe_set_run_terminated` asks `RunStatus.is_terminated` about the status
    as text, which it never recognizes). Put KILLED back on the steps that say why they stopped."""
    client = MlflowClient()
    for run in client.search_runs([experiment_id], f"tags.`{mlflow_tags.MLFLOW_PARENT_RUN_ID}` = '{parent_run_id}' "
                                                   f"and attributes.status = 'FAILED'"):
        if is_stop_reason(run.data.tags.get(ERROR_TAG, "")):
            client.set_terminated(run.info.run_id, "KILLED")


def record(name: str, run, reused: bool) -> None:
    mlflow.set_tags({f"promptomatix.pipeline.{name}.run_id": run.info.run_id,
                     f"promptomatix.pipeline.{name}.reused": str(reused).lower()})


def main(argv: list[str]) -> None:
    options = {key.replace("-", "_"): value for key, value in
               (arg[2:].partition("=")[::2] for arg in argv if arg.startswith("--"))}
    alias = options.pop("alias", "") or "champion"
    with mlflow.start_run() as parent:  # the run `mlflow run` created
        try:
            model_uri, score, promote_run = run_steps(MlflowClient().get_run(parent.info.run_id), options, alias)
        except PromptomatixError as exc:
            record_failure(str(exc))
            raise
        except Terminated as exc:
            # MLflow has cancelled the step under way (its child run ends KILLED on the SIGTERM
            # MLflow sends it); the pipeline's own run ends KILLED too, not FAILED as the
            # `with` block would end it.
            exc.detail = f"pipeline run {parent.info.run_id} ended KILLED"
            record_failure(str(exc))
            mlflow.end_run("KILLED")
            raise
    print(f"[pipeline] {model_uri}: test score {score:.4f}, alias {alias} set by run {promote_run.info.run_id}",
          flush=True)


def run_steps(parent, options: dict[str, str], alias: str):
    """The four steps under `parent`: (model URI, test score, promote run). Each step gets the
    options it takes that were given (`mlflow run` logs each as a param of the step's run: an
    option not given is not passed, so that no param reads `''`)."""
    options = {k: v for k, v in options.items() if v != ""}
    data_run, reused = step("data", {k: options[k] for k in DATA_OPTIONS if k in options}, parent)
    record("data", data_run, reused)
    part = lambda name: f"runs:/{data_run.info.run_id}/data/{name}.jsonl"  # noqa: E731
    optimizing = {k: v for k, v in options.items() if k not in PIPELINE_OPTIONS and k != "train_data"}
    optimize_run, reused = step("optimize", {**optimizing, "train_data": part("train"), "valid_data": part("valid")},
                                parent)
    record("optimize", optimize_run, reused)
    model_uri = optimize_run.data.tags.get("promptomatix.model_uri", "")
    name, _, version = model_uri[len("models:/"):].rpartition("/")
    if not name or not version.isdigit():
        raise StepFailed(f"step optimize registered no version (run {optimize_run.info.run_id})")
    mlflow.set_tag("promptomatix.model_uri", model_uri)
    evaluate_run, reused = step("evaluate", {"ref": f"{name}@{version}", "data": part("test")}, parent)
    record("evaluate", evaluate_run, reused)
    mlflow.log_metric("test_score", evaluate_run.data.metrics["test_score"])
    promote_run, reused = step("promote", {"name": name, "version": version, "alias": alias}, parent)
    record("promote", promote_run, reused)
    return model_uri, evaluate_run.data.metrics["test_score"], promote_run


if __name__ == "__main__":
    stop_with_parent()
    try:
        with stop_on_signals():
            main(given(sys.argv[1:]))
    except PromptomatixError as exc:
        fail(exc)
    except Terminated as exc:
        print(f"Error: {exc}", file=sys.stderr, flush=True)
        exit_now(exc.exit_code)
