"""`promptomatix evaluate` on MLflow's GenAI pages: the rows a version was evaluated on are an
MLflow evaluation dataset (the Datasets page), and the run is an evaluation of the version's
logged model (the Evaluation runs page, the model's metrics and traces)."""

from __future__ import annotations

import mlflow
from mlflow import MlflowClient
from mlflow.genai.datasets import search_datasets

from promptomatix.data.evalsets import DATA_DIGEST, evaluation_dataset, ROW
from promptomatix.lifecycle import evaluate
from promptomatix.lifecycle.version_evaluation import logged_model_id


def test_an_evaluation_is_a_genai_version_evaluation_of_the_version_on_an_evaluation_dataset(make_versions, files):
    make_versions(3)
    client = MlflowClient()
    version = client.get_model_version("reviews", "1")
    model_id = logged_model_id(version)
    assert model_id and model_id.startswith("m-")

    report = evaluate("reviews@1", files["test"], show_progress=False)
    run = client.get_run(report.run_id)
    assert run.data.tags["mlflow.runType"] == "genai_evaluate"
    # the run evaluated the version's logged model: linked as a model input, metrics on the model
    assert model_id in {m.model_id for m in run.inputs.model_inputs}
    logged = mlflow.get_logged_model(model_id)
    assert any(m.run_id == report.run_id for m in logged.metrics or [])
    traces = mlflow.search_traces(locations=[run.info.experiment_id], run_id=report.run_id, return_type="list")
    assert traces and all(t.info.trace_metadata.get("mlflow.modelId") == model_id for t in traces)
    # the rows: an evaluation dataset of the run's experiment, an input of the run
    datasets = search_datasets(experiment_ids=[run.info.experiment_id], filter_string="name LIKE 'reviews v1%'")
    (dataset,) = datasets
    assert dataset.tags[DATA_DIGEST] == report.data_digest
    assert dataset.tags["promptomatix.evaluated_model"] == "models:/reviews/1"
    frame = dataset.to_df()
    assert len(frame) == report.size
    assert sorted(frame["inputs"].map(lambda i: i["review"])) == sorted(r["review"] for r in report.rows)
    managed = [d.dataset for d in run.inputs.dataset_inputs if d.dataset.source_type == "mlflow_evaluation_dataset"]
    assert [d.name for d in managed] == [dataset.name]

    again = evaluate("reviews@1", files["test"], show_progress=False)  # the same rows: listed once
    assert again.run_id != report.run_id
    assert len(search_datasets(experiment_ids=[run.info.experiment_id], filter_string="name LIKE 'reviews v1%'")) == 1


def test_rows_become_records_with_inputs_expectations_and_their_row(tracking):
    experiment = mlflow.set_experiment("rows").experiment_id
    rows = [{"review": "a good film", "sentiment": "positive"}, {"review": "a bad film", "sentiment": "negative"}]
    dataset = evaluation_dataset("reviews train", rows, ["review"], ["sentiment"], experiment_id=experiment)
    records = dataset.to_df().sort_values("inputs", key=lambda c: c.map(lambda i: i["review"]))
    assert list(records["inputs"]) == [{"review": "a bad film"}, {"review": "a good film"}]
    assert list(records["expectations"]) == [{"sentiment": "negative"}, {"sentiment": "positive"}]
    assert sorted(t[ROW] for t in records["tags"]) == ["0", "1"]
    other = evaluation_dataset("reviews train", rows[:1], ["review"], ["sentiment"], experiment_id=experiment)
    assert other.dataset_id != dataset.dataset_id  # other rows, another dataset


def test_the_rows_an_optimization_ran_on_are_evaluation_datasets_of_its_experiment(make_versions):
    """The Datasets page lists the data a run searched on, named after the prompt, each record a
    row with its inputs and expectations, tagged with the run."""
    from promptomatix.tracking import record

    make_versions(1)
    run = MlflowClient().get_run(MlflowClient().get_model_version("reviews", "1").run_id)
    found = {d.name: d for d in search_datasets(experiment_ids=[run.info.experiment_id],
                                                filter_string="name LIKE 'reviews · %'")}
    assert {"reviews · train", "reviews · valid"} <= set(found)
    for part in ("train", "valid"):
        logged = mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/data/{part}.jsonl").splitlines()
        dataset = found[f"reviews · {part}"]
        assert len(dataset.to_df()) == len(logged) and dataset.tags[record.DATASET_RUN] == run.info.run_id
