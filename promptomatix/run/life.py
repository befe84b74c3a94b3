"""The life of an optimization's MLflow run (`started`): the caller's active run, or one started
in its experiment and named; a killed run it resumes taken over; on an error, the reason
recorded and the run ended KILLED (Ctrl-C, SIGTERM: with the one-line resume command) or
FAILED; else named after the version it registered and ended FINISHED."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass

import mlflow

from promptomatix.config import OptimizationConfig
from promptomatix.run import registration
from promptomatix.run.signals import Terminated
from promptomatix.run.summary import description
from promptomatix.tracking import mlflow_tracker, record
from promptomatix.tracking.failure import reason_of, record_failure
from promptomatix.tracking.tracer import RunTracer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Life:
    """The run an optimization runs in, whether this call owns it (started it, and ends it), its
    tracer (None without traces), and the registry name and backend the run is named after."""

    run: mlflow.ActiveRun
    owned: bool
    tracer: RunTracer | None
    name: str
    backend: str

    def finished(self, result) -> None:
        """The run named after the version `result` (an `OptimizationResult`) registered, and
        described by it; a caller's own run keeps the name and description the caller gave it."""
        if self.owned:
            mlflow.set_tags({mlflow_tracker.RUN_NAME_TAG: mlflow_tracker.run_name(self.name, self.backend, result.model_version),
                             mlflow_tracker.RUN_NOTE_TAG: description(result)})


@contextlib.contextmanager
def started(config: OptimizationConfig, name: str, resume: str | None) -> Iterator[Life]:
    """The run of the optimization of `config` registered as `name` (taking over run `resume`),
    for the block: ended when it ends, the caller's run aside (the caller ends it). A block that
    raises leaves the run ended as `fail` says, and the error raised."""
    owned = mlflow.active_run() is None  # else the caller's run: the caller ends it
    run = mlflow.active_run() or mlflow.start_run(experiment_id=run_experiment(config, name, resume, owned))
    tracer = RunTracer(run.info.run_id, run.info.experiment_id) if config.traces else None
    try:
        if owned:  # a caller's own run keeps the name and description the caller gave it
            mlflow.set_tag(mlflow_tracker.RUN_NAME_TAG, mlflow_tracker.run_name(name, config.backend))
        if resume:
            take_over(resume, run.info.run_id, name if config.register else None)
        yield Life(run, owned, tracer, name, config.backend)
        if tracer:  # written in the background meanwhile (registration overlaps): all stored now
            tracer.close()
    except BaseException as exc:
        fail(exc, run, owned, tracer)
        raise
    if owned:
        mlflow.end_run()


def run_experiment(config: OptimizationConfig, name: str, resume: str | None, owned: bool) -> str | None:
    """The experiment of a run this call starts: a resumed run's, the one `config.experiment`
    names, or the registered name's when none was chosen (not Default); None inside `mlflow run`
    (MLFLOW_RUN_ID), whose run has its experiment already."""
    if owned and resume and not os.environ.get("MLFLOW_RUN_ID"):
        return mlflow.MlflowClient().get_run(resume).info.experiment_id
    if owned and not os.environ.get("MLFLOW_RUN_ID") and (config.experiment or not _experiment_chosen()):
        return _experiment_id(config.experiment or name)
    return None


def take_over(old_run_id: str, new_run_id: str, name: str | None) -> None:
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
        for uri in registration.remove_run_versions(name, old_run_id):
            log.warning("removed %s, registered by the killed run %s before it finished", uri, old_run_id)


def fail(exc: BaseException, run, owned: bool, tracer: RunTracer | None) -> None:
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
