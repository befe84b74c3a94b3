"""Recording an optimization in its MLflow run: a callback for the per-iteration events and
helpers for params, data sets and text artifacts."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence

import mlflow
import pandas as pd

from promptomatix.backends.base import Candidate
from promptomatix.callbacks import Callback
from promptomatix.errors import ConfigError
from promptomatix.models.usage import UsageMeter
from promptomatix.scoring import prompt_words
from promptomatix.spec import Example

PARAM_PREFIX = "promptomatix."


def check_store() -> None:
    """Fail early, with one line (a ConfigError naming the store), when the MLflow tracking store
    cannot be opened or created (a sqlite file in a directory that cannot be written, a path
    through a file, a database of another MLflow version), before any run is started."""
    from mlflow.exceptions import MlflowException
    from sqlalchemy.exc import SQLAlchemyError

    from promptomatix.config import redact_url

    uri = mlflow.get_tracking_uri()
    try:
        mlflow.MlflowClient().search_experiments(max_results=1)
    except OSError as exc:  # e.g. the sqlite file's directory cannot be created
        raise ConfigError(f"cannot use the MLflow tracking store {uri}: cannot create or open "
                          f"{exc.filename or 'the store'} ({exc.strerror or type(exc).__name__})") from None
    except (MlflowException, SQLAlchemyError) as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        where = redact_url(uri) if uri.startswith(("http://", "https://")) else uri
        raise ConfigError(f"cannot use the MLflow tracking store {where}: {reason[:300]}") from None


def log_config(params: dict[str, str]) -> None:
    """Config as params under our own prefix: `mlflow run` has logged its entry-point
    parameters under the bare names already, and MLflow refuses to change a param."""
    mlflow.log_params({f"{PARAM_PREFIX}{k}": v[:6000] for k, v in params.items()})


def log_examples(examples: Sequence[Example], name: str, context: str) -> None:
    """A data set as a JSONL artifact (to read) and as a run input (to find and compare)."""
    mlflow.log_text("\n".join(json.dumps(e, ensure_ascii=False) for e in examples) + "\n", f"data/{name}.jsonl")
    dataset = mlflow.data.from_pandas(pd.DataFrame(list(examples)), name=name)
    _log_input(dataset, context)


def _log_input(dataset, context: str, attempts: int = 4) -> None:
    """`mlflow.log_input`, again when another process logged the same data set (same name and
    digest) at the same moment: the store checks for the data set, then inserts it, so the
    slower of two concurrent writers gets a unique-constraint error; asked again, it finds the
    data set and links it."""
    from mlflow.exceptions import MlflowException

    for attempt in range(attempts):
        try:
            mlflow.log_input(dataset, context=context)
            return
        except MlflowException as exc:
            text = str(exc)
            if attempt + 1 == attempts or not any(s in text for s in _DUPLICATE_ERRORS):
                raise
            time.sleep(0.2 * (attempt + 1))


# How sqlite, PostgreSQL and MySQL report a duplicate insert (through SQLAlchemy's IntegrityError).
_DUPLICATE_ERRORS = ("UNIQUE constraint failed", "duplicate key value", "Duplicate entry", "IntegrityError")


class MLflowTracker(Callback):
    """Per iteration (`step`): best score and objective, mean candidate score, tokens and cost so
    far; every candidate prompt as a text artifact and a table row."""

    def __init__(self, meter: UsageMeter):
        self.meter = meter
        self.rows: list[dict] = []
        self._logged_rows = 0

    def on_candidate(self, step: int, candidate: Candidate) -> None:
        index = sum(1 for r in self.rows if r["step"] == step)
        path = f"prompts/step_{step:02d}_candidate_{index:02d}.txt"
        mlflow.log_text(candidate.prompt.template, path)
        self.rows.append({"step": step, "candidate": index, "change": candidate.change,
                          "score": candidate.score, "objective": candidate.objective,
                          "examples": len(candidate.evaluation.per_example),
                          "soft_score": candidate.evaluation.soft, "calibrated": bool(candidate.prompt.calibration),
                          "unmapped": candidate.evaluation.unmapped, "demos": len(candidate.prompt.demos),
                          "words": prompt_words(candidate.prompt.template),
                          "instruction": candidate.prompt.instruction, "artifact": path})

    def on_iteration_end(self, step: int, best: Candidate, candidates: Sequence[Candidate]) -> None:
        usage = self.meter.snapshot()
        metrics = {"best_score": best.score, "best_objective": best.objective,
                   "tokens": usage.tokens, "cost": usage.cost, "llm_calls": usage.calls}
        if candidates:
            metrics["mean_candidate_score"] = sum(c.score for c in candidates) / len(candidates)
        mlflow.log_metrics(metrics, step=step)
        if len(self.rows) > self._logged_rows:  # log_table appends to an existing table
            mlflow.log_table(pd.DataFrame(self.rows[self._logged_rows:]), "candidates.json")
            self._logged_rows = len(self.rows)
