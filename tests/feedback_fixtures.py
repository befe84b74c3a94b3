"""Fixtures and helpers of the feedback and critique tests (test_feedback.py, test_critique.py),
a pytest plugin (conftest.py's `pytest_plugins`): tests ask for `store` and `reviews` by name
instead of importing them.

The versions come from real scripted optimizations in a real sqlite store, made once per test
module (`store`) and stripped of feedback before each test (`reviews`): optimizing takes
seconds on the shared 2-core machines.
"""

from __future__ import annotations

import json
import sqlite3

import mlflow
import pytest
from click.testing import CliRunner
from conftest import FAKE_MODEL
from mlflow import MlflowClient
from sentiment_data import answer_task

import promptomatix
from promptomatix.cli import cli
from promptomatix.cli.feedback import add_to

INTAKE = {"description": "Classify the sentiment of a movie review.", "task_type": "classification",
          "input_fields": ["review"], "output_fields": ["sentiment"], "labels": ["positive", "negative"]}
SCRIPT = [("Request:", INTAKE), ("Improved instruction", {"instruction": "Guess the sentiment."}),
          ("Sentiment:", answer_task)]
# What optimize registers for QUALITY=n (no demos; the rewrite never wins):
PROMPT = "Classify the sentiment of a movie review QUALITY={n}\n\nReview: {{{{review}}}}\nSentiment:"


def rows(start: int, count: int = 4) -> list[dict]:
    return [{"review": f"a {'good' if i % 2 == 0 else 'bad'} film {i}",
             "sentiment": "positive" if i % 2 == 0 else "negative"} for i in range(start, start + count)]


def write_jsonl(path, examples) -> str:
    path.write_text("".join(json.dumps(e) + "\n" for e in examples))
    return str(path)


@pytest.fixture(scope="module")
def store(tmp_path_factory, _fake_handler):
    """A sqlite store holding model `reviews`: v1 (QUALITY=2), v2 (QUALITY=4, alias champion)."""
    root = tmp_path_factory.mktemp("feedback-store")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        patch.setenv("MLFLOW_REGISTRY_URI", uri)
        patch.delenv("MLFLOW_RUN_ID", raising=False)
        patch.delenv("MLFLOW_EXPERIMENT_ID", raising=False)  # as in conftest's `tracking`
        patch.setattr("mlflow.tracking.fluent._active_experiment_id", None)
        patch.delenv("MLFLOW_TRACKING_USERNAME", raising=False)
        patch.chdir(root)
        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(uri)
        _fake_handler.rules = list(SCRIPT)
        data = write_jsonl(root / "data.jsonl", rows(0))
        for quality in (2, 4):
            promptomatix.optimize(raw_input=f"Classify the sentiment of a movie review QUALITY={quality}",
                                  name="reviews", model=FAKE_MODEL, train_data=data, valid_data=data, num_demos=0,
                                  iterations=1, candidates=1, num_threads=1, show_progress=False)
        MlflowClient().set_registered_model_alias("reviews", "champion", "2")
        yield {"uri": uri, "db": root / "mlflow.db", "root": root}
        while mlflow.active_run():
            mlflow.end_run()
        mlflow.set_tracking_uri(None)
        mlflow.set_registry_uri(None)


@pytest.fixture
def reviews(store, fake_llm):
    """The module's store with no feedback (nor critique links) on any version; the scripted
    model answers as when the versions were made."""
    client = MlflowClient()
    for version in client.search_model_versions("name = 'reviews'"):
        for key in version.tags:
            if key.startswith("feedback.") or key == "critique_run_id":
                client.delete_model_version_tag("reviews", version.version, key)
    fake_llm.rules = list(SCRIPT)
    return store


def prompt_of(version: int) -> str:
    return PROMPT.format(n={1: 2, 2: 4}[version])


def invoke(*args: str):
    return CliRunner().invoke(add_to(cli), list(args), catch_exceptions=False)


def store_state() -> dict:
    """What feedback may change: every version's tags, every run's artifact paths, the runs."""
    client = MlflowClient()
    runs = mlflow.search_runs(output_format="list", search_all_experiments=True)
    state = {"runs": {r.info.run_id: sorted(_artifacts(client, r.info.run_id)) for r in runs}}
    for version in client.search_model_versions("name = 'reviews'"):
        state[f"v{version.version}"] = dict(version.tags)
    return state


def _artifacts(client, run_id, path=None):
    for item in client.list_artifacts(run_id, path):
        if item.is_dir:
            yield from _artifacts(client, run_id, item.path)
        else:
            yield item.path


def tag_rows(db) -> dict[str, dict]:
    """The feedback tags as the sqlite file holds them: {id: record}, read without MLflow."""
    with sqlite3.connect(db) as connection:
        found = connection.execute("SELECT version, key, value FROM model_version_tags "
                                   "WHERE name = 'reviews' AND key LIKE 'feedback.%'").fetchall()
    return {key[len("feedback."):]: json.loads(value) | {"_version": str(version)} for version, key, value in found}
