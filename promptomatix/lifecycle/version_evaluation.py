"""Scoring a registered version on a data set, in a new MLflow run linked to the version.

In: a version reference (`name@alias`, `name@3`, `models:/name/3`) and data (a path that
`load_examples` reads, or a list of example dicts).
Out: an `EvaluationReport`: the score with its 95% interval (`stats.score_estimate`: Wilson
when every per-row score is 0 or 1, the bootstrap otherwise), its rows and the data's name and
digest. The run holds the per-example table (`evaluation/results.json`), the data
(`data/test.jsonl` and a dataset input), the metrics `test_score`, `test_score_low`,
`test_score_high`, `test_score_rows` and `model_calls` (requests the version's model sent), the
tag `promptomatix.interval` (wilson or bootstrap), and tags naming the version;
`mlflow.genai.evaluate` runs the version's pyfunc model as `predict_fn` with the task type's
metric module wrapped as a `@scorer`, naming the version's logged model (`model_id`: MLflow links
the run, its traces and metrics to it), and the rows are also an MLflow evaluation dataset
(`data.evalsets`), an input of the run, which MLflow's Datasets page lists.
The metric is the version's final-evaluation metric (its tag `eval_metrics`, from the run's
`eval_metrics` or its task type's), else the metric its validation score was measured with
(`record.METRIC_WEIGHTS`: the task type's, or the run's `--metric` weights), else, for a
version registered before that was recorded, its task type's; with several, the first gives
`test_score` and each is logged as `test_score.<name>`. The version gets the tags `test_score`,
`test_score_low`, `test_score_high`, `test_rows`, `test_data_digest`, `test_run_id`,
`test_data`, `test_metric` and `test_score.<digest>`.

`prepare` does every check (version, data, fields) without writing, so a caller can validate
several evaluations before running any.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from promptomatix.errors import ConfigError, DataError, PromptomatixError, RegistryError
from promptomatix.lifecycle import versions
from promptomatix.scoring import judges, stats
from promptomatix.task.spec import Example
from promptomatix.tracking import record
from promptomatix.tracking.failure import record_failure
from promptomatix.tracking.mlflow_tracker import log_results, logged_setting

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion

    from promptomatix.task.types import TaskType

RESULTS_ARTIFACT = "evaluation/results.json"
# Tags of an evaluation run: the model version it scored (`models:/name/3`) and the data's digest.
EVALUATED_MODEL = "promptomatix.evaluated_model"
DATA_DIGEST = "promptomatix.data_digest"
INTERVAL_METHOD = "promptomatix.interval"  # how the score's interval was computed: wilson or bootstrap


@dataclass(frozen=True)
class EvaluationReport:
    """What `evaluate` measured: the mean per-example `metric` over `size` examples, with its 95%
    interval (`estimate`), on data `data_source` (digest `data_digest`)."""

    name: str
    version: str
    metric: str
    score: float
    size: int
    data_digest: str
    data_source: str
    run_id: str
    rows: tuple[dict, ...]
    estimate: stats.Estimate
    calls: int | None = None  # model requests sent while scoring (None: the model does not count them)

    @property
    def model_uri(self) -> str:
        return f"models:/{self.name}/{self.version}"

    def summary(self) -> str:
        """`models:/reviews/1: accuracy 0.7500, 95% interval [0.301, 0.954] (Wilson), n=4 examples
        (data test.jsonl, digest 1a2b3c4d); run <id>`."""
        interval = self.estimate
        return (f"{self.model_uri}: {self.metric} {self.score:.4f}, 95% interval [{interval.low:.3f}, "
                f"{interval.high:.3f}] ({interval.method.capitalize()}), n={self.size} examples "
                f"(data {self.data_source}, digest {self.data_digest}); run {self.run_id}")


@dataclass(frozen=True)
class Prepared:
    """A checked evaluation, ready to run: nothing has been written yet."""

    version: ModelVersion
    task_type: TaskType
    input_fields: tuple[str, ...]
    output_fields: tuple[str, ...]
    examples: tuple[Example, ...]
    digest: str
    source: str


def evaluate(ref: str, data: str | Sequence[Example], *, show_progress: bool = True) -> EvaluationReport:
    """Score the version `ref` names on `data` (see the module docstring for what is recorded).
    Raises RegistryError / DataError before anything is written; LLMError if the model fails,
    after marking the run FAILED (the version's tags are then left as they were)."""
    return run(prepare(versions.resolve(ref), data), show_progress=show_progress)


def prepare(version, data: str | Sequence[Example]) -> Prepared:
    """Check that `version` is a promptomatix model and that `data` has its fields."""
    from promptomatix.data.loaders import check_fields, load_examples
    from promptomatix.task.types import get_task_type

    task_name = (version.tags or {}).get(record.TASK_TYPE)
    if not task_name:
        raise RegistryError(f"version {version.version} of {version.name!r} has no task_type tag; "
                            f"it was not registered by promptomatix")
    try:
        task_type = get_task_type(task_name)
    except ConfigError as exc:
        raise RegistryError(f"version {version.version} of {version.name!r}: {exc}") from None
    inputs, outputs = model_fields(version)
    if isinstance(data, str):
        source, examples = data, load_examples(data)
    else:
        source, examples = "<examples>", [dict(e) for e in data]
        if not examples:
            raise DataError("no examples in the data")
    examples = check_fields(examples, inputs + outputs, source)
    return Prepared(version, task_type, inputs, outputs, tuple(examples), digest(examples), source)


def digest(examples: Sequence[Example]) -> str:
    """MLflow's dataset digest of the rows (the same one a run's dataset input shows)."""
    import pandas as pd

    # mlflow.data defines its dataset constructors at import time (setattr), unseen by mypy
    return mlflow.data.from_pandas(pd.DataFrame(list(examples))).digest  # type: ignore[attr-defined]


def model_fields(version) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Input and output fields from the logged model's signature."""
    from mlflow.models import get_model_info

    uri = f"models:/{version.name}/{version.version}"
    try:
        signature = get_model_info(uri).signature
    except (MlflowException, OSError) as exc:  # OSError: the artifacts are gone
        raise RegistryError(f"{uri}: cannot read the logged model: {str(exc).splitlines()[0]}") from None
    if signature is None or signature.outputs is None:
        raise RegistryError(f"{uri} has no input/output signature; it was not registered by promptomatix")
    return tuple(signature.inputs.input_names()), tuple(signature.outputs.input_names())


def run(prepared: Prepared, *, show_progress: bool = True) -> EvaluationReport:
    """Run a prepared evaluation: a new MLflow run, then the version's tags."""
    version = prepared.version
    uri = f"models:/{version.name}/{version.version}"
    task = prepared.task_type
    metrics = final_metrics(version, task)
    label, metric = next(iter(metrics.items()))
    model = mlflow.pyfunc.load_model(uri)
    experiment_id = experiment_of(version)
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"evaluate {version.name} v{version.version}",
                          nested=mlflow.active_run() is not None) as active:
        mlflow.set_tags({EVALUATED_MODEL: uri, "promptomatix.model_name": version.name,
                         "promptomatix.model_version": str(version.version),
                         DATA_DIGEST: prepared.digest, record.RUN_TASK_TYPE: task.name})
        mlflow.log_params({"promptomatix.eval.data": prepared.source[:500],
                           "promptomatix.eval.size": len(prepared.examples), "promptomatix.eval.metric": label})
        try:
            rows, score = score_rows(prepared, model, metric, show_progress)
            _more_scores(prepared, rows, metrics)
        except BaseException as exc:
            record_failure(exc)
            raise
        estimate = stats.score_estimate([float(r["score"]) for r in rows])
        calls = _calls(model)
        mlflow.log_metrics({"test_score": score, "test_score_low": estimate.low, "test_score_high": estimate.high,
                            "test_score_rows": estimate.n, **({"model_calls": calls} if calls is not None else {})})
        mlflow.set_tag(INTERVAL_METHOD, estimate.method)
        if task.name == "classification":  # an answer naming no label is served empty, never guessed
            mlflow.log_metric("unmapped_answers", sum(1 for r in rows if any(
                r[f"predicted_{f}"] in ("", "None", "nan") for f in prepared.output_fields)))
        _log_data(prepared)
        run_id = active.info.run_id
    client = MlflowClient()
    for key, value in {record.TEST_SCORE: f"{score:.4f}", record.TEST_LOW: f"{estimate.low:.4f}",
                       record.TEST_HIGH: f"{estimate.high:.4f}", record.TEST_ROWS: str(estimate.n),
                       record.TEST_DIGEST: prepared.digest, record.TEST_RUN: run_id,
                       record.TEST_DATA: prepared.source[:500], record.TEST_METRIC: label,
                       record.TEST_SCORE_PREFIX + prepared.digest: f"{score:.4f}"}.items():
        client.set_model_version_tag(version.name, str(version.version), key, value)
    return EvaluationReport(version.name, str(version.version), label, score, len(prepared.examples),
                            prepared.digest, prepared.source, run_id, tuple(rows), estimate, calls)


def _calls(model) -> int | None:
    """The model requests a loaded promptomatix pyfunc model has sent (its usage meter), or None."""
    try:
        meter = getattr(model.unwrap_python_model(), "meter", None)
    except (AttributeError, MlflowException):
        return None
    return meter.snapshot().calls if meter is not None else None


def final_metrics(version, task) -> dict:
    """The final-evaluation metrics of `version` by label (see the module docstring)."""
    from promptomatix.scoring import eval_metrics, Metric, metric_from_weights

    specs = record.eval_metric_specs(version.tags) or list(task.eval_metrics)
    if specs:
        return eval_metrics(specs, task.metric, task.score_key, judge_model=_judge_model(version, specs))
    weights = record.recorded_metric(version.tags)
    if weights is None:  # registered before versions recorded their metric: scored as it was then
        return {task.score_key: Metric(task.metric, task.score_key)}
    metric = metric_from_weights(weights, judge_model=_judge_model(version, list(weights)))
    return {metric.score_key: metric}


def _judge_model(version, specs: list[str]) -> str | None:
    """The judge of MLflow scorer metrics (`mlflow:...`) as the version's optimization had it:
    its `--judge-model`, else its optimizer model (as `optimize` defaults it); None when no
    metric is a judge's or the run is gone (MLflow's default judge then)."""
    if not any(spec.startswith(f"{judges.FAMILY}:") for spec in specs) or not version.run_id:
        return None
    try:
        params = MlflowClient().get_run(version.run_id).data.params
    except MlflowException:
        return None
    return (logged_setting(params, "judge_model") or logged_setting(params, "optimizer_model.model")
            or logged_setting(params, "optimizer_model"))


def _more_scores(prepared: Prepared, rows: list[dict], metrics: dict) -> None:
    """Each final-evaluation metric's mean over the answers already in `rows` (no model call),
    logged as `test_score.<name>` and added to the rows as `score.<name>`."""
    if len(metrics) < 2:
        return
    outputs = prepared.output_fields
    predictions = [{f: str(r[f"predicted_{f}"]) for f in outputs} for r in rows]
    prompt = _prompt_of(prepared.version)
    for label, metric in metrics.items():
        scored = metric.score_records(predictions, prepared.examples, outputs, prompt=prompt,
                                      input_fields=prepared.input_fields)
        mlflow.log_metric(f"test_score.{label}", scored.score)
        for row, value in zip(rows, scored.per_example):
            row[f"score.{label}"] = value


def _prompt_of(version) -> str:
    """The version's prompt text for metrics that ask for it ("" when it cannot be read)."""
    try:
        return versions.prompt_text(version)
    except (PromptomatixError, MlflowException):
        return ""


def score_rows(prepared: Prepared, model, metric, show_progress: bool) -> tuple[list[dict], float]:
    """mlflow.genai.evaluate over the examples; per-example rows and their mean score."""
    import pandas as pd
    from mlflow.genai.scorers import scorer

    inputs, outputs = prepared.input_fields, prepared.output_fields
    answers: dict[str, dict] = {}  # inputs as JSON -> prediction (also serves MLflow's trial call)
    failures: list[Exception] = []
    lock = threading.Lock()  # metric modules and the failure list are shared by MLflow's threads

    @mlflow.trace(name="predict")
    def predict_fn(**row):
        key = json.dumps(row, sort_keys=True)
        if key not in answers:
            try:
                frame = model.predict(pd.DataFrame([{f: row[f] for f in inputs}]))
            except Exception as exc:
                with lock:
                    failures.append(exc)
                raise
            answers[key] = {f: str(frame.iloc[0][f]) for f in outputs}
        return answers[key]

    prompt = _prompt_of(prepared.version) if metric.asks_prompt else ""

    @scorer(name=metric.score_key)
    def task_metric(inputs: dict, outputs: dict | None, expectations: dict) -> float:
        predicted = {f: str((outputs or {}).get(f, "")) for f in expectations}
        with lock:
            return metric.score_records([predicted], [{**inputs, **expectations}], list(expectations),
                                        prompt=prompt).per_example[0]

    data = [{"inputs": {f: e[f] for f in inputs}, "expectations": {f: e[f] for f in outputs},
             "tags": {"promptomatix.row": str(i)}} for i, e in enumerate(prepared.examples)]
    result = _genai_evaluate(data, predict_fn, task_metric, logged_model_id(prepared.version), failures, show_progress)
    scores = _row_scores(prepared, result.result_df, metric.score_key, len(data))
    predictions = [answers[json.dumps({f: e[f] for f in inputs}, sort_keys=True)] for e in prepared.examples]
    rows = log_results(prepared.examples, predictions, [scores[i] for i in range(len(prepared.examples))],
                       inputs, outputs, RESULTS_ARTIFACT)
    return rows, sum(r["score"] for r in rows) / len(rows)


def _genai_evaluate(data: list[dict], predict_fn, task_metric, model_id: str | None, failures: list[Exception],
                    show_progress: bool):
    """`mlflow.genai.evaluate`, the model's own error raised where `predict_fn` failed (MLflow
    wraps or swallows it)."""
    # MLflow prints a banner when done: send it to stderr (or nowhere), stdout is the command's;
    # its progress bar (stderr) only with show_progress.
    quiet = contextlib.nullcontext() if show_progress else contextlib.redirect_stderr(io.StringIO())
    try:
        with contextlib.redirect_stdout(sys.stderr if show_progress else io.StringIO()), quiet:
            result = mlflow.genai.evaluate(data=data, scorers=[task_metric], predict_fn=predict_fn, model_id=model_id)
    except MlflowException:
        if failures:  # MLflow's trial call of predict_fn failed: report the model's error
            raise failures[0] from None
        raise
    if failures:
        raise failures[0]
    return result


def _row_scores(prepared: Prepared, frame, score_key: str, rows: int) -> dict[int, float]:
    """Each row's score from MLflow's result table (`frame`, None when it could not build one),
    by row number; an error when a row has none (its scorer failed)."""
    if frame is None:
        raise PromptomatixError(f"MLflow's evaluation of {rows} rows returned no result table (no traces were "
                                f"recorded); the scores cannot be read")
    column = f"{score_key}/value"
    scores: dict[int, float] = {}
    for tags, value in zip(frame["tags"], frame[column] if column in frame else [None] * len(frame)):
        if value is None or value != value:  # missing or NaN: the scorer failed on this row
            raise PromptomatixError(f"evaluation of {prepared.version.name} v{prepared.version.version}: "
                                    f"the metric gave no score for example {int(tags['promptomatix.row']) + 1}")
        scores[int(tags["promptomatix.row"])] = float(value)
    return scores


def _log_data(prepared: Prepared) -> None:
    """The rows as a JSONL artifact, a run input (`test`, with the rows' digest) and an MLflow
    evaluation dataset (the Datasets page's), also an input of the run."""
    import pandas as pd

    from promptomatix.data.evalsets import evaluation_dataset

    frame = pd.DataFrame(list(prepared.examples))
    mlflow.log_text("\n".join(json.dumps(e, ensure_ascii=False) for e in prepared.examples) + "\n",
                    record.data_artifact("test"))
    # mlflow.data defines its dataset constructors at import time (setattr), unseen by mypy
    mlflow.log_input(mlflow.data.from_pandas(frame, name="test", source=None),  # type: ignore[attr-defined]
                     context="evaluation")
    version = prepared.version
    active = mlflow.active_run()
    assert active is not None  # called inside the evaluation's run (`run`)
    dataset = evaluation_dataset(f"{version.name} v{version.version} · test {_base_name(prepared.source)}",
                                 prepared.examples, prepared.input_fields, prepared.output_fields,
                                 experiment_id=active.info.experiment_id,
                                 tags={EVALUATED_MODEL: f"models:/{version.name}/{version.version}",
                                       "promptomatix.data": prepared.source[:500]})
    if dataset is not None:
        mlflow.log_input(dataset, context="evaluation")


def _base_name(source: str) -> str:
    import os

    return os.path.basename(source.rstrip("/")) or source


def logged_model_id(version) -> str | None:
    """The id of the MLflow logged model behind a registered version (`m-...`), which an
    evaluation names (`mlflow.genai.evaluate(model_id=...)`) so that MLflow links the run, its
    traces and its metrics to the model: its `model_id`, or its source `models:/m-...`."""
    found = getattr(version, "model_id", None)
    if found:
        return found
    source = getattr(version, "source", "") or ""
    name = source.removeprefix("models:/").split("/")[0]
    return name if source.startswith("models:/m-") and name else None


def experiment_of(version) -> str | None:
    """The experiment of the version's optimization run, so evaluations sit next to it."""
    active = mlflow.active_run()
    if active is not None:
        return active.info.experiment_id
    try:
        return MlflowClient().get_run(version.run_id).info.experiment_id if version.run_id else None
    except MlflowException:  # the run was deleted: use the current experiment
        return None
