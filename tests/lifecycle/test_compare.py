"""`promptomatix compare`: every registered version in a table (or JSON), on a real sqlite store.

Also holds the helpers the other lifecycle tests import (as test_cli imports test_api):
`make_versions` registers versions quickly with the scripted LLM, whose answers depend on a
`QUALITY=<n>` token in the prompt: a version with QUALITY=n gets examples 0..n-1 right, so its
score on the 4-example sets below is n/4.
"""

from __future__ import annotations

import json
import re

import mlflow
import pytest
from click.testing import CliRunner
from conftest import FAKE_MODEL, one_error_line
from sentiment_data import answer_task
from mlflow import MlflowClient

import promptomatix
from promptomatix.cli import cli
from promptomatix.cli_lifecycle import add_to
from promptomatix.lifecycle import compare, evaluate
from promptomatix.scoring import prompt_words

INTAKE = {"description": "Classify the sentiment of a movie review.", "task_type": "classification",
          "input_fields": ["review"], "output_fields": ["sentiment"], "labels": ["positive", "negative"]}


def rows(start: int, count: int = 4, word_of=lambda i: "good" if i % 2 == 0 else "bad") -> list[dict]:
    """Examples `a good|bad film <i>`, labelled by the word."""
    return [{"review": f"a {word_of(i)} film {i}", "sentiment": "positive" if word_of(i) == "good" else "negative"}
            for i in range(start, start + count)]


def write_jsonl(path, examples) -> str:
    path.write_text("".join(json.dumps(e) + "\n" for e in examples))
    return str(path)


@pytest.fixture
def scripted(fake_llm):
    fake_llm.rules = [
        ("Request:", INTAKE),
        ("Improved instruction", {"instruction": "Guess the sentiment."}),  # rewrites never win
        ("Sentiment:", answer_task),
    ]
    return fake_llm


@pytest.fixture
def files(tmp_path):
    """train / valid / other_valid / test JSONL files (4 examples each, test rows 0..3)."""
    return {"train": write_jsonl(tmp_path / "train.jsonl", rows(0)),
            "valid": write_jsonl(tmp_path / "valid.jsonl", rows(0)),
            "other_valid": write_jsonl(tmp_path / "other_valid.jsonl", rows(0, word_of=lambda i: "good")),
            "test": write_jsonl(tmp_path / "test.jsonl", rows(0, word_of=lambda i: "bad" if i % 2 == 0 else "good"))}


@pytest.fixture
def make_versions(tracking, scripted, files):
    """`make(*qualities, name="reviews", valid="valid", **options)` registers one version per
    quality (`options`: more options of `optimize`, such as `metric_weights`)."""

    def make(*qualities: int, name: str = "reviews", valid: str = "valid", **options) -> list[str]:
        made = []
        for quality in qualities:
            result = promptomatix.optimize(
                raw_input=f"Classify the sentiment of a movie review QUALITY={quality}", name=name,
                model=FAKE_MODEL, train_data=files["train"], valid_data=files[valid], num_demos=0,
                iterations=1, candidates=1, num_threads=1, show_progress=False, **options)
            made.append(result.model_version)
        return made

    return make


def invoke(*args: str):
    group = add_to(cli)
    return CliRunner().invoke(group, list(args), catch_exceptions=False)


def registry_state() -> dict:
    """Everything a lifecycle command may change: model aliases and tags, version tags, prompt
    version aliases and tags, and the runs."""
    client = MlflowClient()
    state = {"runs": sorted(r.info.run_id for r in mlflow.search_runs(output_format="list",
                                                                        search_all_experiments=True))}
    for model in client.search_registered_models():
        state[model.name] = {"aliases": dict(model.aliases), "tags": dict(model.tags), "versions": {
            str(v.version): dict(v.tags) for v in client.search_model_versions(f"name = '{model.name}'")}}
    for prompt in mlflow.genai.search_prompts():
        state[f"prompt:{prompt.name}"] = {
            str(v.version): (sorted(v.aliases or []), dict(v.tags)) for v in client.search_prompt_versions(prompt.name)}
    return state


# --- compare -------------------------------------------------------------------------------

def test_compare_lists_every_version_with_aliases_scores_and_provenance(make_versions, files):
    make_versions(2, 4)
    MlflowClient().set_registered_model_alias("reviews", "champion", "1")
    evaluate("reviews@2", files["test"], show_progress=False)

    result = invoke("compare", "reviews")
    assert result.exit_code == 0, result.output
    header, rule, first, second = result.stdout.splitlines()
    assert header.split() == ["version", "parent", "aliases", "validation", "test", "words", "cost", "backend",
                              "run", "id", "created"]
    assert set(rule) <= {"-", " "}
    runs = {str(v.version): v.run_id for v in MlflowClient().search_model_versions("name = 'reviews'")}
    cells = first.split()
    assert cells[:5] == ["1", "-", "champion", "0.5000", "-"]  # no parent; never evaluated: no test score
    assert cells[7:9] == ["meta_prompt", runs["1"]]
    assert re.fullmatch(r"\d+", cells[5]) and cells[6].startswith("$")
    assert re.fullmatch(r"\d{4}-\d\d-\d\d", cells[9])
    cells = second.split()
    assert cells[:5] == ["2", "-", "-", "1.0000", "1.0000"] and cells[8] == runs["2"]


def test_compare_json_is_for_scripts(make_versions, files):
    make_versions(2)
    report = evaluate("reviews@1", files["test"], show_progress=False)
    result = invoke("compare", "reviews", "--format", "json")
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.stdout)
    prompt = mlflow.genai.load_prompt("prompts:/reviews-prompt/1")
    assert row["version"] == "1" and row["aliases"] == [] and row["parent_version"] is None
    assert row["validation_score"] == 0.5 and row["test_score"] == report.score == 0.5
    assert row["metric"] == "classification:accuracy"
    assert row["test_data_digest"] == report.data_digest
    assert row["prompt_words"] == prompt_words(prompt.template)
    assert row["cost"] > 0 and row["backend"] == "meta_prompt" and row["task_type"] == "classification"
    assert row["created"].endswith("+00:00")
    assert compare("reviews") == [row]  # the Python API returns the same rows


def test_compare_of_an_unknown_name_is_one_line(tracking):
    one_error_line(invoke("compare", "nothing-here"), "no registered model named 'nothing-here'")


def test_compare_of_a_prompt_name_points_to_its_model(make_versions):
    make_versions(1)
    one_error_line(invoke("compare", "reviews-prompt"), "is a prompt, not a registered model", "'reviews'")


def test_adding_the_commands_twice_is_harmless(tracking):
    add_to(cli)
    add_to(cli)
    assert {"compare", "evaluate", "promote", "rollback", "optimize"} <= set(cli.commands)
    result = CliRunner().invoke(cli, ["promote", "--help"])
    assert result.exit_code == 0 and "same evaluation data" in result.stdout
