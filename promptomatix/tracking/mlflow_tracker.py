"""Recording an optimization in its MLflow run: a callback for the per-iteration events and
helpers for params, data sets and text artifacts."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import shlex
import time
from collections.abc import Mapping, Sequence

import mlflow
import pandas as pd

from promptomatix.config import MODEL_KEYS, OptimizationConfig
from promptomatix.errors import ConfigError
from promptomatix.models.usage import UsageMeter
from promptomatix.run.callbacks import Callback
from promptomatix.scoring import prompt_words
from promptomatix.scoring.evaluator import prompt_id
from promptomatix.task.candidates import Candidate
from promptomatix.task.prompt import Prompt
from promptomatix.task.spec import Example
from promptomatix.tracking import record
from promptomatix.tracking.servercheck import check_server

log = logging.getLogger(__name__)
PARAM_PREFIX = "promptomatix."
# MLflow's own tags: the run's name and its description (the "note" the UI shows and edits).
RUN_NAME_TAG = "mlflow.runName"
RUN_NOTE_TAG = "mlflow.note.content"


def log_results(examples: Sequence[Example], predictions: Sequence[Example], scores: Sequence[float],
                input_fields: Sequence[str], output_fields: Sequence[str], artifact: str) -> list[dict]:
    """Per-example results as a table the UI shows (`mlflow.log_table`): row, each input field,
    `expected_<field>` and `predicted_<field>` for each output field, and the score."""
    rows = [{"row": i + 1, **{f: example[f] for f in input_fields},
             **{f"expected_{f}": example[f] for f in output_fields},
             **{f"predicted_{f}": str((predicted or {}).get(f, "")) for f in output_fields}, "score": score}
            for i, (example, predicted, score) in enumerate(zip(examples, predictions, scores))]
    mlflow.log_table(pd.DataFrame(rows), artifact)
    return rows


def run_name(name: str, backend: str, version: str | None = None) -> str:
    """What a run is, as the runs table shows it: `sentiment v3 · meta_prompt` (the version it
    registered, once it has one)."""
    return f"{name} v{version} · {backend}" if version else f"{name} · {backend}"


def describe_change(start: Prompt, best: Prompt, initial: float, final: float, examples: int,
                    parent: str | None = None, interval: tuple[float, float] | None = None) -> str:
    """What changed from the starting prompt (a registered `parent` version, or the task's own
    words) to `best`, and the validation scores of both, the final one's 95% `interval` when
    given: "instruction rewritten, 4 demos; validation 0.54 -> 0.81 [0.62, 0.92] (+0.27) on 25
    examples, against version 2"."""
    what = ["instruction rewritten" if best.instruction.strip() != start.instruction.strip() else "instruction kept"]
    count = f"{len(best.demos)} demo{'' if len(best.demos) == 1 else 's'}" if best.demos else "no demos"
    what.append(count if best.demos != start.demos else f"{count} (unchanged)")
    if best.calibration and best.calibration != start.calibration:
        what.append("labels calibrated")
    against = f"version {parent}" if parent else "the starting prompt"
    bounds = f" [{interval[0]:.2f}, {interval[1]:.2f}]" if interval else ""
    return (f"{', '.join(what)}; validation {initial:.2f} -> {final:.2f}{bounds} ({final - initial:+.2f}) "
            f"on {examples} examples, against {against}")


# Creating a new sqlite store, several processes at once (MLflow's tracking and registry stores
# each run the schema migrations, unlocked): held by one process at a time, beside the file.
STORE_LOCK_SUFFIX = ".lock"
STORE_LOCK_TIMEOUT = 300.0  # a migration takes seconds; this only bounds a stuck holder


def check_store() -> None:
    """Fail early, with one line (a ConfigError naming the store), when the MLflow tracking store
    cannot be opened or created (a server that does not answer, a sqlite file in a directory
    that cannot be written, a path through a file, a database of another MLflow version), before
    any run is started. A new sqlite store is created by one process at a time."""
    from alembic.util.exc import CommandError
    from mlflow.exceptions import MlflowException
    from sqlalchemy.exc import SQLAlchemyError

    from promptomatix.config import redact_url

    uri = mlflow.get_tracking_uri()
    check_server(uri)
    try:
        with _creation_lock(uri):
            _open_store()
    except OSError as exc:  # e.g. the sqlite file's directory cannot be created
        raise ConfigError(f"cannot use the MLflow tracking store {uri}: cannot create or open "
                          f"{exc.filename or 'the store'} ({exc.strerror or type(exc).__name__})") from None
    except (MlflowException, SQLAlchemyError, CommandError) as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        where = redact_url(uri) if uri.startswith(("http://", "https://")) else uri
        raise ConfigError(f"cannot use the MLflow tracking store {where}: {reason[:300]}") from None


def _sqlite_path(uri: str) -> str | None:
    if not uri.startswith("sqlite:"):
        return None
    from sqlalchemy.engine import make_url

    database = make_url(uri).database
    return database if database and database != ":memory:" else None


@contextlib.contextmanager
def _creation_lock(uri: str):
    """Held while a sqlite store is opened (and, if new, created): two processes creating one
    store at once would both run MLflow's schema migrations, and the slower fails
    ("Online migration expected to match one row ..."). Other stores need no lock."""
    path = _sqlite_path(uri)
    if path is None:
        yield
        return
    from filelock import FileLock, Timeout

    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    try:
        with FileLock(path + STORE_LOCK_SUFFIX, timeout=STORE_LOCK_TIMEOUT):
            yield
    except Timeout:
        raise ConfigError(f"cannot use the MLflow tracking store {uri}: another process held "
                          f"{path}{STORE_LOCK_SUFFIX} for {STORE_LOCK_TIMEOUT:g} s") from None


def _open_store(attempts: int = 4) -> None:
    """Open the tracking and registry stores (creating their tables when new), again when a
    process that does not take our lock (an `mlflow server`, another tool) migrated the same new
    database at the same moment."""
    from alembic.util.exc import CommandError
    from mlflow.exceptions import MlflowException
    from sqlalchemy.exc import SQLAlchemyError

    for attempt in range(attempts):
        try:
            client = mlflow.MlflowClient()
            client.search_experiments(max_results=1)
            client.search_registered_models(max_results=1)
            return
        except (CommandError, SQLAlchemyError, MlflowException) as exc:
            if attempt + 1 == attempts or not _is_migration_race(exc):
                raise
            log.info("the store was being created by another process; opening it again")
            time.sleep(0.5 * (attempt + 1))


def _is_migration_race(exc: Exception) -> bool:
    text = str(exc)
    return any(words in text for words in ("Online migration expected", "already exists", "database is locked",
                                           "UNIQUE constraint failed: alembic_version"))


# Settings a run may lower as it goes (the budget's plan, a search that ends early): logged when
# the run ends, as they ran (`MLflowTracker.on_optimization_end`), not as asked; a param cannot
# be changed once logged. What was asked is in config.yaml, and `<key>_asked` when it differs.
RAN_KEYS = ("synthetic_data_size", "iterations", "candidates")
# The tag `mlflow run` puts on the run it creates for an entry point.
PROJECT_ENTRY_POINT_TAG = "mlflow.project.entryPoint"


def log_config(params: dict[str, str]) -> None:
    """Config as params under our own prefix, each setting once: a setting given to `mlflow run`
    as `-P name=value` was logged by MLflow under its bare name before the run started
    (`given_by_mlflow_run`), and is not logged again. The `RAN_KEYS` wait for the end of the run."""
    given = given_by_mlflow_run()
    mlflow.log_params({f"{PARAM_PREFIX}{k}": v[:6000] for k, v in params.items()
                       if k not in RAN_KEYS and not given.get(k)})


def given_by_mlflow_run() -> dict[str, str]:
    """The settings `mlflow run` logged on the active run from its `-P` parameters, by the key
    `OptimizationConfig.to_params` gives them (`-P optimizer_temperature=...` is
    `optimizer_model.temperature`, `-P hook=...` is `hooks`), values without MLflow's shell
    quoting; empty outside `mlflow run`. Only MLflow's params are bare names without a `/`
    (ours carry `PARAM_PREFIX`, a registered model's config `model/`, `prompt/`)."""
    run = mlflow.active_run()
    if run is None:
        return {}
    data = mlflow.get_run(run.info.run_id).data  # `active_run()` holds the data of its start
    if PROJECT_ENTRY_POINT_TAG not in data.tags:
        return {}
    return {setting_key(name): unquote(value) for name, value in data.params.items()
            if not name.startswith(PARAM_PREFIX) and "/" not in name}


def setting_key(name: str) -> str:
    """The key `OptimizationConfig.to_params` logs the option `name` (`-P name=...`, a flag's
    name with `_` or `-`) under."""
    key = name.replace("-", "_")
    if key == "optimizer_model":
        return "optimizer_model.model"
    if key.startswith("optimizer_") and key[len("optimizer_"):] in MODEL_KEYS:
        return f"optimizer_model.{key[len('optimizer_'):]}"
    return _FLAG_FIELDS.get(key, key)


# Options whose flag is not their field's name (`--hook` sets `hooks`): flag name -> field.
_FLAG_FIELDS = {f.metadata["flag"][2:].replace("-", "_"): f.name for f in dataclasses.fields(OptimizationConfig)
                if f.metadata.get("flag")}


def unquote(value: str) -> str:
    """A param value without the shell quoting `mlflow run` gives its parameters (`'a b'` is
    `a b`); other values as they are."""
    if not value.startswith(("'", '"')):
        return value
    try:
        words = shlex.split(value)
    except ValueError:
        return value
    return words[0] if len(words) == 1 else value


def logged_setting(params: Mapping[str, str], key: str) -> str | None:
    """A setting of an optimization run as its params record it (None when they do not): ours
    (`promptomatix.<key>`), else the `-P` value `mlflow run` logged under the bare name (a setting
    given so is logged once, by MLflow). `key` as `OptimizationConfig.to_params` names it."""
    if PARAM_PREFIX + key in params:
        return params[PARAM_PREFIX + key]
    names = [name for name in params if not name.startswith(PARAM_PREFIX) and "/" not in name
             and setting_key(name) == key]
    return unquote(params[names[0]]) if names else None


def ran_settings(asked: dict[str, int | None], rows: Sequence[dict], synthetic_written: float | None
                 ) -> dict[str, tuple[int, int | None]]:
    """key -> (what ran, what was asked) for the `RAN_KEYS` that applied: the synthetic examples
    written (only when the run wrote its own data), the iterations that ran (the candidate
    table's last step) and the most candidates one iteration tried."""
    found: dict[str, tuple[int, int | None]] = {}
    if synthetic_written is not None:
        found["synthetic_data_size"] = (int(synthetic_written), asked.get("synthetic_data_size"))
    steps = [row["step"] for row in rows if row["step"] > 0]
    if steps:
        found["iterations"] = (max(steps), asked.get("iterations"))
        found["candidates"] = (max(steps.count(step) for step in set(steps)), asked.get("candidates"))
    return found


def ran_params(ran: dict[str, tuple[int, int | None]], given: Mapping[str, str]) -> dict[str, str]:
    """The params of the `RAN_KEYS` (`ran_settings`): `promptomatix.<key>` as it ran, and
    `promptomatix.<key>_asked` where that is less than asked; for a key `mlflow run` logged
    (`given`), only `promptomatix.<key>`, and only when it differs from MLflow's."""
    params = {}
    for key, (done, asked) in ran.items():
        if given.get(key):
            if given[key] != str(done):
                params[f"{PARAM_PREFIX}{key}"] = str(done)
            continue
        params[f"{PARAM_PREFIX}{key}"] = str(done)
        if asked is not None and done != asked:
            params[f"{PARAM_PREFIX}{key}_asked"] = str(asked)
    return params


def lowered_line(ran: dict[str, tuple[int, int | None]]) -> str:
    """What ran less than was asked, for the run's description: "1 of 2 iterations, 5 of 8
    candidates per iteration" ('' when everything ran as asked)."""
    words = {"synthetic_data_size": "synthetic examples written", "iterations": "iterations",
             "candidates": "candidates per iteration (at most)"}
    return ", ".join(f"{done} of {asked} {words[key]}" for key, (done, asked) in ran.items()
                     if asked is not None and done < asked)


def log_examples(examples: Sequence[Example], name: str, context: str, *,
                 fields: tuple[Sequence[str], Sequence[str]] | None = None, title: str = "") -> None:
    """A data set as a JSONL artifact (to read) and as a run input (to find and compare); with
    `fields` (input, output), also as an MLflow evaluation dataset named "`title` · `name`" in the
    run's experiment (`data.evalsets`: the Datasets page lists it, tagged with the run)."""
    mlflow.log_text("\n".join(json.dumps(e, ensure_ascii=False) for e in examples) + "\n", record.data_artifact(name))
    # mlflow.data defines its dataset constructors at import time (setattr), unseen by mypy
    dataset = mlflow.data.from_pandas(pd.DataFrame(list(examples)), name=name)  # type: ignore[attr-defined]
    _log_input(dataset, context)
    if fields and examples:
        from promptomatix.data.evalsets import evaluation_dataset

        run = mlflow.active_run()
        evaluation_dataset(f"{title} · {name}" if title else name, examples, *fields,
                           experiment_id=run.info.experiment_id if run else None,
                           tags={record.DATASET_RUN: run.info.run_id} if run else None)


def _log_input(dataset, context: str, attempts: int = 4) -> None:
    """`mlflow.log_input`, again when the store or the connection to it failed in a way that
    asking again fixes:
    - another process logged the same data set (same name and digest) at the same moment: the
      store checks for the data set, then inserts it, so the slower of two concurrent writers gets
      a unique-constraint error; asked again, it finds the data set and links it;
    - a busy tracking server dropped the connection mid-answer (MLflow's HTTP retries cover
      refused connections and 5xx answers, not a body cut short). Asking again is safe: the
      store links a data set to a run once."""
    from mlflow.exceptions import MlflowException

    for attempt in range(attempts):
        try:
            mlflow.log_input(dataset, context=context)
            return
        except MlflowException as exc:
            text = str(exc)
            if attempt + 1 == attempts or not any(s in text for s in _RETRIED_ERRORS):
                raise
            log.info("logging the %s data set failed (%s); trying again", context, text[:200])
            time.sleep(0.2 * 2 ** attempt)


# How sqlite, PostgreSQL and MySQL report a duplicate insert (through SQLAlchemy's IntegrityError),
# and how requests/urllib3 report a connection a server closed before its answer was complete.
_RETRIED_ERRORS = ("UNIQUE constraint failed", "duplicate key value", "Duplicate entry", "IntegrityError",
                   "IncompleteRead", "Connection aborted", "RemoteDisconnected", "Connection reset by peer",
                   "ChunkedEncodingError")


class MLflowTracker(Callback):
    """Per iteration (`step`): best score and objective, mean candidate score, tokens and cost so
    far; every candidate prompt as a text artifact and a row of the candidate table
    (`record.CANDIDATES_TABLE`, MLflow's table view): step, candidate, what changed (the backend's
    words, whether the instruction differs from the starting prompt's, the demos it carries),
    score, objective and the task-model calls that scored it (one per validation example it
    was raced on), and `chosen`: true, once the run ends, on the row of the registered winner
    only (two candidates may tie on score; the table then says which one is the version)."""

    def __init__(self, meter: UsageMeter):
        self.meter = meter
        self.rows: list[dict] = []
        self._logged_rows = 0
        self._start: Prompt | None = None
        self._templates: dict[int, str] = {}  # row index -> the candidate's template (not a column)
        self._best: int | None = None  # the row of the last best candidate reported
        self._candidates: dict[int, int] = {}  # id(candidate) -> its row, for this process's candidates
        self._asked: dict[str, int | None] = {}
        self._given: dict[str, str] = {}  # the settings `mlflow run` logged (`given_by_mlflow_run`)

    def on_optimization_start(self, task) -> None:
        self._start = task.start
        self._asked = {key: getattr(task.config, key, None) for key in RAN_KEYS}
        self._given = given_by_mlflow_run()

    def on_candidate(self, step: int, candidate: Candidate) -> None:
        index = sum(1 for r in self.rows if r["step"] == step)
        path = record.candidate_artifact(step, index)
        mlflow.log_text(candidate.prompt.template, path)
        prompt, evaluation = candidate.prompt, candidate.evaluation
        rewritten = self._start is not None and prompt.instruction.strip() != self._start.instruction.strip()
        self.rows.append({"step": step, "candidate": index, "change": candidate.change or ("start" if step == 0 else ""),
                          "instruction_rewritten": rewritten, "demos": len(prompt.demos),
                          "score": candidate.score, "objective": candidate.objective,
                          "calls": len(evaluation.per_example),
                          "examples": len(evaluation.per_example), "soft_score": evaluation.soft,
                          "calibrated": bool(prompt.calibration), "unmapped": evaluation.unmapped,
                          "words": prompt_words(prompt.template), "prompt_id": prompt_id(prompt),
                          "instruction": prompt.instruction,
                          "artifact": path, "chosen": False})
        self._templates[len(self.rows) - 1] = prompt.template
        self._candidates[id(candidate)] = len(self.rows) - 1

    def on_iteration_end(self, step: int, best: Candidate, candidates: Sequence[Candidate]) -> None:
        usage = self.meter.snapshot()
        metrics = {"best_score": best.score, "best_objective": best.objective,
                   "tokens": usage.tokens, "cost": usage.cost, "llm_calls": usage.calls}
        if candidates:
            metrics["mean_candidate_score"] = sum(c.score for c in candidates) / len(candidates)
        mlflow.log_metrics(metrics, step=step)
        self._best = self._candidates.get(id(best), self._best)
        if len(self.rows) > self._logged_rows:  # log_table appends to an existing table
            mlflow.log_table(pd.DataFrame(self.rows[self._logged_rows:]), record.CANDIDATES_TABLE)
            self._logged_rows = len(self.rows)

    def on_optimization_end(self, result) -> None:
        """Log the `RAN_KEYS` as they ran (with `<key>_asked` where the run lowered them, and a
        line for the description: `result.extra["lowered"]`); mark the winner (`_mark_chosen`).
        A key given to `mlflow run` (`-P iterations=3`) is MLflow's param already, as asked: ours
        then only when the run lowered it, and no `_asked`."""
        written = mlflow.get_run(result.run_id).data.metrics.get(record.SYNTHETIC_ACCEPTED) \
            if result.extra.get("synthetic") else None
        ran = ran_settings(self._asked, self.rows, written)
        mlflow.log_params(ran_params(ran, self._given))
        result.extra["lowered"] = lowered_line(ran)
        self._mark_chosen(result)

    def _mark_chosen(self, result) -> None:
        """Mark the registered winner's row `chosen` and write the whole table again (log_table
        only appends): the last best reported when it is the registered prompt, else the
        best-scoring row with the registered prompt's text. Nothing is marked when nothing was
        registered."""
        if not result.model_version or not self.rows:
            return
        row = self._best if self._best is not None and self._templates.get(self._best) == result.prompt else None
        if row is None:
            same = [i for i, template in self._templates.items() if template == result.prompt]
            row = max(same, key=lambda i: (self.rows[i]["objective"], -i), default=None)
        if row is None:
            return
        for i, found in enumerate(self.rows):
            found["chosen"] = i == row
        if self._logged_rows:
            rewrite_table(pd.DataFrame(self.rows), record.CANDIDATES_TABLE)
        else:  # never logged in this run (a resumed run that ended at once): a new table
            mlflow.log_table(pd.DataFrame(self.rows), record.CANDIDATES_TABLE)
        self._logged_rows = len(self.rows)


def rewrite_table(frame: pd.DataFrame, artifact: str) -> None:
    """`frame` as the table `artifact` of the active run, replacing what was there (in the
    format `mlflow.log_table` writes, so the UI's table view and `load_table` read it; the run
    already carries the tag naming it a table)."""
    mlflow.log_text(frame.to_json(orient="split", index=False, date_format="iso"), artifact)
