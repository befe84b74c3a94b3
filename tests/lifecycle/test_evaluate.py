"""`promptomatix evaluate NAME@REF --data FILE`: a new MLflow run linked to the version, scored by
`mlflow.genai.evaluate` with the task type's metric as a scorer; bad input changes nothing."""

from __future__ import annotations

import litellm
import mlflow
import pytest
from mlflow import MlflowClient
from conftest import one_error_line
from lifecycle_fixtures import invoke, registry_state, rows, write_jsonl

from promptomatix.errors import LLMError
from promptomatix.lifecycle import evaluate, EvaluationReport
from promptomatix.scoring import stats


def test_evaluate_scores_a_version_in_a_new_run_linked_both_ways(make_versions, files):
    make_versions(3)
    client = MlflowClient()
    optimization_run = client.get_model_version("reviews", "1").run_id

    result = invoke("evaluate", "reviews@1", "--data", files["test"], "--quiet")
    assert result.exit_code == 0, result.output
    version = client.get_model_version("reviews", "1")
    run_id = version.tags["test_run_id"]
    interval = stats.wilson(3, 4)  # right/wrong rows: Wilson's interval
    assert result.stdout.strip() == (f"models:/reviews/1: accuracy 0.7500, 95% interval [{interval.low:.3f}, "
                                     f"{interval.high:.3f}] (Wilson), n=4 examples (data {files['test']}, "
                                     f"digest {version.tags['test_data_digest']}); run {run_id}")
    assert "[0.301, 0.954]" in result.stdout
    # the version side: score with its interval and rows, digest, run, metric, and the score kept per digest
    digest = version.tags["test_data_digest"]
    assert version.tags["test_score"] == "0.7500" and version.tags[f"test_score.{digest}"] == "0.7500"
    assert (version.tags["test_score_low"], version.tags["test_score_high"], version.tags["test_rows"]) == (
        f"{interval.low:.4f}", f"{interval.high:.4f}", "4")
    assert version.tags["test_metric"] == "accuracy" and version.tags["test_data"] == files["test"]
    # the run side: a new run next to the optimization run, tagged with the version
    run = client.get_run(run_id)
    assert run_id != optimization_run and run.info.status == "FINISHED"
    assert run.info.experiment_id == client.get_run(optimization_run).info.experiment_id
    assert run.data.tags["promptomatix.evaluated_model"] == "models:/reviews/1"
    assert run.data.tags["promptomatix.data_digest"] == digest
    assert run.data.tags["mlflow.runType"] == "genai_evaluate"  # it went through mlflow.genai.evaluate
    assert run.data.metrics["test_score"] == 0.75 and run.data.metrics["accuracy/mean"] == 0.75
    assert (run.data.metrics["test_score_low"], run.data.metrics["test_score_high"],
            run.data.metrics["test_score_rows"]) == pytest.approx((interval.low, interval.high, 4))
    assert run.data.tags["promptomatix.interval"] == "wilson"
    assert run.data.metrics["model_calls"] == 4  # one request per row, as the version's model counted them
    assert ("test", digest) in {(d.dataset.name, d.dataset.digest) for d in run.inputs.dataset_inputs}
    # per-example results as a table artifact, and one trace per example
    table = client.load_table(run.info.experiment_id, "evaluation/results.json", run_ids=[run_id])
    assert list(table["row"]) == [1, 2, 3, 4]
    assert list(table["review"]) == [e["review"] for e in rows(0, word_of=lambda i: "bad" if i % 2 == 0 else "good")]
    assert list(table["score"]) == [1.0, 1.0, 1.0, 0.0]
    assert list(table["predicted_sentiment"] == table["expected_sentiment"]) == [True, True, True, False]
    traces = mlflow.search_traces(locations=[run.info.experiment_id], run_id=run_id, return_type="list")
    assert len(traces) == 4


def test_evaluate_scores_with_the_metric_the_version_was_optimized_with(make_versions, files):
    """A version optimized with --metric weights is evaluated with those weights, not with its
    task type's metric; one registered before the metric was recorded keeps the task type's."""
    from promptomatix.scoring import Metric

    make_versions(3, metric_weights={"classification": 0.7, "brevity": 0.3})
    make_versions(3)
    client = MlflowClient()
    for key in ("metric", "metric_weights"):  # version 2 as registered before this record existed
        client.delete_model_version_tag("reviews", "2", key)

    weighted = evaluate("reviews@1", files["test"], show_progress=False)
    predicted = [str(r["predicted_sentiment"]) for r in weighted.rows]
    expected = [str(r["expected_sentiment"]) for r in weighted.rows]
    brevity = Metric("brevity", "brevity").score(predicted, expected).score
    assert weighted.metric == "weighted" and weighted.score == pytest.approx(0.7 * 0.75 + 0.3 * brevity)
    # per-row scores between 0 and 1: a bootstrap interval, said so in the summary and on the run
    per_row = [float(r["score"]) for r in weighted.rows]
    assert any(0 < v < 1 for v in per_row)
    assert weighted.estimate == stats.bootstrap(per_row) and weighted.estimate.method == "bootstrap"
    assert f"[{weighted.estimate.low:.3f}, {weighted.estimate.high:.3f}] (Bootstrap), n=4 examples" in \
        weighted.summary()
    assert client.get_run(weighted.run_id).data.tags["promptomatix.interval"] == "bootstrap"
    assert client.get_model_version("reviews", "1").tags["test_metric"] == "weighted"
    assert weighted.score != pytest.approx(0.75)

    plain = evaluate("reviews@2", files["test"], show_progress=False)
    assert (plain.metric, plain.score) == ("accuracy", 0.75)


def test_evaluate_by_alias_and_through_the_python_api(make_versions, files):
    make_versions(1, 4)
    MlflowClient().set_registered_model_alias("reviews", "champion", "2")
    report = evaluate("reviews@champion", files["test"], show_progress=False)
    assert isinstance(report, EvaluationReport)
    assert (report.name, report.version, report.metric, report.score, report.size) == ("reviews", "2", "accuracy", 1.0, 4)
    assert report.estimate == stats.wilson(4, 4)
    assert [r["score"] for r in report.rows] == [1.0] * 4
    # a second data set keeps the first one's score under its digest
    other = write_jsonl(files_dir(files) / "more.jsonl", rows(2, count=2))
    second = evaluate("models:/reviews/2", other, show_progress=False)
    tags = MlflowClient().get_model_version("reviews", "2").tags
    assert second.data_digest != report.data_digest and tags["test_data_digest"] == second.data_digest
    assert tags[f"test_score.{report.data_digest}"] == "1.0000" and tags[f"test_score.{second.data_digest}"] == "1.0000"


def files_dir(files):
    from pathlib import Path

    return Path(files["test"]).parent


@pytest.mark.parametrize(("ref", "needles"), [
    ("nobody@1", ["no registered model named 'nobody'"]),
    ("reviews@7", ["model 'reviews' has no version 7", "versions: 1"]),
    ("reviews@staging", ["model 'reviews' has no alias 'staging'"]),
    ("reviews", ["names no version", "<name>@<alias>"]),
    ("reviews-prompt@1", ["is a prompt, not a registered model"]),
])
def test_unknown_names_versions_and_aliases_are_one_line_and_change_nothing(make_versions, files, ref, needles):
    make_versions(2)
    before = registry_state()
    one_error_line(invoke("evaluate", ref, "--data", files["test"]), *needles)
    assert registry_state() == before


@pytest.mark.parametrize(("content", "needles"), [
    (None, ["missing.jsonl: no such file"]),
    ("", ["no examples in the data"]),
    ('{"review": "a good film 0", "sentiment": "positive"}\n{oops\n', ["line 2 is not valid JSON"]),
    ('{"review": "a good film 0", "sentiment": "positive"}\n{"review": "a bad film 1"}\n',
     ["example 2 lacks field 'sentiment'"]),
    ('{"text": "a good film 0", "label": "positive"}\n', ["example 1 lacks field 'review'"]),
    ('{"review": "a good film 0", "sentiment": "  "}\n', ["example 1 has an empty 'sentiment'"]),
])
def test_data_file_problems_are_one_line_and_change_nothing(make_versions, tmp_path, content, needles):
    make_versions(2)
    path = tmp_path / "missing.jsonl"
    if content is not None:
        path = tmp_path / "bad.jsonl"
        path.write_text(content)
    before = registry_state()
    one_error_line(invoke("evaluate", "reviews@1", "--data", str(path)), *needles)
    assert registry_state() == before


def test_a_model_failure_marks_the_run_failed_and_leaves_the_version_alone(make_versions, files, version_llm):
    make_versions(2)
    before = dict(MlflowClient().get_model_version("reviews", "1").tags)
    version_llm.rules.insert(0, ("film 2", litellm.AuthenticationError(message="invalid key", llm_provider="scripted",
                                                                    model="fake")))
    with pytest.raises(LLMError, match="authentication failed"):
        evaluate("reviews@1", files["test"], show_progress=False)
    assert MlflowClient().get_model_version("reviews", "1").tags == before
    (run,) = [r for r in mlflow.search_runs(output_format="list", search_all_experiments=True)
              if r.data.tags.get("promptomatix.evaluated_model")]
    assert run.info.status == "FAILED" and "authentication failed" in run.data.tags["promptomatix.error"]


def test_a_failure_quoting_a_key_leaves_it_redacted_on_the_run(make_versions, files, monkeypatch):
    # Not every failure comes through the model layer (which redacts its own errors): the run's
    # error tag is redacted where it is written.
    make_versions(1)
    secret = "sk-evaluate-" + "k" * 24
    monkeypatch.setenv("OPENAI_API_KEY", secret)

    def leak(*args, **kwargs):
        raise RuntimeError(f"provider said: invalid key {secret}")

    monkeypatch.setattr("promptomatix.lifecycle.version_evaluation._more_scores", leak)
    with pytest.raises(RuntimeError):
        evaluate("reviews@1", files["test"], show_progress=False)
    (run,) = [r for r in mlflow.search_runs(output_format="list", search_all_experiments=True)
              if r.data.tags.get("promptomatix.evaluated_model")]
    assert run.info.status == "FAILED"
    assert run.data.tags["promptomatix.error"] == "RuntimeError: provider said: invalid key ***"
