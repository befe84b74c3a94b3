"""`promptomatix score NAME@ALIAS --data rows --out scored`: a registered version applied to a
table in batches, with at most `--concurrency` model calls in flight, a progress bar, output
that a rerun resumes without asking scored rows again, and the same answers through
`mlflow.pyfunc.spark_udf` on a local Spark session. A real sqlite store; the model is the
scripted fake (in this process) or the stub endpoint (which Spark's worker processes reach too)."""

from __future__ import annotations

import os
import shutil
import threading
import time

import litellm
import mlflow
import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import FAKE_MODEL, one_error_line, skip_or_fail

import promptomatix
from promptomatix.cli import cli
from promptomatix.config import ModelSettings
from promptomatix.errors import LLMError
from promptomatix.run.registration import register
from promptomatix.task.prompt import Prompt

WORDS = ("good", "dull", "good and bright", "slow", "weak")


def table(count: int) -> pd.DataFrame:
    """Rows `review <i>: the film was <word>` with an id column the model does not read."""
    return pd.DataFrame({"id": range(count),
                         "text": [f"review {i}: the film was {WORDS[i % len(WORDS)]}" for i in range(count)]})


def expected_label(text: str) -> str:
    return "positive" if "good" in text else "negative"


def label_of(prompt: str) -> str:
    return expected_label(prompt.rsplit("Text:", 1)[-1])


def register_version(name: str, settings: ModelSettings) -> str:
    """Register a sentiment prompt (text -> label) under `name` as promptomatix does, and give
    it the alias champion."""
    prompt = Prompt("Label the review as positive or negative.", ("text",), ("label",))
    with mlflow.start_run():
        done = register(name, prompt, settings, tags={"task_type": "classification"}, change="batch scoring",
                        task="Classify the sentiment of a review.")
    mlflow.MlflowClient().set_registered_model_alias(name, "champion", done.model_version)
    return f"{name}@champion"


class InFlight:
    """Counts the model calls in flight at once (the most seen) and every prompt asked."""

    def __init__(self, delay: float):
        self.delay = delay
        self.now = self.most = 0
        self.asked: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, prompt: str, params: dict) -> str:
        with self._lock:
            self.now += 1
            self.most = max(self.most, self.now)
            self.asked.append(prompt.rsplit("Text:", 1)[-1].split("\n", 1)[0].strip())
        time.sleep(self.delay)
        with self._lock:
            self.now -= 1
        return label_of(prompt)


@pytest.fixture
def scripted_version(tracking, fake_llm):
    return register_version("reviews", ModelSettings(model=FAKE_MODEL))


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_score_answers_every_row_in_batches_with_bounded_concurrency(scripted_version, fake_llm, tmp_path):
    rows = table(300)
    rows.to_csv(tmp_path / "rows.csv", index=False)
    calls = InFlight(delay=0.01)
    fake_llm.rules = [("Label:", calls)]

    result = invoke("score", scripted_version, "--data", str(tmp_path / "rows.csv"),
                    "--out", str(tmp_path / "scored.parquet"), "--batch-size", "64", "--concurrency", "4")

    assert result.exit_code == 0, result.output
    scored = pd.read_parquet(tmp_path / "scored.parquet")
    # the input table, in its order, with the answer added as the output field's column
    assert list(scored.columns) == ["id", "text", "label"]
    assert list(scored["id"]) == [str(i) for i in range(300)]  # CSV cells stay text
    assert list(scored["label"]) == [expected_label(t) for t in rows["text"]]
    # every row asked once, never more than 4 at a time (and more than 1: they do overlap)
    assert sorted(calls.asked) == sorted(rows["text"])
    assert 1 < calls.most <= 4
    # a progress bar on stderr, the summary on stdout, nothing left behind
    assert "scoring with models:/reviews/1" in result.stderr and "300/300" in result.stderr
    assert result.stdout.strip().startswith("scored 300 rows with models:/reviews/1 (300 asked) in 5 batches on local")
    assert not (tmp_path / "scored.parquet.parts").exists()


def test_a_job_that_dies_resumes_without_asking_scored_rows_again(scripted_version, fake_llm, tmp_path):
    rows = table(200)
    rows.to_json(tmp_path / "rows.jsonl", orient="records", lines=True)
    calls = InFlight(delay=0.0)

    def dies_after_120(prompt, params):
        if len(calls.asked) >= 120:
            return litellm.BadRequestError(message="the provider went away", model="fake", llm_provider="scripted")
        return calls(prompt, params)

    fake_llm.rules = [("Label:", dies_after_120)]
    with pytest.raises(LLMError, match="the provider went away"):
        promptomatix.score(scripted_version, tmp_path / "rows.jsonl", tmp_path / "scored.jsonl", batch_size=25,
                           concurrency=3, show_progress=False)
    parts = tmp_path / "scored.jsonl.parts"
    saved_batches = sorted(int(p.stem.split("-")[1]) for p in parts.glob("part-*.parquet"))
    saved = {t for b in saved_batches for t in rows["text"][b * 25:(b + 1) * 25]}
    assert 0 < len(saved) <= 120 and not (tmp_path / "scored.jsonl").exists()

    calls.asked.clear()
    fake_llm.rules = [("Label:", calls)]
    report = promptomatix.score(scripted_version, tmp_path / "rows.jsonl", tmp_path / "scored.jsonl",
                                batch_size=25, concurrency=3, show_progress=False)

    # the saved batches' rows are not asked again; every other row is asked once
    assert sorted(calls.asked) == sorted(set(rows["text"]) - saved)
    assert (report.resumed, report.asked) == (len(saved), 200 - len(saved))
    out = pd.read_json(tmp_path / "scored.jsonl", lines=True)
    assert list(out["id"]) == list(range(200))
    assert list(out["label"]) == [expected_label(t) for t in rows["text"]]
    assert not parts.exists()


@pytest.mark.parametrize("case, needle", [
    ("format", "must end in .parquet, .csv, .jsonl"),
    ("missing_file", "does not exist"),
    ("missing_column", "has no column 'text'"),
    ("clashing_column", "already has a column 'label'"),
    ("empty_value", "row 2 has no value in column 'text'"),
    ("unknown_alias", "has no alias 'gold'"),
    ("other_job", "holds the unfinished output of another scoring job"),
    ("batch_size", "--batch-size must be at least 1"),
    ("spark_master", "--spark-master applies to --spark"),
])
def test_bad_input_is_one_line_and_exit_2_before_any_call(scripted_version, fake_llm, tmp_path, case, needle):
    data, out, ref, extra = tmp_path / "rows.csv", tmp_path / "scored.csv", scripted_version, []
    rows = table(3)
    if case == "missing_column":
        rows = rows.rename(columns={"text": "review"})
    if case == "clashing_column":
        rows["label"] = "x"
    rows.to_csv(data, index=False)
    if case == "empty_value":
        data = tmp_path / "rows.jsonl"
        data.write_text('{"text": "a good film"}\n{"text": null}\n')
    if case == "format":
        out = tmp_path / "scored.xlsx"
    if case == "missing_file":
        data = tmp_path / "nowhere.parquet"
    if case == "unknown_alias":
        ref = "reviews@gold"
    if case == "other_job":
        (tmp_path / "scored.csv.parts").mkdir()
        (tmp_path / "scored.csv.parts" / "job.json").write_text('{"model_uri": "models:/other/1"}')
    if case == "batch_size":
        extra = ["--batch-size", "0"]
    if case == "spark_master":
        extra = ["--spark-master", "local[2]"]

    result = invoke("score", ref, "--data", str(data), "--out", str(out), *extra)

    one_error_line(result, needle)
    assert fake_llm.calls == [] and not out.exists()


def test_spark_udf_scores_the_same_as_the_local_engine(tracking, tmp_path, monkeypatch):
    try:
        import pyspark  # noqa: F401
    except ImportError:
        skip_or_fail("PySpark is not installed (pip install 'promptomatix[team]')")
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        skip_or_fail("Spark needs a Java runtime (Debian: default-jre-headless)")
    from benchmarks.stub import StubServer

    monkeypatch.setenv("OPENAI_API_KEY", "stub-key-for-a-local-endpoint")  # LiteLLM insists on one
    rows = table(300)
    rows.to_parquet(tmp_path / "rows.parquet", index=False)
    with StubServer(latency=0.0) as stub:
        # An HTTP endpoint, not the in-process fake: Spark's Python workers are other processes.
        ref = register_version("reviews", ModelSettings(model="openai/stub-model", api_base=stub.url))
        local = promptomatix.score(ref, tmp_path / "rows.parquet", tmp_path / "local.parquet", batch_size=50,
                                   concurrency=4, show_progress=False)
        asked_locally = stub.requests
        on_spark = promptomatix.score(ref, tmp_path / "rows.parquet", tmp_path / "spark.csv", batch_size=50,
                                      concurrency=2, spark=True, show_progress=False)

    assert (local.engine, on_spark.engine) == ("local", "spark")
    assert asked_locally == 300 and stub.requests == 600  # each engine asked every row once
    by_local = pd.read_parquet(tmp_path / "local.parquet")
    by_spark = pd.read_csv(tmp_path / "spark.csv")
    assert list(by_local["label"]) == [expected_label(t) for t in rows["text"]]
    pd.testing.assert_frame_equal(by_spark, by_local)
