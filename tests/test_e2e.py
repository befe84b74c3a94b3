"""The main job as a user runs it: the real `mlflow run` with the embedded model, at a tiny size."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from mlflow import MlflowClient
from test_mlflow_records import param_problems

from promptomatix.tracking.mlflow_tracker import logged_setting

PROJECT = Path(__file__).resolve().parents[1]
RAW_INPUT = "Classify the sentiment of a movie review as positive or negative"

pytestmark = [pytest.mark.e2e, pytest.mark.embedded]


@pytest.fixture(scope="module")
def mlflow_run(tmp_path_factory):
    pytest.importorskip("llama_cpp", reason="the embedded model needs the 'embedded' extra")
    workdir = tmp_path_factory.mktemp("e2e")
    uri = f"sqlite:///{workdir / 'mlflow.db'}"
    # Both URIs explicitly: mlflow.set_*_uri in earlier tests leave them in os.environ.
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "MLFLOW_REGISTRY_URI": uri,
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("MLFLOW_RUN_ID", None)
    command = [str(Path(sys.executable).parent / "mlflow"), "run", str(PROJECT), "--env-manager", "local",
               "-P", f"raw_input={RAW_INPUT}", "-P", "synthetic_data_size=6", "-P", "iterations=1",
               "-P", "candidates=2", "-P", "max_tokens=8"]
    done = subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    yield done
    mlflow.set_tracking_uri(None)
    mlflow.set_registry_uri(None)


def test_mlflow_run_finishes_with_a_summary(mlflow_run):
    out = mlflow_run.stdout
    (run,) = mlflow.search_runs(output_format="list", search_all_experiments=True)
    assert run.info.status == "FINISHED"
    assert "(initial) ->" in out and "(optimized)" in out
    assert f"run id:          {run.info.run_id}" in out
    assert "models:/classify-the-sentiment-of-a-movie/1" in out
    assert "prompts:/classify-the-sentiment-of-a-movie-prompt/1" in out
    assert "mlflow ui --backend-store-uri" in out
    assert "writing inputs" in mlflow_run.stderr and "labelling inputs" in mlflow_run.stderr  # progress shown


def test_the_run_holds_params_artifacts_and_per_step_metrics(mlflow_run):
    (run,) = mlflow.search_runs(output_format="list", search_all_experiments=True)
    client = MlflowClient()
    params = run.data.params
    assert params["raw_input"] == shlex.quote(RAW_INPUT)  # logged, shell-quoted, by `mlflow run`
    assert params["model/model"] == "embedded/gemma-3-270m"
    # given with -P: MLflow's params, not logged again (issue 42); none empty, none quoted but the
    # raw input; `-P max_tokens` is also the registered model's config, which MLflow logs as `model/*`
    assert logged_setting(params, "iterations") == "1" and logged_setting(params, "synthetic_data_size") == "6"
    assert param_problems(params, quoted=("raw_input",)) == ["max_tokens and model/max_tokens record one setting"]
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"raw_input.txt", "task_spec.json", "optimized_prompt.txt", "candidates.json", "data", "prompts"} <= artifacts
    spec = json.loads(mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/task_spec.json"))
    assert spec["task_type"] == "classification" and spec["labels"] == ["positive", "negative"]
    train = mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/data/train.jsonl").splitlines()
    valid = mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/data/valid.jsonl").splitlines()
    assert len(train) + len(valid) == 6
    assert {d.dataset.name for d in run.inputs.dataset_inputs} == {"train", "valid"}
    assert [m.step for m in client.get_metric_history(run.info.run_id, "best_score")] == [0, 1]
    assert run.data.metrics["optimized_score"] >= run.data.metrics["initial_score"]
    assert run.data.metrics["total_tokens"] > 0 and run.data.metrics["total_cost"] == 0.0


def test_both_registered_versions_serve_the_prompt(mlflow_run):
    (run,) = mlflow.search_runs(output_format="list", search_all_experiments=True)
    prompt = mlflow.genai.load_prompt("prompts:/classify-the-sentiment-of-a-movie-prompt/1")
    optimized = mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/optimized_prompt.txt")
    assert prompt.template == optimized
    version = MlflowClient().get_model_version("classify-the-sentiment-of-a-movie", "1")
    assert version.run_id == run.info.run_id
    model = mlflow.pyfunc.load_model("models:/classify-the-sentiment-of-a-movie/1")
    spec = json.loads(mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/task_spec.json"))
    (field,) = spec["input_fields"]
    out = model.predict(pd.DataFrame({field: ["A wonderful, moving film.", "Dull and far too long."]}))
    assert list(out.columns) == spec["output_fields"] and len(out) == 2
    assert set(out.iloc[:, 0]) <= set(spec["labels"]) and spec["labels"]  # labels, never free text
