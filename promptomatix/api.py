"""`optimize`: the whole job, from raw input to a registered prompt, in one MLflow run."""

from __future__ import annotations

import dataclasses
import contextlib
import json
import logging
import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import mlflow
import yaml

from promptomatix import checkpoints, data, lineage, preflight, record, registry, stats, storeretry, tracking
from promptomatix.tracing import RunTracer, traced_outputs
from promptomatix.backends import get_backend
from promptomatix.backends.base import Backend, OptimizationTask, Outcome
from promptomatix.callbacks import HOOKS, Callback, CallbackList, ProgressPrinter
from promptomatix.config import OptimizationConfig
from promptomatix.config_options import config_from_options, to_options
from promptomatix.data.loaders import check_fields, load_examples
from promptomatix.data.steps import DataSteps
from promptomatix.data.selflabel import self_label, write_inputs
from promptomatix.data.synthetic import generate_examples
from promptomatix.errors import BudgetExhausted, ConfigError, DataError, PluginError, PromptomatixError
from promptomatix.evaluation import Evaluator
from promptomatix.failures import reason_of, record_failure
from promptomatix.freetext import Degenerate, answer_tokens, degenerate, mean_words
from promptomatix.intake import (FROM_DATA, FROM_FLAG, FROM_ORIGIN, FROM_REQUEST, FROM_RESUMED, Reading, announce,
                                 answer_doubts, parse_markers, read_task, reading_to_dict,
                                 starting_instruction)
from promptomatix.models.cache import default_cache
from promptomatix.models.lm import CHARS_PER_TOKEN, LM, check_model, context_tokens
from promptomatix.models.usage import Usage, UsageMeter
from promptomatix.options import call_with_options
from promptomatix.planning import Plan, check_calls, data_size, too_few_rows, validation_rows
from promptomatix.planning import plan as plan_calls
from promptomatix.prompts import Prompt
from promptomatix.scoring import Objective, build_metric, eval_metrics, prompt_words
from promptomatix.signals import Terminated, stops_on_signals
from promptomatix.spec import Example, TaskSpec
from promptomatix.summary import description
from promptomatix.tasks import get_task_type
from promptomatix.tracking import MLflowTracker, check_store, log_config, log_examples

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OptimizationResult:
    """What an optimization produced, with where MLflow keeps it."""

    prompt: str
    initial_prompt: str
    initial_score: float
    optimized_score: float
    spec: TaskSpec
    run_id: str
    experiment_id: str
    usage: Usage
    seconds: float
    train_size: int
    valid_size: int
    model_name: str | None = None
    model_version: str | None = None
    prompt_name: str | None = None
    prompt_version: str | None = None
    extra: dict = field(default_factory=dict)

    @property
    def model_uri(self) -> str | None:
        return f"models:/{self.model_name}/{self.model_version}" if self.model_version else None

    @property
    def prompt_uri(self) -> str | None:
        return f"prompts:/{self.prompt_name}/{self.prompt_version}" if self.prompt_version else None


@dataclass(frozen=True)
class Head:
    """What an optimization starts from besides its config: nothing for a new one; for
    `from_`, a registered version (`origin`); for `resume`, an unfinished run (`saved`)."""

    origin: lineage.Origin | None = None
    saved: checkpoints.Saved | None = None

    @property
    def spec(self) -> TaskSpec | None:
        return self.origin.spec if self.origin else self.saved.spec if self.saved else None

    @property
    def data(self) -> tuple[list[Example], list[Example]] | None:
        if self.origin:
            return self.origin.train, self.origin.valid
        if self.saved and self.saved.train is not None and self.saved.valid is not None:
            return self.saved.train, self.saved.valid
        return None


@stops_on_signals  # a script's run ended by `timeout` is KILLED with the reason, not left RUNNING
def optimize(config: OptimizationConfig | None = None, *, from_: str | None = None, resume: str | None = None,
             config_from: str | None = None, callbacks: Sequence[Callback] = (), show_progress: bool = True,
             backend: Backend | str | None = None, **options) -> OptimizationResult:
    """Optimize a prompt for the task in `config` (or build the config from keyword options:
    `optimize(raw_input="Classify ...", synthetic_data_size=10)`).

    `from_="name@version"` starts from a registered version instead of the raw input: its
    prompt, task spec and data, with its open feedback given to the optimizer model; the new
    version records its parent and resolves those comments. Options default to that version's
    run's, and those given here override them. `config_from=run_id` likewise starts from the
    options an earlier optimization logged.
    `resume=run_id` goes on with an optimization that was killed, from its last completed step,
    in a new run (the killed one is marked KILLED); it takes no other options.

    Runs inside the active MLflow run when there is one (as under `mlflow run`), else starts one.
    Raises a `UsageError` subclass for bad input and `LLMError` when the model fails; the run is
    then marked FAILED with the reason in the tag `promptomatix.error`, and nothing is registered.
    """
    if isinstance(backend, str):  # a backend by name is an option like any other
        options["backend"], backend = backend, None
    storeretry.install()  # calls to a tracking server survive a flaky network, safe to repeat (storeretry.py)
    check_store()  # a store that cannot be opened is one clear line, before any work
    config, head = _configured(config, from_=from_, resume=resume, config_from=config_from, options=options)
    job = _checked_job(config, head, backend, callbacks, show_progress)
    owned = mlflow.active_run() is None  # else the caller's run: the caller ends it
    run = mlflow.active_run() or mlflow.start_run(experiment_id=_run_experiment(config, job.name, resume, owned))
    tracer = RunTracer(run.info.run_id, run.info.experiment_id) if config.traces else None
    try:
        if owned:  # a caller's own run keeps the name and description the caller gave it
            mlflow.set_tag(tracking.RUN_NAME_TAG, tracking.run_name(job.name, config.backend))
        if resume:
            _take_over(resume, run.info.run_id, job.name if config.register else None)
        result = _run(job, run, tracer)
        if owned:
            mlflow.set_tags({tracking.RUN_NAME_TAG: tracking.run_name(job.name, config.backend, result.model_version),
                             tracking.RUN_NOTE_TAG: description(result)})
        if tracer:  # written in the background meanwhile (registration overlaps): all stored now
            tracer.close()
    except BaseException as exc:
        _fail(exc, run, owned, tracer)
        raise
    if owned:
        mlflow.end_run()
    return result


def _configured(config: OptimizationConfig | None, *, from_: str | None, resume: str | None,
                config_from: str | None, options: dict) -> tuple[OptimizationConfig, Head]:
    """The run's config and where it starts from: a killed run's options (`resume`, which takes
    no others), or the options given over a version's (`from_`) or an earlier run's
    (`config_from`); checked against the registries before any write."""
    head = Head()
    if resume:
        if from_ or config_from or options or config is not None:
            raise ConfigError("--resume goes on with the options of the run it resumes: give no other options")
        saved = checkpoints.load(resume)
        head, config = Head(saved=saved), config_from_options(**saved.options)
    else:
        if from_:
            if config_from:
                raise ConfigError("--from takes its options from the version's run: drop --config-from")
            head = Head(origin=lineage.load(from_))
        config = _merged(config, options, head.origin.options if head.origin else None, config_from)
    return preflight.checked(config), head  # the registries' names, before any write


def _checked_job(config: OptimizationConfig, head: Head, backend: Backend | None, callbacks: Sequence[Callback],
                 show_progress: bool) -> _Job:
    """The job, everything about it checked that can be before any work (models, context, the
    registered name, hooks, the backend's options), the user's data loaded."""
    for settings in {config.task_model, config.optimizer_model}:
        check_model(settings)
    check_fits_context(config)
    name = config.name or default_name(config.raw_input)
    if config.register:  # before any work: a taken name would waste the whole run
        registry.check_name(name)
    hooks = [*callbacks, *(_make_hook(hook, config.plugin_options) for hook in config.hooks)]
    chosen = backend if isinstance(backend, Backend) else call_with_options(get_backend(config.backend),
                                                                            config.plugin_options)
    chosen.check(config)
    note = chosen.upfront_note(config)
    if note:
        log.warning("%s", note)
    reload = config.train_data and head.data is None  # a resumed run's data is the data it logged
    user_data = load_examples(config.train_data, config.field_map) if reload and config.train_data else None
    valid_data = load_examples(config.valid_data, config.field_map) if reload and config.valid_data else None
    return _Job(config, name, head, chosen, hooks, show_progress, user_data, valid_data)


def _run_experiment(config: OptimizationConfig, name: str, resume: str | None, owned: bool) -> str | None:
    """The experiment of a run this call starts: a resumed run's, the one `config.experiment`
    names, or the registered name's when none was chosen (not Default); None inside `mlflow run`
    (MLFLOW_RUN_ID), whose run has its experiment already."""
    if owned and resume and not os.environ.get("MLFLOW_RUN_ID"):
        return mlflow.MlflowClient().get_run(resume).info.experiment_id
    if owned and not os.environ.get("MLFLOW_RUN_ID") and (config.experiment or not _experiment_chosen()):
        return _experiment_id(config.experiment or name)
    return None


def _fail(exc: BaseException, run, owned: bool, tracer: RunTracer | None) -> None:
    """A run that raised `exc`: its traces stored, the reason recorded, and a run this call owns
    ended KILLED (Ctrl-C, SIGTERM: with the resume command) or FAILED."""
    if tracer:  # the calls up to the failure are what one looks at first; an exit waits little
        tracer.close(timeout=10)
    if isinstance(exc, KeyboardInterrupt):  # Ctrl-C, or SIGTERM/SIGHUP (signals.Terminated)
        hint = f"run {run.info.run_id} ended KILLED; resume with: promptomatix optimize --resume {run.info.run_id}"
        if isinstance(exc, Terminated):
            exc.detail = hint
        reason = str(exc) if isinstance(exc, Terminated) else f"interrupted (Ctrl-C); {hint}"
    else:
        reason = reason_of(exc)
    record_failure(reason)
    if owned:
        mlflow.end_run("KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED")


def check_fits_context(config: OptimizationConfig) -> None:
    """A ConfigError, before any work, when the raw input cannot fit the context of the
    optimizer model that reads it (intake), with room left for its answer."""
    model = config.optimizer_model
    room = context_tokens(model.model) - model.max_tokens
    tokens = int(len(config.raw_input) / CHARS_PER_TOKEN)
    if tokens > room:
        raise ConfigError(f"raw input is about {tokens} tokens ({len(config.raw_input)} characters); model "
                          f"{model.model!r} reads at most {room} tokens besides its answer: shorten the task "
                          f"description or use a model with a longer context")


def plan(config: OptimizationConfig | None = None, *, config_from: str | None = None, **options) -> Plan:
    """The model calls `optimize` with the same options plans to make, step by step, without
    making any (`--dry-run`). The user's data is read to size the validation set; intake has not
    run, so a task of unknown type is planned as a two-label classification."""
    config = preflight.checked(_merged(config, options, None, config_from))
    if config.train_data:
        rows = data.sample(load_examples(config.train_data, config.field_map), config.seed)
        valid = data.sample(load_examples(config.valid_data, config.field_map), config.seed) \
            if config.valid_data else None
        check = min(data.check_count(len(rows) + len(valid or ()), config.check_rows), max(0, len(rows) - 2))
        rows = rows[check:]  # as many as `_user_split` holds out
        if valid is None:
            rows, valid = data.split(rows, config.train_ratio, config.seed)
        return plan_calls(config, valid_size=len(valid), train_size=len(rows), check=check)
    return plan_calls(config, classification=config.task_type in (None, "classification"))


def understand(config: OptimizationConfig | None = None, *, config_from: str | None = None, **options) -> Reading:
    """How `optimize` with the same options would read the task, and what it would doubt: intake
    alone (a few calls of the optimizer model, no MLflow run), with the labels of the user's
    data where it has some. What `--dry-run` prints before the plan."""
    config = preflight.checked(_merged(config, options, None, config_from))
    check_model(config.optimizer_model)
    user_data = load_examples(config.train_data, config.field_map) if config.train_data else None
    lm = LM(config.optimizer_model, UsageMeter(config.limits), max_retries=config.max_retries, seed=config.seed,
            cache=default_cache() if config.cache else None)
    reading = _read(config, lm, user_data)
    if user_data and config.train_data:
        check_fields(user_data, reading.spec.fields, config.train_data)
        reading = _data_labels(reading, user_data, config.train_data)
    return reading


def _merged(config: OptimizationConfig | None, options: dict, origin: dict | None,
            config_from: str | None) -> OptimizationConfig:
    """The config a job runs with. Precedence, lowest first: the options of the version started
    from (`origin`), of an earlier run (`config_from`) or of `config`; then `options`, given
    here (the CLI's flags over its --config file), with the config's defaults for the rest."""
    if config is not None and not options:
        return config
    base = (to_options(config) if config is not None else origin if origin is not None
            else options_from_run(config_from) if config_from else {})
    return config_from_options(**(base | options))


def _take_over(old_run_id: str, new_run_id: str, name: str | None) -> None:
    """Link the resumed run and its successor both ways; a run left RUNNING by a kill is
    marked KILLED, with the reason."""
    client = mlflow.MlflowClient()
    mlflow.set_tag(record.RESUMED_FROM, old_run_id)
    client.set_tag(old_run_id, record.RESUMED_BY, new_run_id)
    if client.get_run(old_run_id).info.status == "RUNNING":
        record_failure(f"the process stopped before the run finished (killed?); resumed by run {new_run_id}",
                       old_run_id)
        client.set_terminated(old_run_id, "KILLED")
    if name:  # killed while registering: what it left is removed, the new run registers afresh
        for uri in registry.remove_run_versions(name, old_run_id):
            log.warning("removed %s, registered by the killed run %s before it finished", uri, old_run_id)


def options_from_run(run_id: str) -> dict:
    """The effective options an earlier optimization logged, to run it again."""
    from mlflow.exceptions import MlflowException

    try:
        text = mlflow.artifacts.load_text(f"runs:/{run_id}/{record.CONFIG_ARTIFACT}")
    except MlflowException as exc:
        raise ConfigError(f"run {run_id!r} has no {record.CONFIG_ARTIFACT} to re-run: "
                          f"{str(exc).splitlines()[0]}") from None
    return yaml.safe_load(text)


def _experiment_chosen() -> bool:
    """Whether the caller chose an experiment through MLflow (`mlflow.set_experiment`, or the
    MLFLOW_EXPERIMENT_NAME / MLFLOW_EXPERIMENT_ID variables): the run then goes there."""
    from mlflow.tracking import fluent

    return bool(os.environ.get("MLFLOW_EXPERIMENT_NAME") or os.environ.get("MLFLOW_EXPERIMENT_ID")
                or getattr(fluent, "_active_experiment_id", None))


def _experiment_id(name: str) -> str:
    """The id of experiment `name`, created if new, without changing the process's active
    experiment (as `mlflow.set_experiment` would, for every later caller)."""
    from mlflow.exceptions import MlflowException

    client = mlflow.MlflowClient()
    experiment = client.get_experiment_by_name(name)
    if experiment:
        return experiment.experiment_id
    try:
        return client.create_experiment(name)
    except MlflowException as exc:  # another process, starting at the same time, created it first
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
        created = client.get_experiment_by_name(name)
        if created is None:  # created and deleted again meanwhile: nothing to file the run under
            raise
        return created.experiment_id


def _make_hook(name: str, options: dict) -> Callback:
    """The hook `name` from its factory, given the plugin options it names."""
    try:
        return call_with_options(HOOKS.get(name), options)
    except PromptomatixError:
        raise
    except Exception as exc:  # a plugin's constructor: say which one failed
        raise PluginError(f"hook {name!r} could not be created: {type(exc).__name__}: {exc}") from exc


@dataclass(frozen=True)
class _Job:
    """One optimization as `optimize` resolved it before the run started: its config, registry
    name, starting point, backend, hooks, and the user's data (read early, so a bad file costs
    no run)."""

    config: OptimizationConfig
    name: str
    head: Head
    backend: Backend
    hooks: list[Callback]
    show_progress: bool
    user_data: list[Example] | None = None
    valid_data: list[Example] | None = None


@dataclass(frozen=True)
class _Models:
    """The two models of a run, sharing one budget (`meter`), answer cache and tracer."""

    meter: UsageMeter
    task_lm: LM
    optimizer_lm: LM
    tracer: RunTracer | None

    @classmethod
    def open(cls, config: OptimizationConfig, tracer: RunTracer | None) -> _Models:
        meter = UsageMeter(config.limits)
        cache = default_cache() if config.cache else None
        make = lambda settings: LM(settings, meter, max_retries=config.max_retries, seed=config.seed,  # noqa: E731
                                   cache=cache, tracer=tracer)
        return cls(meter, make(config.task_model), make(config.optimizer_model), tracer)

    def phase(self, name: str, inputs: dict | None = None):
        """A stretch of work whose model calls are traced together, given `inputs` (nothing
        without traces); the block may `traced_outputs` on the span it gets."""
        return self.tracer.phase(name, inputs=inputs) if self.tracer else contextlib.nullcontext()


def _run(job: _Job, run, tracer: RunTracer | None) -> OptimizationResult:
    """The optimization in the active run: prepare the data, build the task, optimize, record the
    outcome, register it."""
    started = time.monotonic()
    models = _Models.open(job.config, tracer)
    _record_start(job)
    reading, evaluator, train, valid, check = _prepare_data(job, models)
    few = too_few_rows(len(valid))
    if few:  # said before the search spends its calls, and again on the result
        log.warning("%s", few)
    task = _build_task(job, models, reading.spec, evaluator, train, valid)
    events = _events(job, models.meter)
    events.on_optimization_start(task)
    # The check's calls are kept back from the search, so that the budget pays for it at the end.
    with _spent_before("the starting prompt was scored"), models.meter.reserved(check_calls(len(check))):
        outcome = _optimize(job, task, events)
    checked = _check(task, outcome, check)
    final = _record_outcome(job, task, outcome)
    usage = models.meter.snapshot()
    seconds = time.monotonic() - started
    stopped_by = models.meter.stopped_by or ("hook" if events.should_stop else record.SEARCH_COMPLETE)
    interval = stats.score_estimate(outcome.best.evaluation.per_example)
    _record_totals(outcome, interval, usage, seconds, stopped_by)
    best, start = outcome.best, task.start
    described, change, doubts = _what_changed(job, task, outcome, reading, interval, checked, few)
    answers = _check_answers(task, outcome)
    refused = _copy_refusal(answers)
    if refused:  # never a registered prompt that answers by returning its input
        log.warning("%s", refused)
        mlflow.set_tag(record.NOT_REGISTERED, refused)
    registered = _register(job, run, task, outcome, usage, change, final, interval) \
        if job.config.register and not refused else None
    result = OptimizationResult(
        prompt=best.prompt.template, initial_prompt=start.template, initial_score=outcome.initial_score,
        optimized_score=best.score, spec=task.spec, run_id=run.info.run_id, experiment_id=run.info.experiment_id,
        usage=usage, seconds=seconds, train_size=len(task.train), valid_size=len(task.valid),
        **_registered_names(registered),
        extra={"hook_errors": dict(events.errors), "stopped_early": events.should_stop, "stopped_by": stopped_by,
               "change": best.change, "scored_rows": len(best.evaluation.per_example), "final_scores": final,
               "doubts": doubts, "reading_sources": dict(reading.sources), "too_few_rows": few,
               "optimized_interval": interval,
               "synthetic": not job.config.train_data and not job.head.data,
               "change_summary": described, "max_calls": job.config.max_calls,
               "degenerate": answers.degenerate.describe(), "not_registered": refused, "held_out": checked,
               "answer_words": answers.answer_words, "reference_words": answers.reference_words},
    )
    events.on_optimization_end(result)
    return result


def _registered_names(registered) -> dict[str, str | None]:
    """The result's model and prompt names and versions (all None when nothing was registered)."""
    keys = ("model_name", "model_version", "prompt_name", "prompt_version")
    return {key: getattr(registered, key) if registered else None for key in keys}


def _what_changed(job: _Job, task: OptimizationTask, outcome: Outcome, reading: Reading, interval,
                  checked, few: str | None) -> tuple[str, str, tuple[str, ...]]:
    """What changed, as the summary says it; the same with the doubts about the task, the
    held-out check or the too-few-rows warning, as the registered version's description says it;
    and the doubts (also a tag of the run, where a person reads the result)."""
    best = outcome.best
    described = tracking.describe_change(task.start, best.prompt, outcome.initial_score, best.score, len(task.valid),
                                         parent=job.head.origin.version if job.head.origin else None,
                                         interval=(interval.low, interval.high))
    change = described
    doubts = (*reading.doubts, *answer_doubts(task.spec, best.evaluation.unmapped, len(best.evaluation.per_example)))
    if doubts:
        mlflow.set_tag(record.RUN_DOUBTS, "; ".join(doubts)[:5000])
        change = f"{change}. Check the task as it was read: {'; '.join(doubts)}"
    if checked is not None:
        change = f"{change}; on {checked.n} held-out rows the search never saw: {stats.describe(checked)}"
    elif few:
        change = f"{change}. Beware: {few}"
    return described, change, doubts


def _validation_source(config: OptimizationConfig) -> str:
    """What the validation rows are, as a person reads it: the validation file, the training
    file's split part, or synthetic (the model's own examples)."""
    if config.valid_data:
        return config.valid_data
    return f"{config.train_data} (split)" if config.train_data else "synthetic"


def _check(task: OptimizationTask, outcome: Outcome, rows: list[Example]) -> stats.Comparison | None:
    """The starting prompt and the winner scored on `rows`, the user's rows the search never saw,
    and compared row by row (`stats.compare`), logged as `check_*` metrics. The winner was chosen
    on the validation rows, so its score there is biased upward; this one is not. None without
    such rows, or when a budget other than the calls (kept for it) is spent."""
    if not rows:
        return None
    start, best = task.start, outcome.best.prompt
    try:
        initial, final = task.evaluator.evaluate_many([start, best], rows, desc="scoring the held-out check rows")
    except BudgetExhausted as exc:
        log.warning("no check on the held-out rows: %s", exc)
        return None
    checked = stats.compare(initial.per_example, final.per_example)
    mlflow.log_metrics({"check_rows": checked.n, "check_initial_score": initial.score, "check_score": final.score,
                        "check_score_low": checked.b.low, "check_score_high": checked.b.high,
                        "check_gain": checked.difference.value, "check_gain_low": checked.difference.low,
                        "check_gain_high": checked.difference.high, "check_p_value": checked.p_value})
    log.info("on %d held-out rows the search never saw: %s", checked.n, stats.describe(checked))
    return checked


@dataclass(frozen=True)
class _Answers:
    """What the winner's free-text answers on the validation rows look like beside the references."""

    degenerate: Degenerate
    answer_words: float | None = None
    reference_words: float | None = None


def _check_answers(task: OptimizationTask, outcome: Outcome) -> _Answers:
    """The winner's degenerate answers (`freetext.degenerate`) and, for free text, the mean
    length of its answers and of the references, logged on the run."""
    best = outcome.best
    rows = list(task.valid[:len(best.evaluation.predictions)])
    found = degenerate(best.prompt, rows, best.evaluation.predictions)
    if best.prompt.labels or not rows:
        return _Answers(found)
    fields = best.prompt.output_fields
    checked = _Answers(found, mean_words(best.evaluation.predictions, fields), mean_words(rows, fields))
    mlflow.log_metrics({**found.as_metrics(), "answer_words_mean": checked.answer_words or 0.0,
                        "reference_words_mean": checked.reference_words or 0.0})
    if found.any:
        log.warning("the best prompt's answers on the validation rows: %s", found.describe())
    return checked


def _copy_refusal(answers: _Answers) -> str:
    """Why the winner is not registered ('' when it is): most of its answers copy their input,
    where the references do not (see `freetext`)."""
    if not answers.degenerate.mostly_copies:
        return ""
    return (f"not registered: the best prompt found copies its input in {answers.degenerate.copies} of "
            f"{answers.degenerate.rows} validation answers, where the references do not; try more calls, "
            f"another model or --task-type rewriting (a metric that does not reward copying)")


def _record_start(job: _Job) -> None:
    """What the run records before any model call: the options first (with them saved, a run
    killed from here on can be resumed), the process, and where it starts from."""
    config, origin = job.config, job.head.origin
    mlflow.set_tag(record.PROCESS, checkpoints.this_process())  # a resume is refused while it lives
    mlflow.log_text(yaml.safe_dump(to_options(config), sort_keys=True, allow_unicode=True), record.CONFIG_ARTIFACT)
    log_config(config.to_params(job.backend.options))
    mlflow.log_params(registry.model_params(config.task_model))
    mlflow.log_text(config.raw_input, record.RAW_INPUT_ARTIFACT)
    if origin:
        mlflow.set_tags({record.PARENT_RUN: origin.run_id, record.PARENT_VERSION: origin.uri})
        if origin.feedback:
            mlflow.set_tag(record.FEEDBACK_USED, ",".join(f.id for f in origin.feedback))


def _prepare_data(job: _Job, models: _Models) -> tuple[Reading, Evaluator, list[Example], list[Example],
                                                       list[Example]]:
    """The task as read (by intake, or where the run starts from), said before any other call,
    the evaluator, and the train and validation examples (the user's, those of the start, or
    synthetic) and the user's rows held out for the check at the end (`_check`), all logged."""
    config, head = job.config, job.head
    reading = _reading(job, models)
    spec = reading.spec
    train: list[Example] | None = None
    valid: list[Example] | None = None
    check: list[Example] = []
    if job.user_data:
        train, valid, check = _user_split(spec, job.user_data, job.valid_data, config)
        left = models.meter.remaining_calls()
        train, valid = _held_out(train, valid, config, None if left is None else left - check_calls(len(check)),
                                 spec.output_fields[0] if spec.task_type == "classification" else None)
        reading = _data_labels(reading, train + valid, config.train_data or "")
        spec = reading.spec
    announce(reading)
    steps = DataSteps(config.data_steps, spec, options=config.plugin_options)
    if job.user_data and steps and train is not None and valid is not None:  # the user's rows, split above
        train, valid, check = steps.apply(train, "train"), steps.apply(valid, "valid"), steps.apply(check, "check")
    mlflow.log_dict(record.spec_to_dict(spec), record.SPEC_ARTIFACT)
    mlflow.log_dict(reading_to_dict(reading), record.READING_ARTIFACT)
    mlflow.set_tags({record.RUN_TASK_TYPE: spec.task_type, record.RUN_BACKEND: config.backend})
    evaluator = _evaluator(config, spec, models.task_lm, job.show_progress)
    if train is None and head.data:  # the data of the version started from, or of the killed run
        train, valid = head.data
    elif train is None:
        with models.phase("synthetic data", {"task": spec.description, "size": config.synthetic_data_size}) as span:
            train, valid = _synthetic_data(config, spec, _start(job, spec), models.optimizer_lm, evaluator, steps,
                                           job.show_progress)
            traced_outputs(span, {"train": train, "valid": valid})
    if steps:
        _log_rejections(steps)
    assert train is not None and valid is not None  # the user's, the start's or synthetic: one of them
    if spec.task_type == "classification":
        valid = data.interleaved(valid, spec.output_fields[0])
    # Also MLflow evaluation datasets, which its Datasets page lists, named after the prompt.
    fields = (spec.input_fields, spec.output_fields)
    log_examples(train, record.TRAIN, "training", fields=fields, title=job.name)
    log_examples(valid, record.VALID, "validation", fields=fields, title=job.name)
    if check:
        log_examples(check, record.CHECK, "testing", fields=fields, title=job.name)
    return reading, evaluator, train, valid, check


def _reading(job: _Job, models: _Models) -> Reading:
    """Intake's reading of the raw input; for a run that starts from a version or resumes one,
    that version's or run's task spec."""
    if job.head.spec:
        where = FROM_ORIGIN if job.head.origin else FROM_RESUMED
        return Reading(job.head.spec, (("type", where), ("fields", where), ("labels", where)))
    with _spent_before("intake finished"), models.phase("intake", {"raw_input": job.config.raw_input}) as span:
        reading = _read(job.config, models.optimizer_lm, job.user_data)
        traced_outputs(span, record.spec_to_dict(reading.spec))
        return reading


def _read(config: OptimizationConfig, lm: LM, user_data: list[Example] | None) -> Reading:
    """Intake with the config's overrides, field names picked from the user's columns if any."""
    return read_task(config.raw_input, lm, task_type=config.task_type, input_fields=config.input_fields,
                     output_fields=config.output_fields, columns=list(user_data[0]) if user_data else None,
                     labels=config.labels, labels_from=FROM_FLAG, template=config.intake_prompt)


def _data_labels(reading: Reading, examples: list[Example], source: str) -> Reading:
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


def _evaluator(config: OptimizationConfig, spec: TaskSpec, task_lm: LM, show_progress: bool) -> Evaluator:
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


def _start(job: _Job, spec: TaskSpec) -> Prompt:
    return job.head.origin.prompt if job.head.origin else starting_prompt(spec)


def _build_task(job: _Job, models: _Models, spec: TaskSpec, evaluator: Evaluator, train: list[Example],
                valid: list[Example]) -> OptimizationTask:
    head = job.head
    start = _start(job, spec)
    if not start.labels:  # a free-text answer gets the room the task's answers take
        start = start.with_(answer_tokens=answer_tokens(start, [*train, *valid]))
        mlflow.log_param("answer_tokens", start.answer_tokens)
    return OptimizationTask(spec, start, train, valid, evaluator, Objective(job.config.lambda_penalty),
                            models.optimizer_lm, job.config,
                            feedback=head.origin.feedback_text() if head.origin else "",
                            checkpoint=head.saved.checkpoint if head.saved else None)


def _events(job: _Job, meter: UsageMeter) -> CallbackList:
    """The run's callbacks: the MLflow tracker, checkpoints, progress, then the user's hooks. A
    resumed run's tracker carries the killed run's history up to its checkpoint."""
    tracker = MLflowTracker(meter)
    saved = job.head.saved
    if saved and saved.checkpoint:
        checkpoints.replay_metrics(saved.run_id, saved.checkpoint["step"])
        tracker.rows.extend(saved.checkpoint["rows"])
        log.info("resuming run %s after step %d", saved.run_id, saved.checkpoint["step"])
    events = CallbackList([tracker, checkpoints.CheckpointLogger(tracker.rows), ProgressPrinter()], job.hooks)
    events.on_hook_error = _record_hook_error
    return events


def _record_hook_error(hook: str, error: str) -> None:
    mlflow.set_tag(f"{record.HOOK_ERROR_PREFIX}{hook}", error[:5000])


def _optimize(job: _Job, task: OptimizationTask, events: CallbackList) -> Outcome:
    outcome = job.backend.optimize(task, events)
    if not isinstance(outcome, Outcome):
        raise PluginError(f"backend {job.config.backend!r} returned a {type(outcome).__name__}; a backend returns "
                          f"an Outcome(best, initial_score) (see promptomatix.backends.base)")
    return outcome


def _record_outcome(job: _Job, task: OptimizationTask, outcome: Outcome) -> dict[str, float]:
    """The prompts, the program and the best candidate's validation answers as artifacts and a
    table, and its final evaluation (returned)."""
    best, valid, spec = outcome.best, task.valid, task.spec
    mlflow.log_text(task.start.template, record.INITIAL_PROMPT_ARTIFACT)
    mlflow.log_text(best.prompt.template, record.OPTIMIZED_PROMPT_ARTIFACT)
    if best.program is not None:
        mlflow.log_dict(best.program, record.PROGRAM_ARTIFACT)
    mlflow.log_text(json.dumps([{"example": e, "prediction": p, "score": s} for e, p, s in
                                zip(valid, best.evaluation.predictions, best.evaluation.per_example)],
                               ensure_ascii=False, indent=1), record.VALID_PREDICTIONS_ARTIFACT)
    scored = valid[:len(best.evaluation.predictions)]  # the budget may have narrowed the search's rows
    final = _final_evaluation(job.config, get_task_type(spec.task_type), best, scored)
    tracking.log_results(scored, best.evaluation.predictions, best.evaluation.per_example, spec.input_fields,
                         spec.output_fields, record.VALID_RESULTS_TABLE)
    return final


def _record_totals(outcome: Outcome, interval: stats.Estimate, usage: Usage, seconds: float, stopped_by: str) -> None:
    best = outcome.best
    mlflow.set_tag(record.STOPPED_BY, stopped_by)
    mlflow.log_metrics({"initial_score": outcome.initial_score, "optimized_score": best.score,
                        record.OPTIMIZED_LOW: interval.low, record.OPTIMIZED_HIGH: interval.high,
                        record.OPTIMIZED_ROWS: interval.n,
                        "optimized_objective": best.objective, "prompt_words": prompt_words(best.prompt.template),
                        "seconds": seconds, "unmapped_answers": usage.unmapped_answers,
                        "optimized_unmapped_answers": best.evaluation.unmapped, **usage.as_metrics("total_")})


def _register(job: _Job, run, task: OptimizationTask, outcome: Outcome, usage: Usage, change: str,
              final: dict[str, float], interval: stats.Estimate) -> registry.Registered:
    """The best prompt in both registries, tagged with what it was scored on and with; the
    feedback it was given, resolved by it."""
    config, origin, best = job.config, job.head.origin, outcome.best
    task_type = get_task_type(task.spec.task_type)
    registered = registry.register(
        job.name, best.prompt, config.task_model, program=best.program, change=change, task=task.spec.description,
        tags=record.version_tags(
            run_id=run.info.run_id, score=best.score, initial_score=outcome.initial_score, backend=config.backend,
            task_type=task.spec.task_type, cost=usage.cost, tokens=usage.tokens,
            metric=record.metric_weights(task.metric.weights),
            eval_metrics=tuple(config.eval_metrics or task_type.eval_metrics) if final else (),
            interval=(interval.low, interval.high, interval.n), data=_validation_source(config),
            parent_version=origin.version if origin else None, parent_run_id=origin.run_id if origin else None),
    )
    mlflow.set_tags({record.RUN_MODEL_URI: registered.model_uri, record.RUN_PROMPT_URI: registered.prompt_uri})
    if origin and origin.feedback:
        from promptomatix.feedback import resolve_feedback

        resolve_feedback(origin.ref, [f.id for f in origin.feedback], by=registered.model_uri)
    return registered


def _final_evaluation(config: OptimizationConfig, task_type, best, valid: Sequence[Example]) -> dict[str, float]:
    """The best candidate's validation answers scored by the final-evaluation metrics (the
    run's `eval_metrics`, else its task type's), no model call: logged as `final.<metric>`.
    Empty when neither names any (the optimization metric is then the final word)."""
    specs = config.eval_metrics or task_type.eval_metrics
    if not specs:
        return {}
    metrics = eval_metrics(specs, task_type.metric, task_type.score_key, config.plugin_options,
                           judge_model=config.judge_model or config.optimizer_model.model)
    prompt = best.prompt
    fields = prompt.output_fields
    final = {label: metric.score_records(best.evaluation.predictions, valid, fields, prompt=prompt.template,
                                         input_fields=prompt.input_fields).score
             for label, metric in metrics.items()}
    mlflow.log_metrics({f"final.{label}": score for label, score in final.items()})
    mlflow.set_tag(record.EVAL_METRICS_RUN_TAG, ",".join(specs))
    return final


def starting_prompt(spec: TaskSpec) -> Prompt:
    """The user's own words as the first prompt, with the examples they wrote as demos; a
    classification with a known label set answers with one of its labels."""
    labelled = spec.task_type == "classification" and spec.labels and len(spec.output_fields) == 1
    return Prompt(spec.instructions or spec.description, spec.input_fields, spec.output_fields,
                  demos=tuple(spec.sample_examples), single_line=spec.task_type == "classification",
                  labels=tuple(spec.labels) if labelled else ())


@contextlib.contextmanager
def _spent_before(what: str):
    """A budget spent before `what`: there is no prompt worth keeping yet, so the run fails with
    a message that says when, and what to raise."""
    try:
        yield
    except BudgetExhausted as exc:
        raise BudgetExhausted(exc.limit, f"{exc} before {what}; raise the budget (--max-calls, --max-cost, "
                                         f"--max-seconds)") from None


def _synthetic_data(config: OptimizationConfig, spec: TaskSpec, start: Prompt, optimizer_lm: LM,
                    evaluator: Evaluator, steps: DataSteps, show_progress: bool) -> tuple[list[Example], list[Example]]:
    """Train and validation examples written for the task (see `data.selflabel` for label
    prompts, `data.synthetic` for the others), with what was made and dropped logged."""
    accept = (lambda e: steps(e, "synthetic")) if steps else None
    size = data_size(config, bool(start.labels), len(spec.labels))
    with _spent_before("the synthetic data was written"):
        if start.labels:
            seeds = [e for e in spec.sample_examples if e.get(spec.output_fields[0]) in start.labels]
            inputs, asked, written = write_inputs(spec, optimizer_lm, size, seeds=seeds, show_progress=show_progress,
                                                  accept=accept, template=config.inputs_prompt)
            train, valid, labelled = self_label(spec, inputs, asked, start, evaluator, train_ratio=config.train_ratio,
                                                seed=config.seed)
            train = seeds + train  # the user's own examples: demos to draw, never validation
            mlflow.log_metrics({record.SYNTHETIC_ACCEPTED: written.written, "synthetic_rejected": written.rejected,
                                "synthetic_duplicates": written.duplicates, "synthetic_write_calls": written.calls,
                                "synthetic_dropped_share": written.dropped_share,
                                "synthetic_label_agreement": labelled.agreement,
                                "synthetic_asked_label_agreement": labelled.asked_agreement,
                                "synthetic_label_teachers": labelled.teachers,
                                **{f"synthetic_labels.{k}": v for k, v in labelled.per_label.items()}})
            return train, valid
        examples, report = generate_examples(spec, optimizer_lm, size, batch_size=config.batch_size,
                                             show_progress=show_progress, accept=accept,
                                             template=config.synthetic_prompt)
    mlflow.log_metrics({record.SYNTHETIC_ACCEPTED: report.accepted, "synthetic_rejected": report.rejected,
                        "synthetic_duplicates": report.duplicates, "synthetic_failed_batches": report.failed_batches,
                        "synthetic_copies": report.copies, "synthetic_echoes": report.echoes,
                        "synthetic_loops": report.loops, "synthetic_dropped_share": report.dropped_share})
    # The user's own examples are the starting demos: keep them out of validation.
    samples = [e for e in examples if e in spec.sample_examples]
    train, valid = data.split([e for e in examples if e not in samples], config.train_ratio, config.seed)
    return samples + train, valid


def _log_rejections(steps: DataSteps) -> None:
    """Rejections by step as metrics (`data_rejected` in all, `data_rejected.<step>`), and each
    rejected example with its reason as `data_rejections.json`."""
    mlflow.log_metrics({f"data_rejected.{name}" if name else "data_rejected": count
                        for name, count in steps.counts().items()})
    # log_dict writes any JSON value (here a list); MLflow annotates its argument as a dict
    mlflow.log_dict([dataclasses.asdict(r) for r in steps.rejections],  # type: ignore[arg-type]
                    record.DATA_REJECTIONS_ARTIFACT)
    if steps.rejections:
        log.info("data steps rejected %d examples (%s)", len(steps.rejections),
                 ", ".join(f"{n}: {c}" for n, c in steps.counts().items() if n))


def _user_split(spec: TaskSpec, user_data: list[Example], valid_data: list[Example] | None,
                config: OptimizationConfig) -> tuple[list[Example], list[Example], list[Example]]:
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
        mlflow.log_param("valid_from_train", count)
    return data.hold_out(train, valid, count, config.seed, label_field)


def _sampled(examples: list[Example], source: str, seed: int) -> list[Example]:
    """`data.sample` of the examples of `source`, said in the log and on the run (tag
    `promptomatix.sample.<file name>`: "1000 of 50000") when it is a sample."""
    used = data.sample(examples, seed)
    if len(used) < len(examples):
        note = f"{len(used)} of {len(examples)}"
        log.warning("%s: using a random sample of %s examples (seed %d; the limit is %d)", source, note, seed,
                    data.SAMPLE_LIMIT)
        mlflow.set_tag(f"{record.SAMPLE_TAG}.{os.path.basename(source)[:200]}", note)
    return used


def default_name(raw_input: str) -> str:
    """A registry name from the task's first words (markers aside), stable for the same task."""
    words = re.findall(r"[a-z0-9]+", (starting_instruction(parse_markers(raw_input)) or raw_input).lower())[:6]
    return "-".join(words)[:60] or "prompt"
