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
from test_api import BETTER, INTAKE, answer_task

import promptomatix
from promptomatix.cli import cli
from promptomatix.errors import ConfigError

TESTS = Path(__file__).parent
ITERATIONS, CANDIDATES = 3, 2

# The job run in a child process: the scripted model, whose second round of rewrites blocks
# (after writing a marker file) until the test kills the process.
JOB = f"""
import json, sys, time
sys.path.insert(0, {str(TESTS)!r})
from conftest import FAKE_MODEL, FakeLLM
from promptomatix.models.providers import PROVIDERS, import_litellm
import test_api

handler = FakeLLM()
PROVIDERS.register("scripted", lambda: handler, replace=True)
import_litellm()
test_api.synthetic.counter = 0
rewrites = []

def rewrite(prompt, params):
    rewrites.append(1)
    if len(rewrites) > {CANDIDATES}:  # iteration 2 has begun
        open(sys.argv[1], "w").write("in iteration 2")
        time.sleep(600)
    return json.dumps({{"instruction": "Answer positive or negative."}})

handler.rules = [("Request:", test_api.INTAKE), ("new, varied and realistic examples", test_api.synthetic),
                 ("Improved instruction", rewrite), ("Sentiment:", test_api.answer_task)]
import promptomatix
promptomatix.optimize(raw_input="Classify the sentiment of a movie review as positive or negative",
                      model=FAKE_MODEL, synthetic_data_size=8, iterations={ITERATIONS}, candidates={CANDIDATES},
                      num_threads=2, show_progress=False, name="reviews")
"""


@pytest.fixture
def killed(tracking, tmp_path, fake_llm):
    """The id of a run whose process was killed with SIGKILL during its second iteration."""
    marker = tmp_path / "marker"
    child = subprocess.Popen([sys.executable, "-c", JOB, str(marker)], cwd=tmp_path, env=os.environ.copy(),
                             stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 240
        while not marker.exists():
            assert child.poll() is None, child.stderr.read()
            assert time.monotonic() < deadline, "the job never reached its second iteration"
            time.sleep(0.2)
        child.send_signal(signal.SIGKILL)
        child.wait(30)
    finally:
        if child.poll() is None:
            child.kill()
    (run,) = mlflow.search_runs(search_all_experiments=True, output_format="list")
    assert run.info.status == "RUNNING"  # a kill leaves the run as it was
    fake_llm.rules = [("Request:", INTAKE), ("new, varied", "no new data on resume"),
                      ("Improved instruction", {"instruction": BETTER}), ("Sentiment:", answer_task)]
    return run.info.run_id


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
    assert sum("Improved instruction" in c["prompt"] for c in fake_llm.calls) == CANDIDATES * (ITERATIONS - 1)
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
