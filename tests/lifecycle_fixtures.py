"""Fixtures and helpers of the prompt-lifecycle tests (tests/lifecycle/), a pytest plugin
(conftest.py's `pytest_plugins`): tests ask for the fixtures by name instead of importing them.

`make_versions` registers versions quickly with the scripted LLM, whose answers depend on a
`QUALITY=<n>` token in the prompt: a version with QUALITY=n gets examples 0..n-1 right, so its
score on the 4-example sets below is n/4.
"""

from __future__ import annotations

import json

import mlflow
import pytest
from click.testing import CliRunner
from conftest import FAKE_MODEL
from mlflow import MlflowClient
from sentiment_data import answer_task

import promptomatix
from promptomatix.cli import cli
from promptomatix.cli.lifecycle import add_to

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
def version_llm(fake_llm):
    """The scripted LLM of `make_versions` (named apart from test_api's `scripted`)."""
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
def big_data(tmp_path, monkeypatch) -> str:
    """60 test rows (`rows(0, count=60)`): the version with QUALITY=n gets rows 0..n-1 right and
    the others wrong, so two versions' paired test is certain. MLflow's evaluation harness is
    held to 4 threads: with its default pools (10 predicting, 10 scoring, 10 exporting traces) a
    60-row evaluation on the sqlite store can run out of SQLAlchemy's connections (5 + 10) while
    the CPUs are busy ("QueuePool limit ... reached"), and a row then loses its tag."""
    monkeypatch.setenv("MLFLOW_GENAI_EVAL_MAX_WORKERS", "4")
    return write_jsonl(tmp_path / "rows60.jsonl", rows(0, count=60))


@pytest.fixture
def make_versions(tracking, version_llm, files):
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
