"""Where the README's main command files its run: the real `mlflow run` of the `main` entry point,
with the scripted provider of test_pipeline (the entry point is a subprocess), on user data so
that it is quick. `mlflow run` chooses the experiment before our entry point starts: `make run`
passes the registered name, and a run left in `Default` says in one line how to name it. The run's
params are the settings that ran, each once, whether given in a config file or one by one with
`-P` (issue 42)."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
import yaml
from mlflow import MlflowClient
from test_mlflow_records import param_problems
from test_pipeline import MODEL, PROJECT, RAW_INPUT, REVIEWS, copy_project, install_plugin

from promptomatix.tracking.mlflow_tracker import logged_setting

pytestmark = [pytest.mark.e2e]
NAME = "classify-the-sentiment-of-a-movie"  # the registered name the raw input gets


def experiment_name_as_make_computes_it() -> str:
    command = [sys.executable, str(PROJECT / "pipelines" / "experiment_name.py"), RAW_INPUT]
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout.strip()


def mlflow_run_main(workdir: Path, uri: str, *options: str, **params: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "MLFLOW_REGISTRY_URI": uri,
           "PYTHONPATH": os.pathsep.join([str(workdir / "plugin"), str(PROJECT)]),
           "LITELLM_LOCAL_MODEL_COST_MAP": "True",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    for name in ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_EXPERIMENT_ID"):
        env.pop(name, None)
    command = [str(Path(sys.executable).parent / "mlflow"), "run", str(workdir / "project"), "--env-manager",
               "local", *options, *(x for k, v in ({"raw_input": RAW_INPUT} | params).items() for x in ("-P", f"{k}={v}"))]
    done = subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


@pytest.fixture
def project(tmp_path):
    install_plugin(tmp_path / "plugin")
    copy_project(tmp_path / "project")
    (tmp_path / "reviews.jsonl").write_text("".join(json.dumps({"review": r, "sentiment": s}) + "\n"
                                                    for r, s in REVIEWS))
    # the task model (the scripted provider) and the user's data, in a config file
    (tmp_path / "options.yaml").write_text(yaml.safe_dump(dict(
        model=MODEL, train_data=str(tmp_path / "reviews.jsonl"), task_type="classification", input_fields="review",
        output_fields="sentiment", iterations=1, candidates=1, max_calls=40)))
    (tmp_path / "model.yaml").write_text(yaml.safe_dump({"model": MODEL}))
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
    # as `make run`: the raw input (the options in a config file, for a quick scripted run)
    named = mlflow_run_main(workdir, uri, "--experiment-name", experiment_name_as_make_computes_it(),
                            config=str(workdir / "options.yaml"))
    # options given one by one with -P (the model in the file): MLflow passes them on as `--name value`
    bare = mlflow_run_main(workdir, uri, config=str(workdir / "model.yaml"), train_data=str(workdir / "reviews.jsonl"),
                           task_type="classification", input_fields="review", output_fields="sentiment",
                           iterations="1", candidates="1", max_calls="40", cache="false")
    runs = {run.info.run_id: run for run in mlflow.search_runs(output_format="list", search_all_experiments=True)}
    assert len(runs) == 2
    experiments = {mlflow.get_experiment(run.info.experiment_id).name for run in runs.values()}
    assert experiments == {NAME, "Default"}
    assert "hint:" not in named.stderr
    hints = [line for line in bare.stderr.splitlines() if line.startswith("hint:")]
    assert hints == [f"hint: mlflow run filed this run in the experiment 'Default'; to file it under its name, "
                     f"pass --experiment-name {NAME} to mlflow run (make run does)"]
    named_run = next(run for run in runs.values() if mlflow.get_experiment(run.info.experiment_id).name == NAME)
    bare_run = next(run for run in runs.values() if run is not named_run)
    assert named_run.info.status == "FINISHED" and MlflowClient().get_registered_model(NAME)

    # issue 42: the params are the settings that ran, each once, none empty, none quoted but the
    # raw input, which `mlflow run` itself logs shell-quoted (README)
    for run in (named_run, bare_run):
        params = MlflowClient().get_run(run.info.run_id).data.params
        assert param_problems(params, quoted=("raw_input",)) == [], run.info.run_id
        assert params["raw_input"] == shlex.quote(RAW_INPUT) and params["model/model"] == MODEL
        assert logged_setting(params, "iterations") == "1" and logged_setting(params, "max_calls") == "40"
        assert logged_setting(params, "backend") == "meta_prompt" and logged_setting(params, "seed") == "0"
        assert not [k for k in params if k.endswith("_asked")]
    named_params = MlflowClient().get_run(named_run.info.run_id).data.params
    assert named_params["config"] == str(workdir / "options.yaml") and named_params["promptomatix.iterations"] == "1"
    # a -P option is MLflow's param, under its own name, and not logged again by promptomatix
    params = MlflowClient().get_run(bare_run.info.run_id).data.params
    assert (params["iterations"], params["max_calls"], params["train_data"]) == ("1", "40", str(workdir / "reviews.jsonl"))
    assert "promptomatix.iterations" not in params and "promptomatix.max_calls" not in params
    assert params["cache"] == "false" and "promptomatix.cache" not in params  # the switch reached the CLI as --no-cache
    assert logged_setting(params, "train_data") == str(workdir / "reviews.jsonl")
