"""Why a run failed, said on the run: the tag `promptomatix.error`, written by one function.

Every path that can fail under an MLflow run (an optimization, a critique, an evaluation, the
CLI and the pipeline steps under `mlflow run`) records its reason here, so each one is redacted
the same way: a provider's error may echo the API key or the URL a request went to, and run
tags are visible to everyone who can read the tracking store.
"""

from __future__ import annotations

from promptomatix.errors import PromptomatixError
from promptomatix.models.lm import redact

ERROR_TAG = "promptomatix.error"
TAG_LIMIT = 5000  # characters of a tag value every MLflow store keeps


def reason_of(exc: BaseException) -> str:
    """What the tag says of `exc`: a typed error's message is written for users; anything else
    is named by its type too (a bare `KeyError: 'x'` means little on its own)."""
    return str(exc) if isinstance(exc, PromptomatixError) else f"{type(exc).__name__}: {exc}"


def record_failure(reason: str | BaseException, run_id: str | None = None) -> None:
    """Tag run `run_id` (else the active run) with why it failed, secrets redacted."""
    import mlflow

    text = redact(reason_of(reason) if isinstance(reason, BaseException) else reason)[:TAG_LIMIT]
    if run_id is None:
        mlflow.set_tag(ERROR_TAG, text)
    else:
        mlflow.MlflowClient().set_tag(run_id, ERROR_TAG, text)
