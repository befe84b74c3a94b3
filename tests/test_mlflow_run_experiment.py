"""Where the README's main command files its run: the real `mlflow run` of the `main` entry point,
with the scripted provider of test_pipeline (the entry point is a subprocess), on user data so
that it is quick. `mlflow run` chooses the experiment before our entry point starts: `make run`
passes the registered name, and a run left in `Default` says in one line how to name it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient
from test_pipeline import MODEL, PROJECT, RAW_INPUT, REVIEWS, copy_project, install_plugin

pytestmark = [pytest.mark.e2e]
NAME = "classify-the-sentiment-of-a-movie"  # the registered name the raw input gets


def experiment_name_as_make_computes_it() -> str:
    command = [sys.executable, str(PROJECT / "pipelines" / "experiment_name.py"), RAW_INPUT]
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout.strip()


def mlflow_run_main(workdir: Path, uri: str, *options: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "MLFLOW_REGISTRY_URI": uri,
           "PYTHONPATH": os.pathsep.join([str(workdir / "plugin"), str(PROJECT)]),
           "LITELLM_LOCAL_MODEL_COST_MAP": "True",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    for name in ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_EXPERIMENT_ID"):
        env.pop(name, None)
    params = dict(raw_input=RAW_INPUT, train_data=str(workdir / "reviews.jsonl"), task_type="classification",
                  input_fields="review", output_fields="sentiment", iterations="1", candidates="1", model=MODEL,
                  max_calls="40")
    command = [str(Path(sys.executable).parent / "mlflow"), "run", str(workdir / "project"), "--env-manager",
               "local", *options, *(x for k, v in params.items() for x in ("-P", f"{k}={v}"))]
    done = subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


@pytest.fixture
def project(tmp_path):
    install_plugin(tmp_path / "plugin")
    copy_project(tmp_path / "project")
    (tmp_path / "reviews.jsonl").write_text("".join(json.dumps({"review": r, "sentiment": s}) + "\n"
                                                    for r, s in REVIEWS))
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    yield tmp_path, uri
    mlflow.set_tracking_uri(None)


def test_the_makefile_names_the_experiment_after_the_registered_name():
    make = subprocess.run(["make", "-n", "-C", str(PROJECT), "run", f"BIN={Path(sys.executable).parent}"],
                          capture_output=True, text=True, check=True).stdout
    assert f'mlflow run . --env-manager local --experiment-name "{NAME}"' in make
    assert experiment_name_as_make_computes_it() == NAME


def test_mlflow_run_as_make_runs_it_files_the_run_under_its_name_and_a_bare_one_says_how(project):
    workdir, uri = project
    named = mlflow_run_main(workdir, uri, "--experiment-name", experiment_name_as_make_computes_it())
    bare = mlflow_run_main(workdir, uri)
    runs = {run.info.run_id: run for run in mlflow.search_runs(output_format="list", search_all_experiments=True)}
    assert len(runs) == 2
    experiments = {mlflow.get_experiment(run.info.experiment_id).name for run in runs.values()}
    assert experiments == {NAME, "Default"}
    assert "hint:" not in named.stderr
    hints = [line for line in bare.stderr.splitlines() if line.startswith("hint:")]
    assert hints == [f"hint: mlflow run filed this run in the experiment 'Default'; to file it under its name, "
                     f"pass --experiment-name {NAME} to mlflow run (make run does)"]
    named_run = next(run for run in runs.values() if mlflow.get_experiment(run.info.experiment_id).name == NAME)
    assert named_run.info.status == "FINISHED" and MlflowClient().get_registered_model(NAME)
