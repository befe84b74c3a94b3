"""What an optimization writes on its MLflow run, step by step: the options and where it starts
from, the task as read, the data and what was dropped from it, the winner and its answers, the
totals, the held-out check, and the version it registers. The run's life (its start, name,
take-over, failure and end) is `run.life`'s.

Every tag, param, metric and artifact name comes from `record` (or, for what they log, from
`tracking` and `freetext`), where the readers find it too.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Sequence

import mlflow
import yaml

from promptomatix.backends.base import OptimizationTask, Outcome
from promptomatix.config import OptimizationConfig
from promptomatix.config.flat import to_options
from promptomatix.data.selflabel import InputReport, LabelReport
from promptomatix.data.steps import DataSteps
from promptomatix.data.synthetic import GenerationReport
from promptomatix.intake import Reading, reading_to_dict
from promptomatix.models.usage import Usage
from promptomatix.run import checkpoints, registration
from promptomatix.run.job import Job
from promptomatix.scoring import prompt_words, stats
from promptomatix.scoring.evaluator import Evaluation
from promptomatix.scoring.freetext import Degenerate
from promptomatix.task.spec import Example, TaskSpec
from promptomatix.task.types import get_task_type
from promptomatix.tracking import mlflow_tracker, record
from promptomatix.tracking.mlflow_tracker import log_config, log_examples

log = logging.getLogger(__name__)


def record_start(job: Job) -> None:
    """What the run records before any model call: the options first (with them saved, a run
    killed from here on can be resumed), the process, and where it starts from."""
    config, origin = job.config, job.head.origin
    mlflow.set_tag(record.PROCESS, checkpoints.this_process())  # a resume is refused while it lives
    mlflow.log_text(yaml.safe_dump(to_options(config), sort_keys=True, allow_unicode=True), record.CONFIG_ARTIFACT)
    log_config(config.to_params(job.backend.options))
    mlflow.log_params(registration.model_params(config.task_model))
    mlflow.log_text(config.raw_input, record.RAW_INPUT_ARTIFACT)
    if origin:
        mlflow.set_tags({record.PARENT_RUN: origin.run_id, record.PARENT_VERSION: origin.uri})
        if origin.feedback:
            mlflow.set_tag(record.FEEDBACK_USED, ",".join(f.id for f in origin.feedback))


def record_sample(source: str, note: str) -> None:
    """That only a sample of `source`'s examples is used: `note` ("1000 of 50000")."""
    mlflow.set_tag(f"{record.SAMPLE_TAG}.{os.path.basename(source)[:200]}", note)


def record_valid_from_train(count: int) -> None:
    mlflow.log_param(record.VALID_FROM_TRAIN, count)


def record_reading(reading: Reading, backend: str) -> None:
    """The task spec as read, where each part of it came from, its type and the backend."""
    spec = reading.spec
    mlflow.log_dict(record.spec_to_dict(spec), record.SPEC_ARTIFACT)
    mlflow.log_dict(reading_to_dict(reading), record.READING_ARTIFACT)
    mlflow.set_tags({record.RUN_TASK_TYPE: spec.task_type, record.RUN_BACKEND: backend})


def record_self_labelled(written: InputReport, labelled: LabelReport) -> None:
    """What writing a label task's inputs made and dropped, and how their labels agree."""
    mlflow.log_metrics({record.SYNTHETIC_ACCEPTED: written.written, record.SYNTHETIC_REJECTED: written.rejected,
                        record.SYNTHETIC_DUPLICATES: written.duplicates,
                        record.SYNTHETIC_WRITE_CALLS: written.calls,
                        record.SYNTHETIC_DROPPED_SHARE: written.dropped_share,
                        record.SYNTHETIC_LABEL_AGREEMENT: labelled.agreement,
                        record.SYNTHETIC_ASKED_LABEL_AGREEMENT: labelled.asked_agreement,
                        record.SYNTHETIC_LABEL_TEACHERS: labelled.teachers,
                        **{f"{record.SYNTHETIC_LABELS_PREFIX}{k}": v for k, v in labelled.per_label.items()}})


def record_synthetic(report: GenerationReport) -> None:
    """What writing the other tasks' examples made and dropped."""
    mlflow.log_metrics({record.SYNTHETIC_ACCEPTED: report.accepted, record.SYNTHETIC_REJECTED: report.rejected,
                        record.SYNTHETIC_DUPLICATES: report.duplicates,
                        record.SYNTHETIC_FAILED_BATCHES: report.failed_batches,
                        record.SYNTHETIC_COPIES: report.copies, record.SYNTHETIC_ECHOES: report.echoes,
                        record.SYNTHETIC_LOOPS: report.loops, record.SYNTHETIC_DROPPED_SHARE: report.dropped_share})


def record_rejections(steps: DataSteps) -> None:
    """Rejections by step as metrics (`data_rejected` in all, `data_rejected.<step>`), and each
    rejected example with its reason as `data_rejections.json`."""
    mlflow.log_metrics({f"{record.DATA_REJECTED}.{name}" if name else record.DATA_REJECTED: count
                        for name, count in steps.counts().items()})
    # log_dict writes any JSON value (here a list); MLflow annotates its argument as a dict
    mlflow.log_dict([dataclasses.asdict(r) for r in steps.rejections],  # type: ignore[arg-type]
                    record.DATA_REJECTIONS_ARTIFACT)
    if steps.rejections:
        log.info("data steps rejected %d examples (%s)", len(steps.rejections),
                 ", ".join(f"{n}: {c}" for n, c in steps.counts().items() if n))


def record_data(name: str, spec: TaskSpec, train: list[Example], valid: list[Example],
                check: list[Example]) -> None:
    """The data sets as artifacts, and as MLflow evaluation datasets, which its Datasets page
    lists, named after the prompt."""
    fields = (spec.input_fields, spec.output_fields)
    log_examples(train, record.TRAIN, "training", fields=fields, title=name)
    log_examples(valid, record.VALID, "validation", fields=fields, title=name)
    if check:
        log_examples(check, record.CHECK, "testing", fields=fields, title=name)


def record_answer_tokens(tokens: int) -> None:
    mlflow.log_param(record.ANSWER_TOKENS, tokens)


def record_hook_error(hook: str, error: str) -> None:
    mlflow.set_tag(f"{record.HOOK_ERROR_PREFIX}{hook}", error[:5000])


def record_prompts(task: OptimizationTask, outcome: Outcome) -> None:
    """The starting and the best prompt, the best program, and the best candidate's validation
    answers, as artifacts."""
    best, valid = outcome.best, task.valid
    mlflow.log_text(task.start.template, record.INITIAL_PROMPT_ARTIFACT)
    mlflow.log_text(best.prompt.template, record.OPTIMIZED_PROMPT_ARTIFACT)
    if best.program is not None:
        mlflow.log_dict(best.program, record.PROGRAM_ARTIFACT)
    mlflow.log_text(json.dumps([{"example": e, "prediction": p, "score": s} for e, p, s in
                                zip(valid, best.evaluation.predictions, best.evaluation.per_example)],
                               ensure_ascii=False, indent=1), record.VALID_PREDICTIONS_ARTIFACT)


def record_final(final: dict[str, float], specs: Sequence[str]) -> None:
    """The final evaluation's scores (`final.<metric>`) and the metrics it names."""
    mlflow.log_metrics({f"{record.FINAL_PREFIX}{label}": score for label, score in final.items()})
    mlflow.set_tag(record.EVAL_METRICS_RUN_TAG, ",".join(specs))


def record_valid_results(spec: TaskSpec, scored: Sequence[Example], evaluation: Evaluation) -> None:
    """The best candidate's answer to each validation row it was scored on, as a table."""
    mlflow_tracker.log_results(scored, evaluation.predictions, evaluation.per_example, spec.input_fields,
                         spec.output_fields, record.VALID_RESULTS_TABLE)


def record_totals(outcome: Outcome, interval: stats.Estimate, usage: Usage, seconds: float, stopped_by: str) -> None:
    best = outcome.best
    mlflow.set_tag(record.STOPPED_BY, stopped_by)
    mlflow.log_metrics({record.INITIAL_SCORE_METRIC: outcome.initial_score, record.OPTIMIZED_SCORE_METRIC: best.score,
                        record.OPTIMIZED_LOW: interval.low, record.OPTIMIZED_HIGH: interval.high,
                        record.OPTIMIZED_ROWS: interval.n,
                        record.OPTIMIZED_OBJECTIVE: best.objective,
                        record.PROMPT_WORDS: prompt_words(best.prompt.template),
                        record.SECONDS: seconds, record.UNMAPPED_ANSWERS: usage.unmapped_answers,
                        record.OPTIMIZED_UNMAPPED_ANSWERS: best.evaluation.unmapped,
                        **usage.as_metrics(record.TOTAL_PREFIX)})


def record_check(checked: stats.Comparison, initial: Evaluation, final: Evaluation) -> None:
    """The start and the winner on the held-out check rows, compared row by row."""
    mlflow.log_metrics({record.CHECK_ROWS: checked.n, record.CHECK_INITIAL_SCORE: initial.score,
                        record.CHECK_SCORE: final.score,
                        record.CHECK_SCORE_LOW: checked.b.low, record.CHECK_SCORE_HIGH: checked.b.high,
                        record.CHECK_GAIN: checked.difference.value, record.CHECK_GAIN_LOW: checked.difference.low,
                        record.CHECK_GAIN_HIGH: checked.difference.high, record.CHECK_P_VALUE: checked.p_value})


def record_answers(found: Degenerate, answer_words: float | None, reference_words: float | None) -> None:
    """The winner's degenerate free-text answers, and the mean length of its answers and of the
    references."""
    mlflow.log_metrics({**found.as_metrics(), record.ANSWER_WORDS: answer_words or 0.0,
                        record.REFERENCE_WORDS: reference_words or 0.0})


def record_doubts(doubts: Sequence[str]) -> None:
    mlflow.set_tag(record.RUN_DOUBTS, "; ".join(doubts)[:5000])


def record_not_registered(why: str) -> None:
    mlflow.set_tag(record.NOT_REGISTERED, why)


def register(job: Job, run, task: OptimizationTask, outcome: Outcome, usage: Usage, change: str,
             final: dict[str, float], interval: stats.Estimate) -> registration.Registered:
    """The best prompt in both registries, tagged with what it was scored on and with; the
    feedback it was given, resolved by it."""
    config, origin, best = job.config, job.head.origin, outcome.best
    task_type = get_task_type(task.spec.task_type)
    registered = registration.register(
        job.name, best.prompt, config.task_model, program=best.program, change=change, task=task.spec.description,
        tags=record.version_tags(
            run_id=run.info.run_id, score=best.score, initial_score=outcome.initial_score, backend=config.backend,
            task_type=task.spec.task_type, cost=usage.cost, tokens=usage.tokens,
            metric=record.metric_weights(task.metric.weights),
            eval_metrics=tuple(config.eval_metrics or task_type.eval_metrics) if final else (),
            interval=(interval.low, interval.high, interval.n), data=validation_source(config),
            parent_version=origin.version if origin else None, parent_run_id=origin.run_id if origin else None),
    )
    mlflow.set_tags({record.RUN_MODEL_URI: registered.model_uri, record.RUN_PROMPT_URI: registered.prompt_uri})
    if origin and origin.feedback:
        from promptomatix.lifecycle.feedback import resolve_feedback

        resolve_feedback(origin.ref, [f.id for f in origin.feedback], by=registered.model_uri)
    return registered


def validation_source(config: OptimizationConfig) -> str:
    """What the validation rows are, as a person reads it: the validation file, the training
    file's split part, or synthetic (the model's own examples)."""
    if config.valid_data:
        return config.valid_data
    return f"{config.train_data} (split)" if config.train_data else "synthetic"
