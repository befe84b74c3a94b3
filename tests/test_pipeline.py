"""The MLproject entry point `pipeline` as a user runs it: the real `mlflow run -e pipeline
--env-manager local`, twice with the same parameters; and the `evaluate` / `promote` entry points
on what the pipeline registered.

The steps are subprocesses, so the in-process fake LLM cannot answer them: a scripted LiteLLM
provider is installed for them the way a user's plugin is, as an entry point in the group
`promptomatix.providers` of a distribution on PYTHONPATH (the embedded model works too, but its
JSON-constrained rewrite takes minutes on 2 cores)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient

PROJECT = Path(__file__).resolve().parents[1]
RAW_INPUT = "Classify the sentiment of a movie review as positive or negative"
REVIEWS = [("A wonderful, moving film.", "positive"), ("Dull and far too long.", "negative"),
           ("I loved every minute of it.", "positive"), ("A waste of two hours.", "negative"),
           ("Brilliant acting and a clever story.", "positive"), ("Boring, predictable and flat.", "negative"),
           ("Funny, warm and beautifully shot.", "positive"), ("The worst film I saw this year.", "negative"),
           ("A delight from start to finish.", "positive"), ("Painful to sit through.", "negative")]
STEPS = ("data", "optimize", "evaluate", "promote")

pytestmark = [pytest.mark.e2e]
MODEL = "pipelinefake/scripted"
PLUGIN = '''
import json, os, re, time
import litellm

INTAKE = {"description": "Classify the sentiment of a movie review.", "task_type": "classification",
          "input_fields": ["review"], "output_fields": ["sentiment"], "labels": ["positive", "negative"]}
GOOD = ("wonderful", "loved", "brilliant", "funny", "delight")


class Scripted(litellm.CustomLLM):
    def completion(self, model, messages, *args, **kwargs):
        prompt = "\\n".join(str(m.get("content", "")) for m in messages)
        if "Improved instruction" in prompt and os.environ.get("PIPELINE_FAKE_BLOCK"):
            open(os.environ["PIPELINE_FAKE_BLOCK"], "w").close()  # a test signals the process here
            time.sleep(600)
        if "Improved instruction" in prompt:
            text = json.dumps({"instruction": "Answer positive or negative for the review."})
        elif "Request:" in prompt:
            text = json.dumps(INTAKE)
        else:
            query = prompt.rsplit("Review:", 1)[-1].lower()
            text = "positive" if any(word in query for word in GOOD) else "negative"
        response = litellm.ModelResponse(model=model)
        response.choices[0].message.content = text
        response.usage = litellm.Usage(prompt_tokens=len(prompt.split()), completion_tokens=1,
                                       total_tokens=len(prompt.split()) + 1)
        return response
'''


def install_plugin(folder: Path) -> Path:
    """A distribution `pipeline-fake` whose entry point adds the provider `pipelinefake`."""
    folder.mkdir()
    (folder / "pipeline_fake_llm.py").write_text(PLUGIN)
    info = folder / "pipeline_fake-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: pipeline-fake\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[promptomatix.providers]\npipelinefake = pipeline_fake_llm:Scripted\n")
    return folder


def copy_project(target: Path) -> Path:
    """The MLproject, its env file and pipelines/ (the step scripts import the installed package).
    A copy outside git: commits that others make to the repository meanwhile would rightly count
    as a new source version and defeat the reuse this test checks."""
    shutil.copytree(PROJECT / "pipelines", target / "pipelines", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("MLproject", "conda.yaml"):
        shutil.copy(PROJECT / name, target / name)
    return target


def mlflow_run(workdir: Path, uri: str, entry_point: str, **params: str) -> subprocess.CompletedProcess:
    # Both URIs explicitly: mlflow.set_*_uri in earlier tests leave them in os.environ.
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "MLFLOW_REGISTRY_URI": uri,
           "PYTHONPATH": str(workdir / "plugin"), "LITELLM_LOCAL_MODEL_COST_MAP": "True",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("MLFLOW_RUN_ID", None)
    command = [str(Path(sys.executable).parent / "mlflow"), "run", str(workdir / "project"), "-e", entry_point,
               "--env-manager", "local", *(x for k, v in params.items() for x in ("-P", f"{k}={v}"))]
    return subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    """The pipeline run twice with identical parameters: (first, second) completed processes."""
    workdir = tmp_path_factory.mktemp("pipeline")
    install_plugin(workdir / "plugin")
    copy_project(workdir / "project")
    uri = f"sqlite:///{workdir / 'mlflow.db'}"
    (workdir / "reviews.jsonl").write_text("".join(json.dumps({"review": r, "sentiment": s}) + "\n" for r, s in REVIEWS))
    params = dict(raw_input=RAW_INPUT, train_data="reviews.jsonl", name="reviews", task_type="classification",
                  input_fields="review", output_fields="sentiment", iterations="1", candidates="1", model=MODEL)
    done = []
    for _ in range(2):
        done.append(mlflow_run(workdir, uri, "pipeline", **params))
        assert done[-1].returncode == 0, done[-1].stdout[-3000:] + done[-1].stderr[-3000:]
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    yield workdir, uri, done
    mlflow.set_tracking_uri(None)
    mlflow.set_registry_uri(None)


def runs_by_entry_point() -> dict[str, list]:
    found: dict[str, list] = {}
    for run in mlflow.search_runs(output_format="list", search_all_experiments=True):
        found.setdefault(run.data.tags.get("mlflow.project.entryPoint"), []).append(run)
    return found


def test_each_step_is_a_finished_child_run_of_one_parent(pipeline):
    runs = runs_by_entry_point()
    first_parent = min(runs["pipeline"], key=lambda r: r.info.start_time)
    assert first_parent.info.status == "FINISHED"
    for step in STEPS:
        (child,) = runs[step]
        assert child.info.status == "FINISHED"
        assert child.data.tags["mlflow.parentRunId"] == first_parent.info.run_id
        assert first_parent.data.tags[f"promptomatix.pipeline.{step}.run_id"] == child.info.run_id
        assert first_parent.data.tags[f"promptomatix.pipeline.{step}.reused"] == "false"


def test_the_steps_pass_data_and_the_version_along(pipeline):
    runs = {step: run for step, (run, *_) in runs_by_entry_point().items() if step in STEPS}
    client = MlflowClient()
    sizes = {k: runs["data"].data.metrics[f"{k}_size"] for k in ("train", "valid", "test")}
    assert sum(sizes.values()) == len(REVIEWS) and min(sizes.values()) >= 1
    data_run = runs["data"].info.run_id
    assert {a.path for a in client.list_artifacts(data_run, "data")} == {"data/train.jsonl", "data/valid.jsonl",
                                                                        "data/test.jsonl"}
    assert runs["optimize"].data.params["train_data"] == f"runs:/{data_run}/data/train.jsonl"
    assert runs["optimize"].data.tags["promptomatix.model_uri"] == "models:/reviews/1"
    assert runs["evaluate"].data.params["data"] == f"runs:/{data_run}/data/test.jsonl"
    assert "test_score" in runs["evaluate"].data.metrics
    version = client.get_model_version("reviews", "1")
    assert version.tags["test_run_id"] == runs["evaluate"].info.run_id
    assert client.get_registered_model("reviews").aliases == {"champion": 1}
    assert version.tags["promotion.champion.decision"] == "promoted"


def test_a_second_identical_pipeline_reuses_every_finished_step(pipeline):
    _, _, (first, second) = pipeline
    runs = runs_by_entry_point()
    assert Counter({k: len(v) for k, v in runs.items()}) == Counter(pipeline=2, data=1, optimize=1, evaluate=1,
                                                                    promote=1)
    later = max(runs["pipeline"], key=lambda r: r.info.start_time)
    assert later.info.status == "FINISHED"
    for step in STEPS:
        assert later.data.tags[f"promptomatix.pipeline.{step}.reused"] == "true"
        assert later.data.tags[f"promptomatix.pipeline.{step}.run_id"] == runs[step][0].info.run_id
        assert f"{step}: reusing finished run" in second.stdout
    assert len(MlflowClient().search_model_versions("name = 'reviews'")) == 1  # nothing recomputed


def test_evaluate_and_promote_entry_points_do_what_the_cli_does(pipeline):
    workdir, uri, _ = pipeline
    test_file = workdir / "more.jsonl"
    test_file.write_text("".join(json.dumps({"review": r, "sentiment": s}) + "\n" for r, s in REVIEWS[:3]))
    done = mlflow_run(workdir, uri, "evaluate", ref="reviews@champion", data=str(test_file))
    assert done.returncode == 0, done.stderr[-3000:]
    assert "models:/reviews/1: " in done.stdout and "n=3 examples" in done.stdout
    (run,) = [r for r in runs_by_entry_point()["evaluate"] if r.data.params["ref"] == "reviews@champion"]
    assert run.info.status == "FINISHED" and run.data.tags["promptomatix.evaluated_model"] == "models:/reviews/1"
    assert MlflowClient().get_model_version("reviews", "1").tags["test_run_id"] == run.info.run_id

    done = mlflow_run(workdir, uri, "promote", name="reviews", version="1", alias="prod", reason="first release")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "promoted version 1 to reviews@prod" in done.stdout
    assert MlflowClient().get_registered_model("reviews").aliases == {"champion": 1, "prod": 1}

    done = mlflow_run(workdir, uri, "promote", name="reviews", version="7", alias="prod")
    assert done.returncode != 0 and "Error: model 'reviews' has no version 7" in done.stderr  # `mlflow run` exits 1
    (failed,) = [r for r in runs_by_entry_point()["promote"] if r.data.params["version"] == "7"]
    assert failed.info.status == "FAILED" and "no version 7" in failed.data.tags["promptomatix.error"]


# -- SIGTERM under `mlflow run` -------------------------------------------------------------

def start_mlflow_run(workdir: Path, uri: str, entry_point: str, **params: str) -> subprocess.Popen:
    """`mlflow run` in a session of its own (so that the test can signal it alone, or its whole
    process group as `timeout` does), the scripted model blocking at its first rewrite."""
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "MLFLOW_REGISTRY_URI": uri,
           "PYTHONPATH": os.pathsep.join(filter(None, [str(workdir / "plugin"), os.environ.get("PYTHONPATH")])),
           "LITELLM_LOCAL_MODEL_COST_MAP": "True", "PIPELINE_FAKE_BLOCK": str(workdir / "blocked"),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("MLFLOW_RUN_ID", None)
    command = [str(Path(sys.executable).parent / "mlflow"), "run", str(workdir / "project"), "-e", entry_point,
               "--env-manager", "local", *(x for k, v in params.items() for x in ("-P", f"{k}={v}"))]
    return subprocess.Popen(command, cwd=workdir, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)


def wait_for(condition, what: str, seconds: float = 240, alive: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert alive is None or alive.poll() is None, alive.communicate()[1][-3000:]
        assert time.monotonic() < deadline, f"waited {seconds} s for {what}"
        time.sleep(0.2)


@pytest.fixture
def signalled(tmp_path):
    """A project copy with the blocking scripted model, its store, and a way to start `mlflow
    run`; every process started is killed afterwards."""
    install_plugin(tmp_path / "plugin")
    copy_project(tmp_path / "project")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    started: list[subprocess.Popen] = []

    def start(entry_point: str, **params: str) -> subprocess.Popen:
        started.append(start_mlflow_run(tmp_path, uri, entry_point, **params))
        return started[-1]

    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    yield tmp_path, start
    for process in started:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    mlflow.set_tracking_uri(None)
    mlflow.set_registry_uri(None)


def runs_of(entry_point: str) -> list:
    return runs_by_entry_point().get(entry_point, [])


def test_sigterm_to_mlflow_run_alone_ends_its_run_killed(signalled):
    # `docker stop` and Kubernetes signal only the container's first process: `mlflow run` dies
    # at once without passing the signal on; its entry point is told by the kernel (prctl).
    workdir, start = signalled
    (workdir / "reviews.jsonl").write_text("".join(json.dumps({"review": r, "sentiment": s}) + "\n"
                                                   for r, s in REVIEWS))
    launcher = start("main", raw_input=RAW_INPUT, model=MODEL, train_data=str(workdir / "reviews.jsonl"),
                     task_type="classification", input_fields="review", output_fields="sentiment", iterations="1",
                     candidates="1", name="reviews")
    wait_for((workdir / "blocked").exists, "the first rewrite", alive=launcher)

    os.kill(launcher.pid, signal.SIGTERM)
    sent = time.monotonic()

    wait_for(lambda: runs_of("main") and runs_of("main")[0].info.status != "RUNNING", "the run to end", 60)
    (run,) = runs_of("main")
    assert run.info.status == "KILLED"
    assert run.data.tags["promptomatix.error"].startswith("stopped by SIGTERM")
    assert time.monotonic() - sent < 30
    assert MlflowClient().search_registered_models() == []


def test_sigterm_to_a_pipeline_ends_the_pipeline_and_its_running_step_killed(signalled):
    # `timeout` signals the whole process group: `mlflow run`, the pipeline and its step.
    workdir, start = signalled
    (workdir / "reviews.jsonl").write_text("".join(json.dumps({"review": r, "sentiment": s}) + "\n"
                                                   for r, s in REVIEWS))
    launcher = start("pipeline", raw_input=RAW_INPUT, train_data="reviews.jsonl", name="reviews",
                     task_type="classification", input_fields="review", output_fields="sentiment",
                     iterations="1", candidates="1", model=MODEL)
    wait_for((workdir / "blocked").exists, "the optimize step's first rewrite", alive=launcher)

    os.killpg(launcher.pid, signal.SIGTERM)

    wait_for(lambda: all(r.info.status != "RUNNING" for step in ("pipeline", "optimize") for r in runs_of(step)),
             "the runs to end", 60)
    (pipeline,), (optimize,), (data,) = runs_of("pipeline"), runs_of("optimize"), runs_of("data")
    assert (pipeline.info.status, optimize.info.status, data.info.status) == ("KILLED", "KILLED", "FINISHED"), \
        launcher.communicate()[1][-3000:]
    assert pipeline.data.tags["promptomatix.error"].startswith("stopped by SIGTERM")
    assert optimize.data.tags["promptomatix.error"].startswith("stopped by SIGTERM")
    assert MlflowClient().search_registered_models() == []
