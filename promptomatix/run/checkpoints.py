"""Resuming an optimization: what a run saves as it goes, and reading it back.

A run saves, as artifacts, each step it completes (paths in `record`): the task spec
(`task_spec.json`), the data (`data/train.jsonl`, `data/valid.jsonl`) and, after every iteration
of a backend that can resume, a checkpoint `checkpoints/step_NNN.json` (the backend's state and
the candidate table so far).
`load(run_id)` reads back the latest of each that is whole; `optimize(resume=run_id)` starts a new
run from there. A checkpoint cut short by a kill fails to parse and the one before it is used.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import socket
import time
from dataclasses import dataclass

import mlflow
import yaml
from mlflow import MlflowClient
from mlflow.entities import Metric
from mlflow.exceptions import MlflowException

from promptomatix.errors import ConfigError
from promptomatix.run.callbacks import Callback
from promptomatix.task.spec import Example, TaskSpec
from promptomatix.tracking import record
from promptomatix.tracking.record import CHECKPOINT_DIR, CONFIG_ARTIFACT, PROCESS, RESUMED_BY, SPEC_ARTIFACT

log = logging.getLogger(__name__)


class CheckpointLogger(Callback):
    """Logs each checkpoint a backend reports, with the candidate rows the tracker holds."""

    def __init__(self, rows: list[dict]):
        self.rows = rows

    def on_checkpoint(self, step: int, state: dict) -> None:
        mlflow.log_dict({"step": step, "state": state, "rows": list(self.rows)}, record.checkpoint_artifact(step))


@dataclass(frozen=True)
class Saved:
    """What run `run_id` left behind. `spec`, `train`/`valid` and `checkpoint` are None when the
    run was stopped before saving them."""

    run_id: str
    status: str
    options: dict
    spec: TaskSpec | None
    train: list[Example] | None
    valid: list[Example] | None
    checkpoint: dict | None = None
    resumed_by: str | None = None
    process: str | None = None


def load(run_id: str) -> Saved:
    """The saved steps of an unfinished run; `ConfigError` for an unknown run, one that finished,
    or one that did not get as far as saving its options."""
    saved = read_saved(run_id)
    if saved.status == "FINISHED":
        raise ConfigError(f"run {run_id} finished; there is nothing to resume (re-run it with --config-from)")
    if saved.resumed_by:
        raise ConfigError(f"run {run_id} was resumed already, by run {saved.resumed_by}")
    process = parse_process(saved.process)
    if saved.status == "RUNNING" and process and is_alive(saved.process):  # two processes would do one job
        pid = process[1]
        raise ConfigError(f"run {run_id} is still running, in process {pid} on this host; stop it first "
                          f"(kill -TERM {pid} ends it KILLED and resumable) or let it finish")
    # the checkpoint only once the data step completed: without data the run starts over
    return dataclasses.replace(saved, checkpoint=latest_checkpoint(run_id) if saved.train is not None else None)


def read_saved(run_id: str) -> Saved:
    """What run `run_id` saved, whatever its state (its checkpoint aside: see `load`);
    `ConfigError` for an unknown run or one that did not get as far as saving its options."""
    client = MlflowClient()
    try:
        run = client.get_run(run_id)
    except MlflowException:
        raise ConfigError(f"no MLflow run {run_id!r}") from None
    options = _read(run_id, CONFIG_ARTIFACT, yaml.safe_load)
    if not isinstance(options, dict):
        raise ConfigError(f"run {run_id} stopped before saving its options; start a new optimization")
    spec = _read(run_id, SPEC_ARTIFACT, json.loads)
    train, valid = (_read(run_id, record.data_artifact(part), _jsonl) for part in (record.TRAIN, record.VALID))
    if train is None or valid is None:
        train = valid = None  # the data step did not complete
    return Saved(run_id, run.info.status, options, record.spec_from_dict(spec) if spec else None, train, valid,
                 resumed_by=run.data.tags.get(RESUMED_BY), process=run.data.tags.get(PROCESS))


def this_process() -> str:
    """The value of the PROCESS tag for the current process, for a person and for `is_alive`:
    "pid 11442 on host vm, started 2026-12-06 10:31:05 UTC (tick 80224 after boot)". The tick
    (from /proc) tells the process apart from a later one given the same pid; without /proc the
    part in parentheses is left out."""
    pid = os.getpid()
    start = _start_time(pid)
    found = f"pid {pid} on host {socket.gethostname()}"
    if start == "-":
        return found
    return f"{found}, started {_wall_clock(start)} (tick {start} after boot)"


# The PROCESS tag: this_process's form, and "<host> <pid> <start>" of runs recorded before it.
_PROCESS_RE = re.compile(r"^pid (?P<pid>\d+) on host (?P<host>\S+?)(?:, started .* \(tick (?P<start>\S+) after boot\))?$")


def parse_process(process: str | None) -> tuple[str, int, str] | None:
    """(host, pid, start tick, "-" when unknown) of a PROCESS tag; None when it is not one."""
    found = _PROCESS_RE.match(process or "")
    if found:
        return found["host"], int(found["pid"]), found["start"] or "-"
    try:
        host, pid, start = (process or "").split()
        return host, int(pid), start
    except ValueError:
        return None


def is_alive(process: str | None) -> bool:
    """Whether the process a PROCESS tag names still runs. Only a process on this host can be
    seen: one elsewhere counts as gone (a run on another machine can still be taken over)."""
    parsed = parse_process(process)
    if parsed is None:
        return False
    host, pid_number, start = parsed
    if host != socket.gethostname() or pid_number == os.getpid():
        return False
    try:
        os.kill(pid_number, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        pass
    stat = _stat(pid_number)
    return (not stat or stat[0] != "Z") and _start_time(pid_number) == start  # a zombie has ended


def _wall_clock(start: str) -> str:
    """The time (UTC) a process started `start` clock ticks after boot, or "at an unknown time"."""
    try:
        with open("/proc/stat") as stat:
            boot = next(int(line.split()[1]) for line in stat if line.startswith("btime "))
        seconds = boot + int(start) / os.sysconf("SC_CLK_TCK")
    except (OSError, StopIteration, ValueError, IndexError):
        return "at an unknown time"
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(seconds))


def _start_time(pid: int) -> str:
    stat = _stat(pid)
    return stat[19] if len(stat) > 19 else "-"  # field 22 of /proc/<pid>/stat


def _stat(pid: int) -> list[str]:
    """/proc/<pid>/stat from field 3 (the state) on; the command name before it is in
    parentheses and may hold spaces. Empty where there is no /proc."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return []


def latest_checkpoint(run_id: str) -> dict | None:
    """The newest checkpoint of the run that reads back whole, or None."""
    try:
        files = mlflow.artifacts.list_artifacts(run_id=run_id, artifact_path=CHECKPOINT_DIR)
    except (MlflowException, OSError):
        return None
    for path in sorted((f.path for f in files if f.path.endswith(".json")), reverse=True):
        checkpoint = _read(run_id, path, json.loads)
        if isinstance(checkpoint, dict) and {"step", "state", "rows"} <= checkpoint.keys():
            return checkpoint
        log.warning("checkpoint %s of run %s is incomplete; using an earlier one", path, run_id)
    return None


def replay_metrics(source_run_id: str, up_to_step: int) -> None:
    """Copy the per-step metrics of `source_run_id` up to `up_to_step` into the active run, so a
    resumed run shows the whole history."""
    client = MlflowClient()
    run = mlflow.active_run()
    metrics = []
    for key in client.get_run(source_run_id).data.metrics:
        metrics += [Metric(m.key, m.value, m.timestamp, m.step) for m in client.get_metric_history(source_run_id, key)
                    if m.step <= up_to_step]
    for start in range(0, len(metrics), 1000):  # MLflow's batch limit
        assert run is not None  # called inside the resumed run (api._events)
        client.log_batch(run.info.run_id, metrics=metrics[start:start + 1000])


def _read(run_id: str, path: str, parse):
    try:
        text = mlflow.artifacts.load_text(f"runs:/{run_id}/{path}")
    except (MlflowException, OSError):
        return None
    try:
        return parse(text)
    except (ValueError, yaml.YAMLError):  # cut short by the kill
        return None


def _jsonl(text: str) -> list[Example]:
    rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    if not rows:
        raise ValueError("empty")
    return rows
