"""The original Promptomatix guide's Python API: `process_input`, `optimize_with_feedback`,
`save_feedback`, on our `optimize` and feedback store.

    from promptomatix.main import process_input          # or: from promptomatix import process_input
    result = process_input(human_input="Classify text sentiment", backend="dspy")
    result["result"], result["metrics"]["optimized_prompt_score"], result["session_id"]

A session id is the MLflow run id of the optimization. Errors are the typed exceptions of
`promptomatix.errors`; nothing returns `{"error": ...}`.
"""

from __future__ import annotations

from typing import Any

from promptomatix.errors import ConfigError, RegistryError, UsageError
from promptomatix.guide.names import translate_options
from promptomatix.guide.results import result_dict


def process_input(**kwargs) -> dict[str, Any]:
    """Run one optimization from the guide's keywords (see `translate_options`); returns the
    original's result dict (`result_dict`). `raw_input` and `human_input` both name the task.

    `config` may be a dict of further keywords (as the original's web API passed) or our
    `OptimizationConfig`; `show_progress` and `callbacks` are passed to `optimize`."""
    from promptomatix.api import optimize
    from promptomatix.config import OptimizationConfig

    config = kwargs.pop("config", None)
    run = {key: kwargs.pop(key) for key in ("show_progress", "callbacks") if key in kwargs}
    if isinstance(config, dict):
        kwargs = config | kwargs
        config = None
    elif config is not None and not isinstance(config, OptimizationConfig):
        raise ConfigError(f"config must be a dict of options or an OptimizationConfig, got {type(config).__name__}")
    return result_dict(optimize(config, **run, **translate_options(kwargs)))


def optimize_with_feedback(session_id: str, **kwargs) -> dict[str, Any]:
    """Optimize again from the version session `session_id` registered, with its open feedback
    (`save_feedback`); returns the new run's result dict (a new session id).

    Raises RegistryError for an unknown session or one that registered nothing, UsageError when
    the version has no open feedback (as the original refused), ConfigError for bad keywords."""
    ref = session_ref(session_id)
    from promptomatix.api import optimize
    from promptomatix.lifecycle.feedback import list_feedback

    if not list_feedback(ref, resolved=False):
        raise UsageError(f"no open feedback on {ref} (session {session_id}): add some with save_feedback first")
    run = {key: kwargs.pop(key) for key in ("show_progress", "callbacks") if key in kwargs}
    return result_dict(optimize(from_=ref, **run, **translate_options(kwargs)))


def save_feedback(text: str, start_offset: int, end_offset: int, feedback: str, prompt_id: str) -> dict[str, Any]:
    """Store a comment (`feedback`) on characters [start_offset, end_offset) of the prompt that
    session `prompt_id` registered (a run id, or a `name@version` ref); `text` is that span
    (or the whole prompt, or empty). Returns the stored comment as a dict with the original's
    keys (`text`, `start_offset`, `end_offset`, `feedback`, `prompt_id`, `created_at`, `id`)
    and ours. A `text` that is not the span is a ConfigError, and nothing is stored."""
    ref = prompt_id if "@" in str(prompt_id) else session_ref(prompt_id)
    from promptomatix.lifecycle.feedback import add_feedback

    if text:
        prompt = _prompt_of(ref)
        if text not in (prompt, prompt[start_offset:end_offset]):
            raise ConfigError(f"text {text[:60]!r} is not characters {start_offset}..{end_offset} of the prompt of "
                              f"{ref} (they read {prompt[start_offset:end_offset][:60]!r})")
    stored = add_feedback(ref, feedback, start=start_offset, end=end_offset)
    data = stored.to_dict()
    return data | {"id": stored.id, "text": stored.text, "start_offset": stored.start, "end_offset": stored.end,
                   "feedback": stored.comment, "prompt_id": prompt_id, "created_at": stored.created}


def session_ref(session_id: str) -> str:
    """`name@version` of the model version an optimization run (a session) registered.

    The run's tag `promptomatix.model_uri` says it; else the version tagged `run_id` = the
    session. RegistryError when there is no such run or it registered nothing."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient()
    try:
        run = client.get_run(str(session_id))
    except MlflowException:
        raise RegistryError(f"no session {session_id!r}: a session id is the run id of an optimization") from None
    uri = run.data.tags.get("promptomatix.model_uri", "")
    if uri.startswith("models:/"):
        name, _, version = uri.removeprefix("models:/").rpartition("/")
        return f"{name}@{version}"
    versions = [v for v in client.search_model_versions(f"tags.run_id = '{run.info.run_id}'")
                if v.tags.get("run_id") == run.info.run_id]
    if not versions:
        raise RegistryError(f"session {session_id!r} registered no prompt version "
                            f"(it ran with register off, or did not finish)")
    first = min(versions, key=lambda v: v.creation_timestamp)
    return f"{first.name}@{first.version}"


def _prompt_of(ref: str) -> str:
    """The prompt template of the model version `name@version` (RegistryError if unknown)."""
    from promptomatix.lifecycle.feedback import prompt_text
    from promptomatix.lifecycle.versions import resolve

    return prompt_text(resolve(ref))


