"""A team's tracking server, for real: `mlflow server` with a real database (sqlite, and
PostgreSQL from Debian's package) and artifacts proxied by the server (--serve-artifacts), eight
optimizations in eight processes at once, all registered under one name, and promotions made
while they run. All runs finish; versions 1..8 of the model and of its prompt exist with no gap
or duplicate, each linked to its own run and prompt version; the promotion gate decides by
score; artifacts are read through the server. One server per store for the whole session
(starting one takes up to a minute on 2 cores)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from types import SimpleNamespace

import mlflow
import pandas as pd
import pytest
from conftest import skip_or_fail
from mlflow import MlflowClient

import reliability_support as support
import services
from promptomatix.lifecycle.promotion import promote
from promptomatix.lifecycle.versions import all_versions

HERE = Path(__file__).parent
KINDS = ["strong", "weak"] * 4  # weak versions keep the starting score (0.0), strong ones reach 1.0
WORKER_LIMIT = 600  # s for all eight, on a busy 2-core machine


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def team_server(request, tmp_path_factory):
    """A real `mlflow server` on a loopback port, with the store the parameter names and its
    artifacts in a folder only the server writes to. Stopped (database too) after the module."""
    folder = tmp_path_factory.mktemp(f"server-{request.param}")
    with ExitStack() as stack:
        try:
            store = (f"sqlite:///{folder / 'server.db'}" if request.param == "sqlite"
                     else stack.enter_context(services.postgres()))
            url = stack.enter_context(services.mlflow_server(store, folder / "artifacts", folder / "server.log"))
        except services.Unavailable as exc:
            skip_or_fail(f"{request.param} tracking server: {exc}")
        yield SimpleNamespace(url=url, store=request.param, artifacts=folder / "artifacts")


@pytest.fixture
def server(team_server, monkeypatch):
    """This process's MLflow client pointed at the team server for one test."""
    for key in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
        monkeypatch.setenv(key, team_server.url)
    for key in ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setattr("mlflow.tracking.fluent._active_experiment_id", None)
    mlflow.set_tracking_uri(team_server.url)
    mlflow.set_registry_uri(team_server.url)
    yield team_server
    mlflow.set_tracking_uri(None)
    mlflow.set_registry_uri(None)


def promote_finished(name: str, done: set[str], decisions: list) -> None:
    """Promote to champion each version of `name` whose run has finished, oldest first, once."""
    client = MlflowClient()
    if not any(m.name == name for m in client.search_registered_models(f"name = '{name}'")):
        return
    for version in all_versions(name):
        if version.version in done or client.get_run(version.run_id).info.status != "FINISHED":
            continue
        holder = client.get_registered_model(name).aliases.get("champion")
        decisions.append((version.version, holder, promote(name, version.version, "champion", show_progress=False)))
        done.add(version.version)


def test_eight_concurrent_optimizations_and_promotions_on_a_team_server(server, tmp_path):
    name = f"shared-{server.store}"
    started = time.monotonic()
    # One launcher forks the eight optimization processes (see optimize_worker.py).
    # Output to files: a full pipe would stop the processes while this one is busy promoting.
    out_path, err_path = tmp_path / "workers.out", tmp_path / "workers.err"
    with out_path.open("w") as out, err_path.open("w") as err:
        launcher = subprocess.Popen([sys.executable, str(HERE / "optimize_worker.py"), name, *KINDS], cwd=tmp_path,
                                    env=os.environ | {"MLFLOW_TRACKING_URI": server.url}, stdout=out, stderr=err,
                                    start_new_session=True)
    # Promotions while the optimizations run: each finished version is put up for champion.
    done: set[str] = set()
    decisions: list = []
    promoted_meanwhile = 0
    try:
        while launcher.poll() is None:
            assert time.monotonic() - started < WORKER_LIMIT, "the optimizations did not finish in time"
            promote_finished(name, done, decisions)
            promoted_meanwhile = len(decisions)
            time.sleep(1)
    finally:
        if launcher.poll() is None:
            os.killpg(launcher.pid, signal.SIGKILL)
            launcher.wait()
    out, err = out_path.read_text(), err_path.read_text()
    assert launcher.returncode == 0, err[-3000:]
    promote_finished(name, done, decisions)
    results = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert len(results) == len(KINDS), err[-3000:]
    client = MlflowClient()

    # eight runs, all FINISHED, one per process
    runs = mlflow.search_runs(output_format="list", search_all_experiments=True)
    ids = sorted(r["run_id"] for r in results)
    assert sorted(r.info.run_id for r in runs) == ids
    assert {r.info.status for r in runs} == {"FINISHED"}

    # versions 1..8 of the model and of the prompt: no gap, no duplicate, each its own run's
    versions = all_versions(name)
    assert [int(v.version) for v in versions] == list(range(1, 9))
    assert sorted(int(r["model_version"]) for r in results) == list(range(1, 9))
    assert sorted(int(r["prompt_version"]) for r in results) == list(range(1, 9))
    by_run = {v.run_id: v for v in versions}
    assert sorted(by_run) == ids
    for result in results:
        version = by_run[result["run_id"]]
        assert version.version == result["model_version"]
        assert version.tags["prompt_uri"] == f"prompts:/{name}-prompt/{result['prompt_version']}"
        prompt = mlflow.genai.load_prompt(version.tags["prompt_uri"])
        assert prompt.template == result["prompt"]
        assert prompt.tags["model_version"] == result["model_version"]
    with pytest.raises(Exception):  # noqa: B017 (MLflow's own error for a missing version: any will do)
        mlflow.genai.load_prompt(f"prompts:/{name}-prompt/9")

    # the gate, decided while the optimizations ran: a version takes champion from its holder
    # exactly when it scores at least as well on the same validation set
    score = {r["model_version"]: r["score"] for r in results}
    assert sorted(score.values()) == [0.0] * 4 + [1.0] * 4
    assert len(decisions) == 8 and promoted_meanwhile >= 1
    for version, holder, decision in decisions:
        if holder is None:
            assert (decision.decision, decision.basis) == ("promoted", "first")
            continue
        assert decision.basis == "validation" and decision.previous == holder
        assert (decision.score, decision.previous_score) == (score[version], score[holder])
        assert decision.decision == ("promoted" if score[version] >= score[holder] else "rejected")
    champion = client.get_model_version_by_alias(name, "champion").version
    assert score[champion] == 1.0
    assert champion == [v for v, _, d in decisions if d.decision == "promoted"][-1]
    held = mlflow.genai.load_prompt(f"prompts:/{name}-prompt@champion")
    assert held.template == next(r["prompt"] for r in results if r["model_version"] == champion)

    # artifacts: stored by the server in its own folder, read by clients through the server
    run = client.get_run(versions[0].run_id)
    assert run.info.artifact_uri.startswith("mlflow-artifacts:/")
    assert any(server.artifacts.rglob("optimized_prompt.txt"))
    for result in results:
        text = mlflow.artifacts.load_text(f"runs:/{result['run_id']}/optimized_prompt.txt")
        assert text == result["prompt"]
    support.install("reliable", support.FaultyLLM(rate=0.0))
    model = mlflow.pyfunc.load_model(f"models:/{name}@champion")
    answers = model.predict(pd.DataFrame({"review": ["a good film", "a bad film"]}))
    assert list(answers["sentiment"]) == ["positive", "negative"]
