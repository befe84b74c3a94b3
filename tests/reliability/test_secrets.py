"""Secrets: API keys in the environment, and a user and key written into the API base URL,
appear nowhere a run leaves behind: params, tags, metric names, artifacts, registered versions,
traces, the store's files on disk and the command's own output (debug logging on), whether the
run finished or failed on a provider error that echoes the key. `everything_recorded` and `leaks`
are the scan; test_auth.py runs it for the MLflow tracking passwords (MLFLOW_TRACKING_PASSWORD)
of a server with users."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient
from reliability_support import RAW_INPUT

HERE = Path(__file__).parent


@pytest.fixture
def keys(monkeypatch):
    """Fresh secret values: two API keys in the environment, a password and a key in a URL."""
    values = {name: f"sk-{name.lower()}-{secrets.token_hex(12)}"
              for name in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "URL_PASSWORD", "URL_KEY")}
    monkeypatch.setenv("OPENAI_API_KEY", values["OPENAI_API_KEY"])
    monkeypatch.setenv("ANTHROPIC_API_KEY", values["ANTHROPIC_API_KEY"])
    return values


def api_base(keys) -> str:
    # The scripted provider never connects: the URL only travels through our code and LiteLLM.
    return f"http://user:{keys['URL_PASSWORD']}@127.0.0.1:9/v1?api_key={keys['URL_KEY']}"


def run_cli(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess:
    import os

    return subprocess.run([sys.executable, str(HERE / "cli_with_fakes.py"), "-v", *args], cwd=cwd,
                          env=os.environ | env, capture_output=True, text=True, timeout=300)


def everything_recorded(tmp_path: Path) -> dict[str, str]:
    """Every place a secret could land, as text by where it is."""
    client = MlflowClient()
    found: dict[str, str] = {}
    runs = mlflow.search_runs(output_format="list", search_all_experiments=True)
    for run in runs:
        rid = run.info.run_id
        found[f"run {rid} params"] = json.dumps(run.data.params)
        found[f"run {rid} tags"] = json.dumps(run.data.tags)
        found[f"run {rid} metric names"] = json.dumps(sorted(run.data.metrics))
        folder = Path(mlflow.artifacts.download_artifacts(run_id=rid, dst_path=str(tmp_path / "downloaded" / rid)))
        for path in folder.rglob("*"):
            if path.is_file():
                found[f"run {rid} artifact {path.relative_to(folder)}"] = path.read_text(errors="replace")
    for model in client.search_registered_models():
        found[f"model {model.name}"] = json.dumps(model.tags)
        for version in client.search_model_versions(f"name='{model.name}'"):
            found[f"model {model.name} v{version.version}"] = json.dumps(version.tags) + str(version.source)
    for prompt in mlflow.genai.search_prompts():
        for number in range(1, 50):
            try:
                version = mlflow.genai.load_prompt(f"prompts:/{prompt.name}/{number}")
            except Exception:
                break
            found[f"prompt {prompt.name} v{number}"] = (version.template + json.dumps(version.tags)
                                                        + json.dumps(version.model_config or {}))
    experiments = [e.experiment_id for e in client.search_experiments()]
    for trace in mlflow.search_traces(locations=experiments, return_type="list"):
        found[f"trace {trace.info.trace_id}"] = trace.to_json()
    for path in tmp_path.rglob("*"):  # the sqlite store and the artifact folders, byte for byte
        if path.is_file() and "downloaded" not in path.parts:
            found[f"file {path.relative_to(tmp_path)}"] = path.read_bytes().decode("utf-8", errors="replace")
    return found


def leaks(places: dict[str, str], keys: dict[str, str]) -> list[str]:
    return [f"{name} in {where}" for where, text in places.items() for name, value in keys.items() if value in text]


def test_no_secret_in_a_finished_or_failed_run_or_in_the_output(tracking, keys, tmp_path):
    base = ["optimize", "--raw-input", RAW_INPUT, "--model", "reliable/fake", "--api-base", api_base(keys),
            "--synthetic-data-size", "6", "--iterations", "1", "--candidates", "2", "--quiet"]

    finished = run_cli(base + ["--name", "finished"], tmp_path)
    failed = run_cli(base + ["--name", "failed"], tmp_path, RELIABILITY_FAIL_REWRITES="1",
                     RELIABILITY_API_BASE=api_base(keys))

    assert finished.returncode == 0, finished.stderr
    assert failed.returncode == 1 and "authentication failed" in failed.stderr, failed.stderr
    assert "Incorrect API key provided: ***" in failed.stderr  # the reason, without the key
    runs = {r.data.tags.get("mlflow.runName"): r for r in
            mlflow.search_runs(output_format="list", search_all_experiments=True)}
    statuses = sorted(r.info.status for r in runs.values())
    assert statuses == ["FAILED", "FINISHED"]
    (failed_run,) = [r for r in runs.values() if r.info.status == "FAILED"]
    assert "Incorrect API key provided: ***" in failed_run.data.tags["promptomatix.error"]
    assert "127.0.0.1:9/v1" in json.dumps(next(r for r in runs.values() if r.info.status == "FINISHED").data.params)

    places = everything_recorded(tmp_path)
    places |= {"finished stdout": finished.stdout, "finished stderr": finished.stderr,
               "failed stdout": failed.stdout, "failed stderr": failed.stderr}
    assert any(where.startswith("file ") and where.endswith("mlflow.db") for where in places)
    assert any(" artifact " in where for where in places)
    assert leaks(places, keys) == []
