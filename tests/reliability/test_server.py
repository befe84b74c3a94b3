"""A shared tracking server: a real `mlflow server` (sqlite backend, loopback port), four
optimizations in four processes at once, all registered under one name. All runs finish,
versions 1..4 of the model and of its prompt exist with no gap or duplicate, each linked to its
own run and prompt version, and the promotion gate still decides by score."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient

from promptomatix.lifecycle.promotion import promote

HERE = Path(__file__).parent
STARTUP_LIMIT = 240  # s: the server answers /health after ~15 s on an idle 2-core machine, ~60 s on a busy one


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


@pytest.fixture
def server(tmp_path, monkeypatch):
    """A fresh `mlflow server` on a free loopback port, polled until /health answers; this
    process's MLflow client points at it. Stopped (its whole process group) afterwards."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = (tmp_path / "server.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
         "--artifacts-destination", str(tmp_path / "artifacts"), "--host", "127.0.0.1", "--port", str(port),
         "--workers", "2"],
        cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + STARTUP_LIMIT
        while not healthy(url):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"mlflow server did not come up: {(tmp_path / 'server.log').read_text()[-2000:]}")
            time.sleep(1)
        for key in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
            monkeypatch.setenv(key, url)
        monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
        mlflow.set_tracking_uri(url)
        mlflow.set_registry_uri(url)
        yield url
    finally:
        mlflow.set_tracking_uri(None)
        mlflow.set_registry_uri(None)
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()


def test_four_concurrent_optimizations_register_four_versions_under_one_name(server, tmp_path):
    kinds = ["strong", "weak", "strong", "weak"]
    workers = [subprocess.Popen([sys.executable, str(HERE / "optimize_worker.py"), "shared",
                                 *(["weak"] if kind == "weak" else [])],
                                cwd=tmp_path, env=os.environ | {"MLFLOW_TRACKING_URI": server},
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for kind in kinds]
    outputs = [worker.communicate(timeout=300) for worker in workers]
    for worker, (out, err) in zip(workers, outputs):
        assert worker.returncode == 0, err[-3000:]
    results = [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs]
    client = MlflowClient()

    # four runs, all FINISHED, one per process
    runs = mlflow.search_runs(output_format="list", search_all_experiments=True)
    assert sorted(r.info.run_id for r in runs) == sorted(r["run_id"] for r in results)
    assert {r.info.status for r in runs} == {"FINISHED"}

    # versions 1..4 of the model and of the prompt: no gap, no duplicate, each its own run's
    versions = client.search_model_versions("name='shared'")
    assert sorted(int(v.version) for v in versions) == [1, 2, 3, 4]
    assert sorted(r["model_version"] for r in results) == ["1", "2", "3", "4"]
    assert sorted(r["prompt_version"] for r in results) == ["1", "2", "3", "4"]
    by_run = {v.run_id: v for v in versions}
    assert sorted(by_run) == sorted(r["run_id"] for r in results)
    for result in results:
        version = by_run[result["run_id"]]
        assert version.version == result["model_version"]
        assert version.tags["prompt_uri"] == f"prompts:/shared-prompt/{result['prompt_version']}"
        prompt = mlflow.genai.load_prompt(version.tags["prompt_uri"])
        assert prompt.template == result["prompt"]
        assert prompt.tags["model_version"] == result["model_version"]
    with pytest.raises(Exception):
        mlflow.genai.load_prompt("prompts:/shared-prompt/5")

    # the gate: a strong version takes champion, a weak one is refused, the other strong one
    # (same score on the same validation set) may take it over
    strong = [r["model_version"] for r, kind in zip(results, kinds) if kind == "strong"]
    weak = [r["model_version"] for r, kind in zip(results, kinds) if kind == "weak"]
    assert {r["score"] for r, kind in zip(results, kinds)} == {1.0, 0.0}
    first = promote("shared", strong[0], "champion", show_progress=False)
    assert (first.decision, first.basis) == ("promoted", "first")
    refused = promote("shared", weak[0], "champion", show_progress=False)
    assert (refused.decision, refused.basis, refused.score, refused.previous_score) == \
        ("rejected", "validation", 0.0, 1.0)
    assert client.get_registered_model("shared").aliases == {"champion": strong[0]}
    second = promote("shared", strong[1], "champion", show_progress=False)
    assert second.decision == "promoted" and second.previous == strong[0]
    assert client.get_model_version_by_alias("shared", "champion").version == strong[1]
    held = mlflow.genai.load_prompt("prompts:/shared-prompt@champion")
    assert held.template == next(r["prompt"] for r in results if r["model_version"] == strong[1])


def test_a_prompt_created_meanwhile_by_another_process_still_gets_its_version(tracking, monkeypatch):
    """The race the server test can hit: MLflow checks that a prompt is new, another process
    creates it, and MLflow's insert fails with RESOURCE_ALREADY_EXISTS. The version is asked again."""
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import RESOURCE_ALREADY_EXISTS

    from promptomatix import registry
    from promptomatix.config import ModelSettings
    from promptomatix.prompts import Prompt

    real = mlflow.genai.register_prompt
    calls = []

    def racing(**kwargs):
        calls.append(kwargs["name"])
        if len(calls) == 1:  # the other process wins the first insert
            real(**(kwargs | {"template": "Other: {{text}}\nLabel:"}))
            raise MlflowException("Prompt (name=shared-prompt) already exists.", error_code=RESOURCE_ALREADY_EXISTS)
        return real(**kwargs)

    monkeypatch.setattr(mlflow.genai, "register_prompt", racing)
    prompt = Prompt("Label the text.", ("text",), ("label",))
    with mlflow.start_run():
        done = registry.register("shared", prompt, ModelSettings(), tags={"run_id": "x"}, description="d")

    assert calls == ["shared-prompt", "shared-prompt"]
    assert (done.prompt_version, done.model_version) == ("2", "1")
    assert mlflow.genai.load_prompt("prompts:/shared-prompt/2").template == prompt.template
