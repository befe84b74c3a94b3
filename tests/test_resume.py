"""`optimize --resume`: an optimization killed with SIGKILL in its second iteration is completed
from its last checkpoint, in a new run, with exactly one registered version."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest
from click.testing import CliRunner
from mlflow import MlflowClient
from conftest import written_inputs
from optimize_fixtures import BETTER, INTAKE, answer_task, synthetic, written

import promptomatix
from promptomatix.cli import cli
from promptomatix.errors import ConfigError

TESTS = Path(__file__).parent
ITERATIONS, CANDIDATES = 3, 2

# The job run in a child process with the scripted model. It blocks, after writing the marker
# file (argv[1]), until the test kills it: at the start of iteration 2 (argv[2] == "iteration"),
# or just after registering the model version (argv[2] == "register"); with "slow" every call
# takes a little time, so a kill after a random delay can land anywhere.
JOB = f"""
import json, sys, time
sys.path.insert(0, {str(TESTS)!r})
marker, mode = sys.argv[1], sys.argv[2]

def block():
    open(marker, "w").write(mode)
    time.sleep(600)
import conftest
from conftest import FAKE_MODEL, FakeLLM
from promptomatix.models.providers import import_litellm, PROVIDERS
import optimize_fixtures

handler = FakeLLM()
PROVIDERS.register("scripted", lambda: handler, replace=True)
import_litellm()
optimize_fixtures.synthetic.counter = 0
rewrites = []

def rewrite(prompt, params):
    rewrites.append(1)
    if len(rewrites) > 1 and mode == "iteration":  # one rewrite an iteration: iteration 2 has begun
        block()
    return json.dumps({{"instruction": "Answer positive or negative."}})

def slow(answer):
    def answer_slowly(prompt, params):
        time.sleep(0.2 if mode == "slow" else 0)
        return answer(prompt, params) if callable(answer) else json.dumps(answer)
    return answer_slowly

script = optimize_fixtures
handler.rules = [("Request:", slow(script.INTAKE)), ("new, varied and realistic examples", slow(script.synthetic)),
                 ("Improved instruction", slow(rewrite)), conftest.written_inputs(script.written, "Sentiment"),
                 ("Sentiment:", slow(script.answer_task))]
import mlflow
import promptomatix
if mode == "register":
    register_model = mlflow.register_model
    def register_then_block(*args, **kwargs):
        register_model(*args, **kwargs)
        block()
    mlflow.register_model = register_then_block
promptomatix.optimize(raw_input="Classify the sentiment of a movie review as positive or negative",
                      model=FAKE_MODEL, synthetic_data_size=8, iterations={ITERATIONS}, candidates={CANDIDATES},
                      num_threads=2, show_progress=False, name="reviews")
"""


def kill_job(tmp_path, mode: str, delay: float | None = None) -> str:
    """Start the job, SIGKILL it once it blocks (or `delay` seconds after it saved its options),
    and return its run's id."""
    marker = tmp_path / "marker"
    # The store is made before the job starts: polling a new sqlite store while the job's process
    # creates it runs MLflow's migrations in both at once, and one fails (seen once in CI).
    mlflow.search_experiments()
    child = subprocess.Popen([sys.executable, "-c", JOB, str(marker), mode], cwd=tmp_path, env=os.environ.copy(),
                             stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 240
        while not (marker.exists() if delay is None else _saved_options()):
            assert child.poll() is None, child.stderr.read()
            assert time.monotonic() < deadline, f"the job never got to {mode}"
            time.sleep(0.1)
        time.sleep(delay or 0)
        child.send_signal(signal.SIGKILL)
        child.wait(30)
    finally:
        if child.poll() is None:
            child.kill()
    (run,) = mlflow.search_runs(search_all_experiments=True, output_format="list")
    return run.info.run_id


def _saved_options() -> bool:
    runs = mlflow.search_runs(search_all_experiments=True, output_format="list")
    return bool(runs) and any(a.path == "config.yaml" for a in MlflowClient().list_artifacts(runs[0].info.run_id))


def resume_rules(fake_llm):
    synthetic.counter = 0  # a job killed before its data was saved makes it again on resume
    fake_llm.rules = [("Request:", INTAKE), ("new, varied", synthetic),
                      ("Improved instruction", {"instruction": BETTER}), written_inputs(written, "Sentiment"),
                      ("Sentiment:", answer_task)]


@pytest.fixture
def killed(tracking, tmp_path, fake_llm):
    """The id of a run whose process was killed with SIGKILL during its second iteration."""
    run_id = kill_job(tmp_path, "iteration")
    assert MlflowClient().get_run(run_id).info.status == "RUNNING"  # a kill leaves the run as it was
    resume_rules(fake_llm)
    return run_id


def test_a_killed_run_is_completed_by_resume_with_one_version(killed, fake_llm):
    client = MlflowClient()
    result = promptomatix.optimize(resume=killed, show_progress=False)

    old, new = client.get_run(killed), client.get_run(result.run_id)
    assert old.info.status == "KILLED" and new.info.status == "FINISHED"
    assert f"resumed by run {new.info.run_id}" in old.data.tags["promptomatix.error"]
    assert new.data.tags["promptomatix.resumed_from"] == killed
    assert new.info.experiment_id == old.info.experiment_id
    finished = [r for r in mlflow.search_runs(search_all_experiments=True, output_format="list")
                if r.info.status == "FINISHED"]
    assert [r.info.run_id for r in finished] == [result.run_id]
    (version,) = client.search_model_versions("name = 'reviews'")
    assert version.run_id == result.run_id and len(mlflow.genai.search_prompts()) == 1

    # it went on after iteration 1: no intake, no new data, only iterations 2 and 3's rewrites
    assert not any(k in c["prompt"] for c in fake_llm.calls for k in ("Request:", "new, varied"))
    assert sum("Improved instruction" in c["prompt"] for c in fake_llm.calls) == ITERATIONS - 1  # one an iteration
    for part in ("train", "valid"):
        assert mlflow.artifacts.load_text(f"runs:/{killed}/data/{part}.jsonl") == \
            mlflow.artifacts.load_text(f"runs:/{result.run_id}/data/{part}.jsonl")
    # the whole history in the new run: steps 0 and 1 from the killed run, then 2 and 3
    history = client.get_metric_history(result.run_id, "best_score")
    assert [m.step for m in sorted(history, key=lambda m: m.step)] == [0, 1, 2, 3]
    killed_history = {m.step: m.value for m in client.get_metric_history(killed, "best_score")}
    assert killed_history == {0: 0.0, 1: 0.0}
    assert result.initial_score == 0.0 and result.optimized_score == 1.0 and "CAREFULLY" in result.prompt
    table = json.loads(mlflow.artifacts.load_text(f"runs:/{result.run_id}/candidates.json"))
    assert sorted({row[0] for row in table["data"]}) == [0, 1, 2, 3]


def test_a_run_cannot_be_resumed_twice_or_once_finished(killed):
    result = promptomatix.optimize(resume=killed, show_progress=False)
    with pytest.raises(ConfigError, match=f"was resumed already, by run {result.run_id}"):
        promptomatix.optimize(resume=killed)
    with pytest.raises(ConfigError, match="finished; there is nothing to resume"):
        promptomatix.optimize(resume=result.run_id)


def test_resume_on_the_command_line_takes_no_other_options(killed):
    runner = CliRunner()
    refused = runner.invoke(cli, ["optimize", "--resume", killed, "--iterations", "5"])
    assert refused.exit_code == 2
    assert refused.stderr.strip() == "Error: --resume goes on with the options of the run it resumes: give no other options"
    unknown = runner.invoke(cli, ["optimize", "--resume", "0123456789abcdef"])
    assert unknown.exit_code == 2 and "no MLflow run '0123456789abcdef'" in unknown.stderr

    done = runner.invoke(cli, ["optimize", "--resume", killed, "--quiet"], catch_exceptions=False)
    assert done.exit_code == 0, done.output
    assert "models:/reviews/1" in done.output


def test_a_run_killed_while_registering_leaves_exactly_one_version(tracking, tmp_path, fake_llm):
    run_id = kill_job(tmp_path, "register")
    client = MlflowClient()
    assert [v.run_id for v in client.search_model_versions("name = 'reviews'")] == [run_id]  # left behind
    resume_rules(fake_llm)
    result = promptomatix.optimize(resume=run_id, show_progress=False)

    (version,) = client.search_model_versions("name = 'reviews'")
    assert version.run_id == result.run_id and str(version.version) == "2"  # the killed run's one is gone
    prompts = client.search_prompt_versions("reviews-prompt")
    assert [(p.version, p.tags["run_id"]) for p in prompts] == [(2, result.run_id)]
    assert version.tags["prompt_uri"] == "prompts:/reviews-prompt/2"


@pytest.mark.parametrize("seed", [1, 2])
def test_a_run_killed_at_a_random_point_is_completed_by_resume(tracking, tmp_path, fake_llm, seed):
    import random

    delay = random.Random(seed).uniform(0.0, 4.0)
    run_id = kill_job(tmp_path, "slow", delay=delay)
    client = MlflowClient()
    resume_rules(fake_llm)
    if client.get_run(run_id).info.status == "FINISHED":
        pytest.skip(f"the job finished within {delay:.2f} s, before the kill")
    result = promptomatix.optimize(resume=run_id, show_progress=False)

    statuses = sorted(r.info.status for r in mlflow.search_runs(search_all_experiments=True, output_format="list"))
    assert statuses == ["FINISHED", "KILLED"], f"killed after {delay:.2f} s"
    (version,) = client.search_model_versions("name = 'reviews'")
    assert version.run_id == result.run_id
    assert [m.step for m in sorted(client.get_metric_history(result.run_id, "best_score"), key=lambda m: m.step)] \
        == list(range(ITERATIONS + 1))
