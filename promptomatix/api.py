"""`optimize`: the whole job, from raw input to a registered prompt, in one MLflow run; `plan`
and `understand`: what it would do, without one.

Here the job is resolved and checked before any work, then run step by step in order (`_run`).
The run's life (started, taken over, failed, ended) is `run.life`'s; the data before the search
(the split, the held-out check rows, synthetic data, labels) is `run.preparation`'s; what the
winner is worth (the held-out check, its answers, what changed) is `run.verdict`'s; what the run
writes on MLflow is `tracking.recorder`'s, with every name from `tracking.record`.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import mlflow
import yaml

from promptomatix import data
from promptomatix.backends import get_backend
from promptomatix.backends.base import Backend, OptimizationTask, Outcome
from promptomatix.config import OptimizationConfig, preflight
from promptomatix.config.flat import config_from_options, to_options
from promptomatix.config.plugin_options import call_with_options
from promptomatix.data.loaders import check_fields, load_examples
from promptomatix.errors import ConfigError, PluginError, PromptomatixError
from promptomatix.intake import announce, parse_markers, Reading, starting_instruction
from promptomatix.models.cache import default_cache
from promptomatix.models.lm import CHARS_PER_TOKEN, check_model, context_tokens, LM
from promptomatix.models.usage import Usage, UsageMeter
from promptomatix.run import checkpoints, life as runlife, lineage, preparation, registration, verdict
from promptomatix.run.callbacks import Callback, CallbackList, HOOKS, ProgressPrinter
from promptomatix.run.job import Head, Job, Models, spent_before, starting_prompt
from promptomatix.run.planning import check_calls, Plan, plan as plan_calls, too_few_rows
from promptomatix.run.signals import stops_on_signals
from promptomatix.scoring import eval_metrics, Objective, stats
from promptomatix.scoring.evaluator import Evaluator
from promptomatix.scoring.freetext import answer_tokens
from promptomatix.task.spec import Example, TaskSpec
from promptomatix.task.types import get_task_type
from promptomatix.tracking import record, recorder, storeretry
from promptomatix.tracking.mlflow_tracker import check_store, MLflowTracker
from promptomatix.tracking.tracer import RunTracer

__all__ = ["OptimizationResult", "Head", "optimize", "plan", "understand", "check_fits_context", "options_from_run",
           "starting_prompt", "default_name"]

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
    with runlife.started(config, job.name, resume) as life:  # ended FAILED or KILLED by an error (runlife)
        result = _run(job, life.run, life.tracer)
        life.finished(result)
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
                 show_progress: bool) -> Job:
    """The job, everything about it checked that can be before any work (models, context, the
    registered name, hooks, the backend's options), the user's data loaded."""
    for settings in {config.task_model, config.optimizer_model}:
        check_model(settings)
    check_fits_context(config)
    name = config.name or default_name(config.raw_input)
    if config.register:  # before any work: a taken name would waste the whole run
        registration.check_name(name)
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
    return Job(config, name, head, chosen, hooks, show_progress, user_data, valid_data)


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
        rows = rows[check:]  # as many as `preparation.read_and_split` holds out
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
    reading = preparation.read(config, lm, user_data)
    if user_data and config.train_data:
        check_fields(user_data, reading.spec.fields, config.train_data)
        reading = preparation.data_labels(reading, user_data, config.train_data)
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


def options_from_run(run_id: str) -> dict:
    """The effective options an earlier optimization logged, to run it again."""
    from mlflow.exceptions import MlflowException

    try:
        text = mlflow.artifacts.load_text(f"runs:/{run_id}/{record.CONFIG_ARTIFACT}")
    except MlflowException as exc:
        raise ConfigError(f"run {run_id!r} has no {record.CONFIG_ARTIFACT} to re-run: "
                          f"{str(exc).splitlines()[0]}") from None
    return yaml.safe_load(text)


def _make_hook(name: str, options: dict) -> Callback:
    """The hook `name` from its factory, given the plugin options it names."""
    try:
        return call_with_options(HOOKS.get(name), options)
    except PromptomatixError:
        raise
    except Exception as exc:  # a plugin's constructor: say which one failed
        raise PluginError(f"hook {name!r} could not be created: {type(exc).__name__}: {exc}") from exc


def _run(job: Job, run: mlflow.ActiveRun, tracer: RunTracer | None) -> OptimizationResult:
    """The optimization in the active run: prepare the data, build the task, optimize, record the
    outcome, register it."""
    started = time.monotonic()
    models = Models.open(job.config, tracer)
    recorder.record_start(job)
    reading, evaluator, train, valid, check = _prepare_data(job, models)
    few = too_few_rows(len(valid))
    if few:  # said before the search spends its calls, and again on the result
        log.warning("%s", few)
    task = _build_task(job, models, reading.spec, evaluator, train, valid)
    events = _events(job, models.meter)
    events.on_optimization_start(task)
    # The check's calls are kept back from the search, so that the budget pays for it at the end.
    with spent_before("the starting prompt was scored"), models.meter.reserved(check_calls(len(check))):
        outcome = _optimize(job, task, events)
    checked = verdict.held_out_check(task, outcome, check)
    final = _record_outcome(job, task, outcome)
    usage = models.meter.snapshot()
    seconds = time.monotonic() - started
    stopped_by = models.meter.stopped_by or ("hook" if events.should_stop else record.SEARCH_COMPLETE)
    interval = stats.score_estimate(outcome.best.evaluation.per_example)
    recorder.record_totals(outcome, interval, usage, seconds, stopped_by)
    best, start = outcome.best, task.start
    described, change, doubts = verdict.what_changed(job, task, outcome, reading, interval, checked, few)
    answers = verdict.look_at_answers(task, outcome)
    refused = verdict.copy_refusal(answers)
    if refused:  # never a registered prompt that answers by returning its input
        log.warning("%s", refused)
        recorder.record_not_registered(refused)
    registered = recorder.register(job, run, task, outcome, usage, change, final, interval) \
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


def _prepare_data(job: Job, models: Models) -> tuple[Reading, Evaluator, list[Example], list[Example],
                                                     list[Example]]:
    """The task as read (by intake, or where the run starts from), said before any other call,
    the evaluator, and the train and validation examples (the user's, those of the start, or
    synthetic) and the user's rows held out for the check at the end (`_check`), all logged
    (`preparation`)."""
    reading, rows = preparation.read_and_split(job, models)
    announce(reading)
    evaluator, (train, valid, check) = preparation.prepare(job, models, reading, rows)
    return reading, evaluator, train, valid, check


def _build_task(job: Job, models: Models, spec: TaskSpec, evaluator: Evaluator, train: list[Example],
                valid: list[Example]) -> OptimizationTask:
    head = job.head
    start = job.start(spec)
    if not start.labels:  # a free-text answer gets the room the task's answers take
        start = start.with_(answer_tokens=answer_tokens(start, [*train, *valid]))
        recorder.record_answer_tokens(start.answer_tokens)
    return OptimizationTask(spec, start, train, valid, evaluator, Objective(job.config.lambda_penalty),
                            models.optimizer_lm, job.config,
                            feedback=head.origin.feedback_text() if head.origin else "",
                            checkpoint=head.saved.checkpoint if head.saved else None)


def _events(job: Job, meter: UsageMeter) -> CallbackList:
    """The run's callbacks: the MLflow tracker, checkpoints, progress, then the user's hooks. A
    resumed run's tracker carries the killed run's history up to its checkpoint."""
    tracker = MLflowTracker(meter)
    saved = job.head.saved
    if saved and saved.checkpoint:
        checkpoints.replay_metrics(saved.run_id, saved.checkpoint["step"])
        tracker.rows.extend(saved.checkpoint["rows"])
        log.info("resuming run %s after step %d", saved.run_id, saved.checkpoint["step"])
    events = CallbackList([tracker, checkpoints.CheckpointLogger(tracker.rows), ProgressPrinter()], job.hooks)
    events.on_hook_error = recorder.record_hook_error
    return events


def _optimize(job: Job, task: OptimizationTask, events: CallbackList) -> Outcome:
    outcome = job.backend.optimize(task, events)
    if not isinstance(outcome, Outcome):
        raise PluginError(f"backend {job.config.backend!r} returned a {type(outcome).__name__}; a backend returns "
                          f"an Outcome(best, initial_score) (see promptomatix.backends.base)")
    return outcome


def _record_outcome(job: Job, task: OptimizationTask, outcome: Outcome) -> dict[str, float]:
    """The prompts, the program and the best candidate's validation answers as artifacts and a
    table, and its final evaluation (returned)."""
    best, valid, spec = outcome.best, task.valid, task.spec
    recorder.record_prompts(task, outcome)
    scored = valid[:len(best.evaluation.predictions)]  # the budget may have narrowed the search's rows
    final = _final_evaluation(job.config, get_task_type(spec.task_type), best, scored)
    recorder.record_valid_results(spec, scored, best.evaluation)
    return final


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
    recorder.record_final(final, specs)
    return final


def default_name(raw_input: str) -> str:
    """A registry name from the task's first words (markers aside), stable for the same task."""
    words = re.findall(r"[a-z0-9]+", (starting_instruction(parse_markers(raw_input)) or raw_input).lower())[:6]
    return "-".join(words)[:60] or "prompt"
