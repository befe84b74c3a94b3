"""The `promptomatix` command: bad input is one line and exit 2; a run prints its summary."""

from __future__ import annotations

import mlflow
import pytest
from click.testing import CliRunner
from conftest import FAKE_MODEL, written_inputs
from mlflow import MlflowClient
from optimize_fixtures import INTAKE, answer_task, synthetic, written

from promptomatix.cli import cli

BASE = ["optimize", "--raw-input", "Classify the sentiment of a movie review", "--model", FAKE_MODEL,
        "--synthetic-data-size", "6", "--iterations", "1", "--candidates", "1", "--quiet"]


@pytest.fixture
def scripted(fake_llm):
    synthetic.counter = 0
    fake_llm.rules = [("Request:", INTAKE), ("new, varied and realistic examples", synthetic),
                      written_inputs(written, "Sentiment"),
                      ("Improved instruction", {"instruction": "Read the review CAREFULLY."}),
                      ("Sentiment:", answer_task)]
    return fake_llm


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_optimize_prints_the_summary(tracking, scripted):
    result = invoke(*BASE)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "0.000 (initial) -> 1.000 (optimized)" in out
    (run,) = mlflow.search_runs(output_format="list", search_all_experiments=True)
    assert f"run id:          {run.info.run_id}" in out
    assert "models:/classify-the-sentiment-of-a-movie/1" in out
    assert "prompts:/classify-the-sentiment-of-a-movie-prompt/1" in out
    assert "Read the review CAREFULLY." in out and "mlflow ui --backend-store-uri sqlite:///" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--raw-input", "   "], "raw input is empty"),
        (["--backend", "nope"], "unknown backend 'nope'"),
        (["--task-type", "poetry"], "unknown task type 'poetry'"),
        (["--model", "nosuchprovider/model-x"], "unknown model provider"),
        (["--train-data", "missing.csv"], "missing.csv: no such file"),
        (["--train-ratio", "1.5"], "train ratio must be strictly between 0 and 1"),
        (["--synthetic-data-size", "0"], "synthetic data size must be a positive whole number"),
        (["--input-fields", "text", "--output-fields", "text"], "both an input and an output"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_leaves_nothing(tracking, scripted, args, message):
    result = invoke(*BASE, *args)
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]  # one line
    assert result.stderr.startswith("Error: ") and message in result.stderr
    assert "Traceback" not in result.output
    assert MlflowClient().search_registered_models() == []


def test_malformed_data_file_is_one_line(tracking, scripted, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"review": "ok", "sentiment": "positive"}\n{"review": oops}\n')
    result = invoke(*BASE, "--train-data", str(bad))
    assert result.exit_code == 2
    assert result.stderr.strip() == f"Error: {bad}: line 2 is not valid JSON (Expecting value)"


def test_llm_failure_is_exit_1_with_the_run_failed(tracking, scripted):
    import litellm

    scripted.rules.insert(0, ("Improved instruction", litellm.RateLimitError(
        message="slow down", llm_provider="scripted", model="fake")))
    result = invoke(*BASE[:-1], "--quiet")
    assert result.exit_code == 1
    assert "RateLimitError after" in result.stderr
    (run,) = mlflow.search_runs(output_format="list", search_all_experiments=True)
    assert run.info.status == "FAILED"


def test_help_lists_the_main_options():
    result = invoke("optimize", "--help")
    for flag in ("--raw-input", "--model", "--optimizer-model", "--search", "--train-data",
                 "--iterations", "--candidates", "--lambda-penalty", "--task-type"):
        assert flag in result.output


def test_config_file_carries_options_and_flags_override_it(tracking, scripted, tmp_path):
    config = tmp_path / "job.yaml"
    config.write_text(f"raw_input: Classify the sentiment of a movie review\nmodel: {FAKE_MODEL}\n"
                      "synthetic_data_size: 6\niterations: 3\ncandidates: 1\nname: from-file\n")
    result = invoke("optimize", "--config", str(config), "--iterations", "1", "--quiet")
    assert result.exit_code == 0, result.output
    (run,) = mlflow.search_runs(output_format="list", search_all_experiments=True)
    assert run.data.params["promptomatix.iterations"] == "1"  # the flag won
    assert run.data.params["promptomatix.synthetic_data_size"] == "6" and "models:/from-file/1" in result.stdout
    logged = mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/config.yaml")
    assert "iterations: 1" in logged and "name: from-file" in logged

    again = invoke("optimize", "--config-from", run.info.run_id, "--quiet")
    assert again.exit_code == 0, again.output
    assert "models:/from-file/2" in again.stdout


@pytest.mark.parametrize(("content", "message"), [
    ("iterations: [1", "not valid YAML"),
    ("- a list", "expected a mapping"),
    ("raw_input: x\nno_such_option: 1", "unknown option 'no_such_option'"),
])
def test_bad_config_file_is_one_line(tracking, tmp_path, content, message):
    config = tmp_path / "bad.yaml"
    config.write_text(content)
    result = invoke("optimize", "--config", str(config))
    assert result.exit_code == 2 and message in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_config_from_an_unknown_run_is_one_line(tracking):
    result = invoke("optimize", "--config-from", "0123456789abcdef")
    assert result.exit_code == 2 and "has no config.yaml" in result.stderr


def test_no_raw_input_anywhere_is_one_line(tracking):
    result = invoke("optimize", "--model", FAKE_MODEL)
    assert result.exit_code == 2 and result.stderr.startswith("Error: raw input is empty")


@pytest.mark.parametrize(("content", "message"), [
    ("raw_input: x\ntrain_ratio: half", "train ratio must be a number, got 'half'"),
    ("raw_input: x\niterations: 1.5", "iterations must be a whole number"),
    ("raw_input: x\ninput_fields: [1]", "input fields must be a list of names"),
    ("raw_input: x\nhooks: abc", "hooks must be a list of names"),
    ("raw_input: x\nfield_map: [a]", "field map must be a mapping"),
])
def test_wrongly_typed_config_values_are_one_line(tracking, tmp_path, content, message):
    config = tmp_path / "bad.yaml"
    config.write_text(content)
    result = invoke("optimize", "--config", str(config))
    assert result.exit_code == 2 and message in result.stderr and "Traceback" not in result.output


def test_a_rerun_with_another_search_preset_takes_its_sizes(tracking, scripted):
    first = invoke(*BASE[:5], "--synthetic-data-size", "6", "--quiet")  # quick preset: 2 iterations
    assert first.exit_code == 0, first.output
    (run,) = mlflow.search_runs(output_format="list", search_all_experiments=True)
    from promptomatix.api import options_from_run
    from promptomatix.config.flat import config_from_options

    saved = options_from_run(run.info.run_id)
    assert "iterations" not in saved  # filled by the preset, so not pinned
    assert config_from_options(**(saved | {"search": "heavy"})).iterations == 5


def test_dry_run_reads_the_task_prints_the_plan_and_makes_only_intakes_calls(tracking, scripted):
    result = invoke(*BASE, "--max-calls", "120", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "planned model calls" in result.stdout and "budget: 120 calls" in result.stdout
    # what was understood, part by part, with where it came from and the options that change it
    assert "read the task as:  classification (from the request (\"classify\"))" in result.stdout
    assert "review -> sentiment (from the request)" in result.stdout
    assert "positive, negative (from the model)" in result.stdout
    assert "--task-type, --input-fields / --output-fields, --labels" in result.stdout
    assert "check: the request names no labels" in result.stdout  # guessed labels are a doubt
    assert scripted.calls and all("Request:" in call["prompt"] for call in scripted.calls)  # intake only
    assert mlflow.search_runs(output_format="list", search_all_experiments=True) == []


def test_dry_run_takes_the_labels_the_request_lists_without_a_doubt(tracking, scripted):
    raw = "Classify a question by the type of answer it expects: Description, Number, Entity, Location, Human or Expression"
    result = invoke(*BASE[:1], "--raw-input", raw, *BASE[3:], "--dry-run")
    assert result.exit_code == 0, result.output
    assert ("labels:          Description, Number, Entity, Location, Human, Expression (from the request)"
            in result.stdout)
    assert "question -> answer_type" in result.stdout  # the request's nouns; not the intake model's "review"
    assert "check:" not in result.stdout


def test_labels_option_sets_the_labels(tracking, scripted):
    result = invoke(*BASE, "--labels", "good, bad", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "labels:          good, bad (from your option)" in result.stdout
    result = invoke(*BASE, "--labels", "good", "--dry-run")
    assert result.exit_code == 2 and "labels: a classification needs at least two" in result.stderr


def test_a_dry_run_creates_no_store(scripted, tmp_path, monkeypatch):
    # Every other command checks (and so creates) the store before it starts; a dry run writes nothing.
    store = tmp_path / "new" / "mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store}")
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", f"sqlite:///{store}")

    result = invoke(*BASE, "--dry-run")

    assert result.exit_code == 0, result.output
    assert not store.parent.exists()
