"""User data at the edges that must work: 50,000 rows (a stated sample is used, so memory and
time stay bounded), and labels written as numbers."""

from __future__ import annotations

import json
import time

import mlflow
import pytest
from mlflow import MlflowClient
from reliability_support import RAW_INPUT, FaultyLLM, install

import promptomatix
from promptomatix import data


@pytest.fixture
def reliable():
    return install("reliable", FaultyLLM(rate=0.0))


def test_50000_rows_are_optimized_on_a_stated_sample(tracking, reliable, tmp_path, caplog):
    rows = tmp_path / "big.csv"
    rows.write_text("review,sentiment\n" + "".join(f"a {'good' if i % 2 else 'bad'} film number {i},"
                                                   f"{'positive' if i % 2 else 'negative'}\n" for i in range(50_000)))
    started = time.monotonic()

    result = promptomatix.optimize(raw_input=RAW_INPUT, model=reliable, train_data=str(rows), train_ratio=0.9,
                                   iterations=1, candidates=1, max_calls=2000, show_progress=False, name="big")

    assert time.monotonic() - started < 120
    run = MlflowClient().get_run(result.run_id)
    assert run.data.tags["promptomatix.sample.big.csv"] == f"{data.SAMPLE_LIMIT} of 50000"
    assert "big.csv: using a random sample of 1000 of 50000 examples" in caplog.text
    # the sample, less the 100 rows held out for the check at the end (`data.check_count`)
    assert result.train_size + result.valid_size + result.extra["held_out"].n == data.SAMPLE_LIMIT
    logged = [mlflow.artifacts.load_text(f"runs:/{result.run_id}/data/{part}.jsonl") for part in ("train", "valid", "check")]
    assert sum(len(text.splitlines()) for text in logged) == data.SAMPLE_LIMIT


def test_numeric_labels_are_labels(tracking, reliable, tmp_path):
    rows = tmp_path / "numeric.jsonl"
    rows.write_text("".join(json.dumps({"review": f"a {'good' if i % 2 else 'bad'} film {i}", "sentiment": i % 2}) + "\n"
                            for i in range(8)))

    result = promptomatix.optimize(raw_input=RAW_INPUT, model=reliable, train_data=str(rows), iterations=1,
                                   candidates=1, show_progress=False, name="numeric")

    assert result.spec.labels == ("0", "1")
    assert result.model_version == "1"
