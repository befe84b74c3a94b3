"""An optimization's data, before the search: the task as read (by intake, or where the run
starts from), the user's rows split into train, validation and held-out check rows (`read_and_split`),
a classification's labels from them; then the data steps, the evaluator, and the examples the
search runs on, the user's, those of the start or synthetic ones (`prepare`). What it records
is written through `recorder`."""

from __future__ import annotations

import dataclasses
import logging

from promptomatix import data
from promptomatix.config import OptimizationConfig
from promptomatix.data.loaders import check_fields
from promptomatix.data.selflabel import self_label, write_inputs
from promptomatix.data.steps import DataSteps
from promptomatix.data.synthetic import generate_examples
from promptomatix.errors import DataError
from promptomatix.intake import FROM_DATA, FROM_FLAG, FROM_ORIGIN, FROM_REQUEST, FROM_RESUMED, read_task, Reading
from promptomatix.models.lm import LM
from promptomatix.run.job import Job, Models, spent_before
from promptomatix.run.planning import check_calls, data_size, validation_rows
from promptomatix.scoring import build_metric
from promptomatix.scoring.evaluator import Evaluator
from promptomatix.task.prompt import Prompt
from promptomatix.task.spec import Example, TaskSpec
from promptomatix.task.types import get_task_type
from promptomatix.tracking import recorder
from promptomatix.tracking.record import spec_to_dict
from promptomatix.tracking.tracer import traced_outputs

log = logging.getLogger(__name__)

Rows = tuple[list[Example], list[Example], list[Example]]  # train, validation, held-out check


def read_and_split(job: Job, models: Models) -> tuple[Reading, Rows | None]:
    """The task as read (`reading`) and, with the user's data, its train, validation and
    held-out check rows (`_user_split`, `_held_out`), a classification's labels taken from them
    (`data_labels`). None for the rows without the user's data."""
    config = job.config
    reading = _reading(job, models)
    if not job.user_data:
        return reading, None
    spec = reading.spec
    train, valid, check = _user_split(spec, job.user_data, job.valid_data, config)
    left = models.meter.remaining_calls()
    train, valid = _held_out(train, valid, config, None if left is None else left - check_calls(len(check)),
                             spec.output_fields[0] if spec.task_type == "classification" else None)
    return data_labels(reading, train + valid, config.train_data or ""), (train, valid, check)


def prepare(job: Job, models: Models, reading: Reading, rows: Rows | None) -> tuple[Evaluator, Rows]:
    """The evaluator, and the train and validation examples (the user's `rows` through the data
    steps, those of the start, or synthetic) with the user's rows held out for the check at the
    end, all logged."""
    config, head, spec = job.config, job.head, reading.spec
    train, valid, check = rows if rows else (None, None, [])
    steps = DataSteps(config.data_steps, spec, options=config.plugin_options)
    if job.user_data and steps and train is not None and valid is not None:  # the user's rows, split above
        train, valid, check = steps.apply(train, "train"), steps.apply(valid, "valid"), steps.apply(check, "check")
    recorder.record_reading(reading, config.backend)
    evaluator = task_evaluator(config, spec, models.task_lm, job.show_progress)
    if train is None and head.data:  # the data of the version started from, or of the killed run
        train, valid = head.data
    elif train is None:
        with models.phase("synthetic data", {"task": spec.description, "size": config.synthetic_data_size}) as span:
            train, valid = _synthetic_data(config, spec, job.start(spec), models.optimizer_lm, evaluator, steps,
                                           job.show_progress)
            traced_outputs(span, {"train": train, "valid": valid})
    if steps:
        recorder.record_rejections(steps)
    assert train is not None and valid is not None  # the user's, the start's or synthetic: one of them
    if spec.task_type == "classification":
        valid = data.interleaved(valid, spec.output_fields[0])
    recorder.record_data(job.name, spec, train, valid, check)
    return evaluator, (train, valid, check)


def _reading(job: Job, models: Models) -> Reading:
    """Intake's reading of the raw input; for a run that starts from a version or resumes one,
    that version's or run's task spec."""
    if job.head.spec:
        where = FROM_ORIGIN if job.head.origin else FROM_RESUMED
        return Reading(job.head.spec, (("type", where), ("fields", where), ("labels", where)))
    with spent_before("intake finished"), models.phase("intake", {"raw_input": job.config.raw_input}) as span:
        reading = read(job.config, models.optimizer_lm, job.user_data)
        traced_outputs(span, spec_to_dict(reading.spec))
        return reading


def read(config: OptimizationConfig, lm: LM, user_data: list[Example] | None) -> Reading:
    """Intake with the config's overrides, field names picked from the user's columns if any."""
    return read_task(config.raw_input, lm, task_type=config.task_type, input_fields=config.input_fields,
                     output_fields=config.output_fields, columns=list(user_data[0]) if user_data else None,
                     labels=config.labels, labels_from=FROM_FLAG, template=config.intake_prompt)


def data_labels(reading: Reading, examples: list[Example], source: str) -> Reading:
    """A classification's labels from the user's data, not the model's guesses; data of one label
    is a DataError (nothing to tell apart, nothing to learn). Labels the request named that the
    data does not use are a doubt."""
    spec = reading.spec
    if spec.task_type != "classification":
        return reading
    values = sorted({e[spec.output_fields[0]] for e in examples})
    if len(values) < 2:
        raise DataError(f"{source}: every example has the label {values[0]!r}; a classification "
                        f"needs examples of at least two labels")
    named = spec.labels if reading.source("labels") == FROM_REQUEST else ()
    data_reading = reading.with_labels(values if len(values) <= 20 else (), FROM_DATA)
    if named and {n.lower() for n in named} != {v.lower() for v in values}:
        return dataclasses.replace(data_reading, doubts=(*data_reading.doubts, (
            f"the request names the labels {', '.join(named)}; your data's are {', '.join(values[:20])}: "
            f"the data's are used")))
    return data_reading


def task_evaluator(config: OptimizationConfig, spec: TaskSpec, task_lm: LM, show_progress: bool) -> Evaluator:
    """The task model scored by the task type's metric, or the weighted one `--metric` names;
    without the user's data, calibrating label prompts from content-free inputs.

    Why: batch calibration assumes the rows are what the prompt will answer. Synthetic rows are
    not (short, two in three positive for sentiment, labelled by the task model itself), and a
    bias read from them is often the wrong one. Raw-input runs on the embedded model, their
    finalists with demos, accuracy on real test rows uncalibrated / calibrated on a label-balanced
    part of the synthetic rows / from content-free inputs / on the test rows themselves (the
    bound): SST-2, three runs, 12 prompts, 150 rows: 0.852 / 0.823 / 0.878 / 0.896; AG News, one
    run, 4 prompts, 100 rows: 0.362 / 0.585 / 0.595 / 0.652."""
    task_type = get_task_type(spec.task_type)
    metric = build_metric(task_type.metric, task_type.score_key, config.metric_weights, config.plugin_options,
                          judge_model=config.judge_model or config.optimizer_model.model)
    return Evaluator(task_lm, metric, num_threads=config.num_threads, show_progress=show_progress,
                     synthetic=not config.train_data)


def _synthetic_data(config: OptimizationConfig, spec: TaskSpec, start: Prompt, optimizer_lm: LM,
                    evaluator: Evaluator, steps: DataSteps, show_progress: bool) -> tuple[list[Example], list[Example]]:
    """Train and validation examples written for the task (see `data.selflabel` for label
    prompts, `data.synthetic` for the others), with what was made and dropped logged."""
    accept = (lambda e: steps(e, "synthetic")) if steps else None
    size = data_size(config, bool(start.labels), len(spec.labels))
    with spent_before("the synthetic data was written"):
        if start.labels:
            seeds = [e for e in spec.sample_examples if e.get(spec.output_fields[0]) in start.labels]
            inputs, asked, written = write_inputs(spec, optimizer_lm, size, seeds=seeds, show_progress=show_progress,
                                                  accept=accept, template=config.inputs_prompt)
            train, valid, labelled = self_label(spec, inputs, asked, start, evaluator, train_ratio=config.train_ratio,
                                                seed=config.seed)
            train = seeds + train  # the user's own examples: demos to draw, never validation
            recorder.record_self_labelled(written, labelled)
            return train, valid
        examples, report = generate_examples(spec, optimizer_lm, size, batch_size=config.batch_size,
                                             show_progress=show_progress, accept=accept,
                                             template=config.synthetic_prompt)
    recorder.record_synthetic(report)
    # The user's own examples are the starting demos: keep them out of validation.
    samples = [e for e in examples if e in spec.sample_examples]
    train, valid = data.split([e for e in examples if e not in samples], config.train_ratio, config.seed)
    return samples + train, valid


def _user_split(spec: TaskSpec, user_data: list[Example], valid_data: list[Example] | None,
                config: OptimizationConfig) -> Rows:
    """The user's train, validation and held-out check rows (`data.check_count`, taken from the
    training file)."""
    sources = (config.train_data or "", config.valid_data or "")  # set whenever there are user rows
    train = check_fields(_sampled(user_data, sources[0], config.seed), spec.fields, sources[0])
    valid = None if valid_data is None else check_fields(_sampled(valid_data, sources[1], config.seed),
                                                         spec.fields, sources[1])
    count = min(data.check_count(len(train) + len(valid or ()), config.check_rows), max(0, len(train) - 2))
    train, check = data.check_split(train, count, config.seed)
    if valid is not None:
        return train, valid, check
    if len(train) < 2:
        raise DataError(f"{config.train_data}: one example cannot be split into train and validation; "
                        f"add examples or pass --valid-data")
    return *data.split(train, config.train_ratio, config.seed), check


def _held_out(train: list[Example], valid: list[Example], config: OptimizationConfig, calls_left: int | None,
              label_field: str | None) -> tuple[list[Example], list[Example]]:
    """A validation set too small to choose by, topped up with training examples
    (`planning.validation_rows`), said in the log and on the run (param `valid_from_train`)."""
    count = validation_rows(config, len(valid), len(train), calls_left)
    if count:
        log.warning("%d validation examples are too few to choose between prompts: %d training examples are "
                    "held out as validation too (%d left to draw demos from)", len(valid), count, len(train) - count)
        recorder.record_valid_from_train(count)
    return data.hold_out(train, valid, count, config.seed, label_field)


def _sampled(examples: list[Example], source: str, seed: int) -> list[Example]:
    """`data.sample` of the examples of `source`, said in the log and on the run (tag
    `promptomatix.sample.<file name>`: "1000 of 50000") when it is a sample."""
    used = data.sample(examples, seed)
    if len(used) < len(examples):
        note = f"{len(used)} of {len(examples)}"
        log.warning("%s: using a random sample of %s examples (seed %d; the limit is %d)", source, note, seed,
                    data.SAMPLE_LIMIT)
        recorder.record_sample(source, note)
    return used
