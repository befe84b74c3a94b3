"""What an optimization records, in one place: the artifact paths and tags of its MLflow run, the
tags of the version it registers, and the JSON form of prompts, task specs and candidates.

Writers (`tracking.recorder`, `tracking.mlflow_tracker`, `run.life`, `run.registration`,
`run.checkpoints`) and readers (`run.checkpoints.read_saved`, `run.lineage`, `lifecycle`, `compat`,
`serving`) name a path or a tag only through this module, so the two sides cannot drift apart.

This module imports no MLflow (backends use its conversions for their checkpoints, and backends
never import MLflow) and does no work at import time.
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping
from dataclasses import asdict

from promptomatix.scoring.evaluator import Evaluation
from promptomatix.task.candidates import Candidate
from promptomatix.task.prompt import Prompt
from promptomatix.task.spec import TaskSpec

# --- artifacts of the optimization run ----------------------------------------------------------
CONFIG_ARTIFACT = "config.yaml"  # the effective options, re-runnable with --config-from, read by --resume
SPEC_ARTIFACT = "task_spec.json"
READING_ARTIFACT = "task_reading.json"  # where each part of the spec came from, and intake's doubts
RUN_DOUBTS = "promptomatix.reading_doubts"  # what intake or the run found doubtful in the task's reading
NOT_REGISTERED = "promptomatix.not_registered"  # why a finished run registered no version
RAW_INPUT_ARTIFACT = "raw_input.txt"
INITIAL_PROMPT_ARTIFACT = "initial_prompt.txt"
OPTIMIZED_PROMPT_ARTIFACT = "optimized_prompt.txt"
PROGRAM_ARTIFACT = "program.json"
VALID_PREDICTIONS_ARTIFACT = "valid_predictions.json"
DATA_REJECTIONS_ARTIFACT = "data_rejections.json"
CHECKPOINT_DIR = "checkpoints"
CANDIDATES_TABLE = "candidates.json"  # the candidate table (`mlflow.log_table`), one row per candidate
# The optimized prompt's answer to each validation example, as `promptomatix evaluate` records
# its test examples (`lifecycle.version_evaluation.RESULTS_ARTIFACT`): inputs, expected, produced, score.
VALID_RESULTS_TABLE = "evaluation/valid_results.json"
TRAIN, VALID = "train", "valid"  # the data sets' names: artifact, dataset input
CHECK = "check"  # the user's rows held out from the search, scored once at the end (`data.check_count`)
DATASET_RUN = "promptomatix.run_id"  # an evaluation dataset's tag: the first optimization run that used its rows


def data_artifact(name: str) -> str:
    """The JSONL artifact of data set `name` (`TRAIN`, `VALID`)."""
    return f"data/{name}.jsonl"


def checkpoint_artifact(step: int) -> str:
    return f"{CHECKPOINT_DIR}/step_{step:03d}.json"


def candidate_artifact(step: int, index: int) -> str:
    return f"prompts/step_{step:02d}_candidate_{index:02d}.txt"


# --- metrics of the optimization run read back by `compare` --------------------------------------
# The winner's validation score's 95% interval and rows.
OPTIMIZED_LOW, OPTIMIZED_HIGH, OPTIMIZED_ROWS = "optimized_score_low", "optimized_score_high", "optimized_score_rows"
SYNTHETIC_ACCEPTED = "synthetic_accepted"  # logged by every run that wrote its own data

# --- the other params and metrics of the optimization run (written by `recorder`) ----------------
# The search's result: the start's and the winner's validation scores (the winner's interval is
# above), the winner's objective and length, the time, the answers that named no label.
INITIAL_SCORE_METRIC, OPTIMIZED_SCORE_METRIC = "initial_score", "optimized_score"
OPTIMIZED_OBJECTIVE, PROMPT_WORDS, SECONDS = "optimized_objective", "prompt_words", "seconds"
UNMAPPED_ANSWERS, OPTIMIZED_UNMAPPED_ANSWERS = "unmapped_answers", "optimized_unmapped_answers"
TOTAL_PREFIX = "total_"  # + the budget's counts (`Usage.as_metrics`): total_calls, total_tokens, total_cost, ...
FINAL_PREFIX = "final."  # + a final-evaluation metric's label: its score of the winner's validation answers
ANSWER_TOKENS = "answer_tokens"  # param: the room a free-text answer gets (`freetext.answer_tokens`)
VALID_FROM_TRAIN = "valid_from_train"  # param: training examples held out as validation too
ANSWER_WORDS, REFERENCE_WORDS = "answer_words_mean", "reference_words_mean"  # free text: the mean lengths
DATA_REJECTED = "data_rejected"  # the examples the data steps rejected; + "." + step name: by step
# The user's rows held out from the search (`CHECK`), scored once at the end: start and winner.
CHECK_ROWS, CHECK_INITIAL_SCORE, CHECK_SCORE = "check_rows", "check_initial_score", "check_score"
CHECK_SCORE_LOW, CHECK_SCORE_HIGH = "check_score_low", "check_score_high"
CHECK_GAIN, CHECK_GAIN_LOW, CHECK_GAIN_HIGH = "check_gain", "check_gain_low", "check_gain_high"
CHECK_P_VALUE = "check_p_value"
# What writing the synthetic data made and dropped (with `SYNTHETIC_ACCEPTED`); for label tasks
# (`data.selflabel`) how its labels agree, in all and per label (+ label).
SYNTHETIC_REJECTED, SYNTHETIC_DUPLICATES = "synthetic_rejected", "synthetic_duplicates"
SYNTHETIC_DROPPED_SHARE = "synthetic_dropped_share"
SYNTHETIC_WRITE_CALLS = "synthetic_write_calls"
SYNTHETIC_LABEL_AGREEMENT, SYNTHETIC_ASKED_LABEL_AGREEMENT = ("synthetic_label_agreement",
                                                              "synthetic_asked_label_agreement")
SYNTHETIC_LABEL_TEACHERS, SYNTHETIC_LABELS_PREFIX = "synthetic_label_teachers", "synthetic_labels."
SYNTHETIC_FAILED_BATCHES, SYNTHETIC_COPIES = "synthetic_failed_batches", "synthetic_copies"
SYNTHETIC_ECHOES, SYNTHETIC_LOOPS = "synthetic_echoes", "synthetic_loops"

# --- tags of the optimization run -----------------------------------------------------------------
RUN_TASK_TYPE = "promptomatix.task_type"
RUN_BACKEND = "promptomatix.backend"
RUN_MODEL_URI = "promptomatix.model_uri"
RUN_PROMPT_URI = "promptomatix.prompt_uri"
STOPPED_BY = "promptomatix.stopped_by"  # why the search ended: a limit of the budget, a hook, or done
SEARCH_COMPLETE = "search_complete"  # its value when the search ran its course
EVAL_METRICS_RUN_TAG = "promptomatix.eval_metrics"  # the final evaluation's metrics, on the run
SAMPLE_TAG = "promptomatix.sample"  # per data file, when only a sample of it was used: "1000 of 50000"
HOOK_ERROR_PREFIX = "promptomatix.hook_error."  # + hook name
RESUMED_FROM = "promptomatix.resumed_from"
RESUMED_BY = "promptomatix.resumed_by"
# Which process runs the optimization, for a person and for `--resume`'s take-over check:
# "pid N on host H, started <UTC time> (tick T after boot)" (the tick: the process's start in
# clock ticks since boot, from /proc, so that a pid used again by another process is told apart;
# `checkpoints.parse_process` also reads the older "<host> <pid> <tick>").
PROCESS = "promptomatix.process"
PARENT_RUN = "promptomatix.parent_run_id"
PARENT_VERSION = "promptomatix.parent_version"
FEEDBACK_USED = "promptomatix.feedback_used"

# --- tags of a registered version (model version; the prompt version gets the same) ----------------
RUN_ID = "run_id"
VALIDATION_SCORE = "validation_score"
# Its 95% interval, rows and data (a file, a file's split part, or "synthetic").
VALIDATION_LOW, VALIDATION_HIGH = "validation_score_low", "validation_score_high"
VALIDATION_ROWS, VALIDATION_DATA = "validation_rows", "validation_data"
INITIAL_SCORE = "initial_score"
BACKEND = "backend"
TASK_TYPE = "task_type"
COST = "cost"
TOKENS = "tokens"
PARENT_VERSION_TAG = "parent_version"
PARENT_RUN_ID_TAG = "parent_run_id"
EVAL_METRICS = "eval_metrics"  # the final evaluation's metrics, read by `evaluate`
# The metric `validation_score` was measured with: its name, and as JSON the weight of each part
# (`name:key` -> weight, summing to 1). Versions registered before it was recorded lack it.
METRIC = "metric"
METRIC_WEIGHTS = "metric_weights"
PROMPT_URI = "prompt_uri"  # on every model version promptomatix registers (or copies): its prompt version
MODEL_VERSION = "model_version"  # on the prompt version: its model version
COPIED_FROM = "copied_from"  # on a model version copied into another model (`promote --to-model`): its source URI
# Written by `evaluate` on a model version.
TEST_SCORE = "test_score"
TEST_DIGEST = "test_data_digest"
TEST_RUN = "test_run_id"
TEST_DATA = "test_data"
TEST_METRIC = "test_metric"
TEST_LOW, TEST_HIGH, TEST_ROWS = "test_score_low", "test_score_high", "test_rows"  # its 95% interval and n
TEST_SCORE_PREFIX = "test_score."  # + data digest: one score per data set a version was evaluated on


def version_tags(*, run_id: str, score: float, initial_score: float, backend: str, task_type: str, cost: float,
                 tokens: int, metric: Mapping[str, float], eval_metrics: tuple[str, ...] = (),
                 parent_version: str | None = None, parent_run_id: str | None = None,
                 interval: tuple[float, float, int] | None = None, data: str = "") -> dict[str, str]:
    """The tags a registered version carries (model version and prompt version alike); `metric`
    is what the scores were measured with (`metric_weights`), `interval` the validation score's
    95% interval and rows (low, high, n), `data` the validation data's name."""
    tags = {RUN_ID: run_id, VALIDATION_SCORE: f"{score:.4f}", INITIAL_SCORE: f"{initial_score:.4f}",
            BACKEND: backend, TASK_TYPE: task_type, COST: f"{cost:.6f}", TOKENS: str(tokens),
            METRIC: metric_label(metric), METRIC_WEIGHTS: json.dumps(dict(metric), sort_keys=True)}
    if parent_version is not None:
        tags |= {PARENT_VERSION_TAG: parent_version, PARENT_RUN_ID_TAG: parent_run_id or ""}
    if eval_metrics:
        tags[EVAL_METRICS] = ",".join(eval_metrics)
    if interval is not None:
        tags |= {VALIDATION_LOW: f"{interval[0]:.4f}", VALIDATION_HIGH: f"{interval[1]:.4f}",
                 VALIDATION_ROWS: str(interval[2])}
    if data:
        tags[VALIDATION_DATA] = data[:500]
    return tags


def metric_weights(parts: Mapping[str, float]) -> dict[str, float]:
    """`name:key` -> weight, normalized to sum 1: weights 7 and 3 score as 0.7 and 0.3 do."""
    total = sum(parts.values())
    return {spec: round(weight / total, 6) for spec, weight in sorted(parts.items())}


def metric_label(weights: Mapping[str, float]) -> str:
    """A metric as people read it: `classification:accuracy`, or `0.7*classification:accuracy +
    0.3*brevity:brevity` for a weighted one."""
    if len(weights) == 1:
        return next(iter(weights))
    return " + ".join(f"{weight:g}*{spec}" for spec, weight in weights.items())


def recorded_metric(tags: Mapping[str, str] | None) -> dict[str, float] | None:
    """The metric a version's `validation_score` was measured with (see `METRIC_WEIGHTS`), or None
    for a version registered before the metric was recorded (or with a tag that does not read)."""
    text = (tags or {}).get(METRIC_WEIGHTS)
    if not text:
        return None
    try:
        weights = json.loads(text)
    except ValueError:
        return None
    if not isinstance(weights, dict) or not weights:
        return None
    return {str(k): float(v) for k, v in weights.items()}


def eval_metric_specs(tags: Mapping[str, str] | None) -> list[str]:
    """The final-evaluation metrics a version names (`EVAL_METRICS`), empty when none."""
    return [s for s in ((tags or {}).get(EVAL_METRICS) or "").split(",") if s]


# --- the registered model's config (what serving reads back) ---------------------------------------
def model_config(prompt: Prompt, model: Mapping[str, object], prompt_uri: str | None = None,
                 program: dict | None = None) -> dict:
    """The pyfunc model's `model_config`: the prompt, the task model's settings (no credentials),
    the linked prompt version, the program. What is unset is left out: MLflow logs the config as
    run params too, and no param should read "None"."""
    config = {"prompt": prompt_to_dict(prompt), "model": dict(model), "prompt_uri": prompt_uri, "program": program}
    return {k: v for k, v in config.items() if v is not None}


def config_prompt(config: Mapping) -> Prompt | None:
    """The prompt of a registered model's config, None when it has none."""
    data = config.get("prompt")
    return prompt_from_dict(data) if data else None


def config_model(config: Mapping) -> dict:
    """The task model's settings of a registered model's config (empty when it has none)."""
    return dict(config.get("model") or {})


def config_program(config: Mapping) -> dict | None:
    return config.get("program")


# --- JSON forms ---------------------------------------------------------------------------------------
def prompt_to_dict(prompt: Prompt) -> dict:
    """Plain JSON data; `prompt_from_dict` reads it back (checkpoints, the registered model)."""
    return {"instruction": prompt.instruction, "input_fields": list(prompt.input_fields),
            "output_fields": list(prompt.output_fields), "demos": [dict(d) for d in prompt.demos],
            "single_line": prompt.single_line, "labels": list(prompt.labels),
            "calibration": list(prompt.calibration), "answer_tokens": prompt.answer_tokens}


def prompt_from_dict(data: Mapping) -> Prompt:
    return Prompt(data["instruction"], tuple(data["input_fields"]), tuple(data["output_fields"]),
                  tuple(dict(d) for d in data.get("demos", ())), bool(data.get("single_line", False)),
                  tuple(data.get("labels") or ()), tuple(float(x) for x in data.get("calibration") or ()),
                  int(data.get("answer_tokens") or 0))


def spec_to_dict(spec: TaskSpec) -> dict:
    return asdict(spec)


def spec_from_dict(data: Mapping) -> TaskSpec:
    return TaskSpec(**{**data, **{k: tuple(data.get(k) or ()) for k in ("input_fields", "output_fields", "labels")},
                       "sample_examples": tuple(data.get("sample_examples") or ())})


def evaluation_to_dict(evaluation: Evaluation) -> dict:
    e = evaluation
    return {"score": e.score, "per_example": list(e.per_example), "predictions": list(e.predictions),
            "scores": [list(s) if s is not None else None for s in e.scores], "unmapped": e.unmapped,
            "soft": e.soft, "uncredited": list(e.uncredited)}


def evaluation_from_dict(data: Mapping) -> Evaluation:
    return Evaluation(data["score"], tuple(data["per_example"]), tuple(data["predictions"]),
                      tuple(tuple(s) if s is not None else None for s in data.get("scores") or ()),
                      int(data.get("unmapped") or 0), data.get("soft"),
                      tuple(bool(c) for c in data.get("uncredited") or ()))


def candidate_to_dict(candidate: Candidate) -> dict:
    return {"prompt": prompt_to_dict(candidate.prompt), "objective": candidate.objective,
            "program": candidate.program, "evaluation": evaluation_to_dict(candidate.evaluation)}


def candidate_from_dict(data: Mapping) -> Candidate:
    return Candidate(prompt_from_dict(data["prompt"]), evaluation_from_dict(data["evaluation"]), data["objective"],
                     data.get("program"))


def rng_state(rng: random.Random) -> list:
    version, internal, gauss = rng.getstate()
    return [version, list(internal), gauss]


def set_rng_state(rng: random.Random, state: list) -> None:
    rng.setstate((state[0], tuple(state[1]), state[2]))
