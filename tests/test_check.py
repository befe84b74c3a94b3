"""The check on rows the search never saw: a share of the user's data held out from the search,
the starting prompt and the winner scored on it once at the end, row by row, within the budget."""

from __future__ import annotations

import json

import mlflow
import pytest
from conftest import FAKE_MODEL
from mlflow import MlflowClient

import promptomatix
from promptomatix.data import check_count
from promptomatix.errors import ConfigError


def _reviews(tmp_path, rows: int) -> str:
    path = tmp_path / "reviews.jsonl"
    path.write_text("".join(json.dumps({"review": f"a {'good' if i % 2 else 'bad'} film {i}",
                                        "sentiment": "positive" if i % 2 else "negative"}) + "\n"
                            for i in range(rows)))
    return str(path)


def _optimize(tmp_path, rows: int, **options):
    defaults = dict(iterations=1, candidates=2, num_threads=1, show_progress=False)
    return promptomatix.optimize(raw_input="Classify the sentiment of a movie review as positive or negative",
                                 model=FAKE_MODEL, train_data=_reviews(tmp_path, rows), **(defaults | options))


def test_the_check_takes_a_fifth_of_forty_rows_or_more_within_bounds():
    assert [check_count(n) for n in (39, 40, 65, 300, 2000)] == [0, 10, 13, 60, 100]
    assert check_count(30, wanted=12) == 12 and check_count(10, wanted=12) == 6 and check_count(65, wanted=0) == 0


def test_the_start_and_the_winner_are_compared_on_rows_the_search_never_saw(tracking, scripted, tmp_path):
    result = _optimize(tmp_path, 50, max_calls=120)

    held_out = result.extra["held_out"]
    assert held_out.n == 10 and (held_out.a.value, held_out.b.value) == (0.0, 1.0)  # the scripted start never answers
    assert held_out.test == "mcnemar-exact" and held_out.better
    run = MlflowClient().get_run(result.run_id)
    assert run.data.metrics["check_rows"] == 10 and run.data.metrics["check_gain"] == 1.0
    assert run.data.metrics["check_gain_low"] > 0.5 and run.data.metrics["total_calls"] <= 120
    names = {d.dataset.name: d.tags[0].value for d in run.inputs.dataset_inputs}
    assert names == {"train": "training", "valid": "validation", "check": "testing"}
    check = {json.dumps(r, sort_keys=True) for r in _lines(result.run_id, "data/check.jsonl")}
    searched = {json.dumps(r, sort_keys=True) for name in ("train", "valid") for r in _lines(result.run_id, f"data/{name}.jsonl")}
    assert len(check) == 10 and not check & searched and len(check | searched) == 50
    note = run.data.tags["mlflow.note.content"]
    assert "* **Held-out rows:** 0.000 [0.000, 0.278] -> 1.000 [0.722, 1.000], +1.000" in note
    assert "on 10 held-out rows the search never saw" in MlflowClient().get_model_version(
        result.model_name, result.model_version).description


def test_the_check_is_paid_for_even_when_the_search_spends_the_budget(tracking, scripted, tmp_path):
    result = _optimize(tmp_path, 50, max_calls=60, iterations=3, candidates=4)
    run = MlflowClient().get_run(result.run_id)
    assert run.data.tags["promptomatix.stopped_by"] == "max_calls"
    assert result.extra["held_out"].n == 10 and run.data.metrics["total_calls"] <= 60


@pytest.mark.parametrize("rows, options", [(39, {}), (50, {"check_rows": 0})])
def test_no_check_below_forty_rows_or_when_asked_for_none(tracking, scripted, tmp_path, rows, options):
    result = _optimize(tmp_path, rows, **options)
    assert result.extra["held_out"] is None
    assert "check_rows" not in mlflow.get_run(result.run_id).data.metrics
    assert result.train_size + result.valid_size == rows


def test_the_plan_counts_the_checks_calls_and_a_negative_size_is_refused(tracking, scripted, tmp_path):
    plan = promptomatix.plan(raw_input="Classify", model=FAKE_MODEL, train_data=_reviews(tmp_path, 65), max_calls=250,
                             output_fields=["sentiment"])
    assert plan.steps[-1] == ("the check: starting prompt and winner on 13 held-out rows", 26)
    assert plan.total <= 250
    with pytest.raises(ConfigError, match="check rows must be 0 or more"):
        promptomatix.plan(raw_input="Classify", model=FAKE_MODEL, check_rows=-1)


def _lines(run_id: str, path: str) -> list[dict]:
    return [json.loads(line) for line in mlflow.artifacts.load_text(f"runs:/{run_id}/{path}").splitlines() if line]
