"""Comments on spans of a registered prompt version, stored in MLflow.

    from promptomatix.lifecycle.feedback import add_feedback, list_feedback, resolve_feedback
    fb = add_feedback("reviews@3", "too vague", text="Guess the sentiment.", type="content")
    list_feedback("reviews", resolved=False)             # -> [Feedback, ...], every version
    resolve_feedback("reviews@3", [fb.id], by="reviews@4")

In: a version reference (`name@3`, `name@alias`, `models:/name/3`; `name` alone where every
version is meant) and the comment's span as character offsets into the version's prompt
template (the Prompt Registry text), or as an exact piece of that text.
Out: `Feedback` records. Each one is stored twice, as the same JSON:
  - the model version tag `feedback.<id>` (what is read back: one tag per comment, so two
    people commenting at once never overwrite each other), and
  - the artifact `feedback/<id>.json` on the run that produced the version.
Resolving rewrites both. Every check (version, span, values, size) runs before anything is
written; bad input raises ConfigError (values) or RegistryError (names, versions, ids).
"""

from __future__ import annotations

import getpass
import json
import logging
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields, replace
from datetime import datetime, timezone
from pathlib import Path

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from promptomatix.errors import ConfigError, PromptomatixError, RegistryError
from promptomatix.lifecycle import versions
from promptomatix.lifecycle.versions import prompt_text  # the text feedback spans are offsets into

log = logging.getLogger(__name__)

TYPES = ("general", "format", "content", "style")
PRIORITIES = ("low", "medium", "high", "critical")
STATES = ("open", "resolved")
TAG_PREFIX = "feedback."
ARTIFACT_DIR = "feedback"
# MLflow's limit on a model version tag value (mlflow.utils.validation); a comment's JSON
# must fit in one tag.
MAX_TAG_VALUE = 100_000


@dataclass(frozen=True)
class Feedback:
    """One comment on the span [start, end) of a version's prompt template."""

    id: str
    name: str
    version: str
    run_id: str | None
    start: int
    end: int
    text: str
    comment: str
    type: str
    priority: str
    author: str
    created: str
    machine: bool = False
    resolved: bool = False
    resolved_by: str | None = None

    @property
    def model_uri(self) -> str:
        return f"models:/{self.name}/{self.version}"

    @property
    def state(self) -> str:
        return "resolved" if self.resolved else "open"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Feedback:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


# --- the Python API -----------------------------------------------------------------------

def add_feedback(ref: str, comment: str, *, start: int | None = None, end: int | None = None,
                 text: str | None = None, type: str = "general", priority: str = "medium",
                 author: str | None = None, machine: bool = False) -> Feedback:
    """Store `comment` on a span of the prompt of the version `ref` names; returns it.

    The span: `start`/`end` offsets (end exclusive; either may be left out: the start or the
    end of the prompt), or `text`, which must occur in the prompt (its first occurrence is
    used; `occurrences` tells a caller whether there were more), or neither: the whole prompt.
    `author` defaults to the MLflow user (MLFLOW_TRACKING_USERNAME or the credentials file),
    else the login name. Raises RegistryError / ConfigError before writing anything.
    """
    version = versions.resolve(ref)
    prompt = prompt_text(version)
    begin, finish = span(prompt, start=start, end=end, text=text)
    item = new_feedback(version, prompt, begin, finish, comment, type=type, priority=priority,
                        author=author, machine=machine)
    store(item)
    return item


def list_feedback(ref: str, *, type: str | None = None, priority: str | None = None,
                  resolved: bool | None = None, machine: bool | None = None) -> list[Feedback]:
    """Feedback on the version `ref` names, or on every version when `ref` is a bare model name,
    oldest version first, then oldest comment first. Each filter left as None lets all through."""
    if type is not None:
        _check_choice("type", type, TYPES)
    if priority is not None:
        _check_choice("priority", priority, PRIORITIES)
    found = [item for version in versions_of(ref) for item in read_version(version)]
    return [item for item in found
            if (type is None or item.type == type) and (priority is None or item.priority == priority)
            and (resolved is None or item.resolved == resolved) and (machine is None or item.machine == machine)]


def resolve_feedback(ref: str, ids: Sequence[str], *, by: str) -> list[Feedback]:
    """Mark the feedback `ids` (on `ref`: a version, or a bare name for any version) resolved by
    `by`; returns them as now stored. `by` is usually the version that addressed them: given as
    a version reference (`name@4`, `models:/name/4`) it must exist and is stored as
    `models:/name/4`; any other text (e.g. "wontfix: out of scope") is stored as given.
    Unknown ids raise RegistryError and nothing is changed."""
    if not ids:
        raise ConfigError("give at least one feedback id to resolve")
    by = _resolver(by)
    stored = {item.id: item for item in list_feedback(ref)}
    unknown = [i for i in ids if i not in stored]
    if unknown:
        raise RegistryError(f"no feedback with id {', '.join(repr(i) for i in unknown)} on {ref!r}")
    done = []
    for item_id in dict.fromkeys(ids):  # each once, in the order given
        item = replace(stored[item_id], resolved=True, resolved_by=by)
        store(item, rewrite=True)
        done.append(item)
    return done


def feedback_summary(ref: str) -> dict:
    """Counts of the feedback on `ref`: {"total", "by_type", "by_priority", "by_state",
    "by_origin"}; every known type, priority, state ("open", "resolved") and origin ("human",
    "machine") is a key, zero when none."""
    return summarize(list_feedback(ref))


def summarize(items: Sequence[Feedback]) -> dict:
    """The counts `feedback_summary` returns, for a list already read."""
    def count(values, keys):
        counts = dict.fromkeys(keys, 0)
        for value in values:
            counts[value] = counts.get(value, 0) + 1
        return counts

    return {"total": len(items),
            "by_type": count((i.type for i in items), TYPES),
            "by_priority": count((i.priority for i in items), PRIORITIES),
            "by_state": count((i.state for i in items), STATES),
            "by_origin": count(("machine" if i.machine else "human" for i in items), ("human", "machine"))}


def export_feedback(ref: str, path: str) -> int:
    """Write the feedback on `ref` to `path` as JSON ({"ref", "exported", "count", "summary",
    "feedback": [Feedback.to_dict(), ...]}); returns the count. An unwritable path is a ConfigError."""
    items = list_feedback(ref)
    document = {"ref": ref, "exported": _now(), "count": len(items), "summary": summarize(items),
                "feedback": [item.to_dict() for item in items]}
    target = Path(path)
    if target.is_dir():
        raise ConfigError(f"{path}: is a directory; give a file name such as feedback.json")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(document, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot write: {exc.strerror or exc}") from None
    return len(items)


# --- building blocks (also used by promptomatix.lifecycle.critiques) ---------------------------------

def versions_of(ref: str) -> list:
    """The model versions `ref` names: one for a version reference, all (oldest first) for a
    bare registered model name (or `models:/name`)."""
    text = ref.strip()
    bare = text[len("models:/"):] if text.startswith("models:/") else text
    if "@" in bare or "/" in bare:
        return [versions.resolve(text)]
    return versions.all_versions(versions.get_model(bare).name)


def span(prompt: str, *, start: int | None = None, end: int | None = None, text: str | None = None) -> tuple[int, int]:
    """(start, end) of the span in `prompt`, checked: offsets within [0, len(prompt)] with
    start < end, or the first occurrence of `text`, or the whole prompt. ConfigError otherwise."""
    if text is not None:
        if start is not None or end is not None:
            raise ConfigError("give the span as --text or as --start/--end, not both")
        if not text:
            raise ConfigError("the span text is empty")
        found = prompt.find(text)
        if found < 0:
            raise ConfigError(f"the text {_short(text)!r} does not occur in the prompt ({len(prompt)} characters)")
        return found, found + len(text)
    begin = 0 if start is None else start
    finish = len(prompt) if end is None else end
    for label, value in (("start", begin), ("end", finish)):
        if not 0 <= value <= len(prompt):
            raise ConfigError(f"{label} offset {value} is outside the prompt (0 to {len(prompt)})")
    if begin >= finish:
        raise ConfigError(f"the span is empty: start {begin} must be less than end {finish}")
    return begin, finish


def occurrences(prompt: str, text: str) -> int:
    """How many times `text` occurs in `prompt` (overlaps counted)."""
    count, at = 0, prompt.find(text)
    while text and at >= 0:
        count += 1
        at = prompt.find(text, at + 1)
    return count


def new_feedback(version, prompt: str, start: int, end: int, comment: str, *, type: str = "general",
                 priority: str = "medium", author: str | None = None, machine: bool = False) -> Feedback:
    """A checked, not yet stored, Feedback on [start, end) of `prompt` (the version's template)."""
    comment = (comment or "").strip()
    if not comment:
        raise ConfigError("the comment is empty")
    _check_choice("type", type, TYPES)
    _check_choice("priority", priority, PRIORITIES)
    item = Feedback(id=uuid.uuid4().hex[:12], name=version.name, version=str(version.version),
                    run_id=_live_run(version.run_id), start=start, end=end, text=prompt[start:end],
                    comment=comment, type=type, priority=priority, author=(author or "").strip() or default_author(),
                    created=_now(), machine=bool(machine))
    size = len(_encode(item))
    if size > MAX_TAG_VALUE:
        raise ConfigError(f"the comment and its span take {size} characters as JSON; MLflow keeps at most "
                          f"{MAX_TAG_VALUE} in a version tag: shorten the comment or the span")
    return item


def store(item: Feedback, *, rewrite: bool = False) -> None:
    """Write `item` as the version tag `feedback.<id>` and the artifact `feedback/<id>.json` on
    its run (both overwritten if present; the artifact is skipped when the run was deleted).
    If the artifact cannot be written, the tag is put back as it was (removed, unless
    `rewrite`) and a PromptomatixError is raised."""
    client = MlflowClient()
    value = _encode(item)
    key = TAG_PREFIX + item.id
    previous = (client.get_model_version(item.name, item.version).tags or {}).get(key) if rewrite else None
    client.set_model_version_tag(item.name, item.version, key, value)
    if not _live_run(item.run_id):
        return
    assert item.run_id is not None  # _live_run returns None for no run id
    try:
        client.log_text(item.run_id, value, f"{ARTIFACT_DIR}/{item.id}.json")
    except (MlflowException, OSError) as exc:
        if previous is None:
            client.delete_model_version_tag(item.name, item.version, key)
        else:
            client.set_model_version_tag(item.name, item.version, key, previous)
        raise PromptomatixError(f"could not write feedback {item.id} on run {item.run_id}: "
                                f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None


def read_version(version) -> list[Feedback]:
    """The feedback stored on one model version (its tags), oldest first. A tag that is not a
    feedback record (edited by hand) is skipped with a warning."""
    found = []
    for key, value in (version.tags or {}).items():
        if not key.startswith(TAG_PREFIX):
            continue
        try:
            found.append(Feedback.from_dict(json.loads(value)))
        except (ValueError, TypeError) as exc:
            log.warning("skipping tag %s on %s v%s: not a feedback record (%s)", key, version.name, version.version, exc)
    return sorted(found, key=lambda item: (item.created, item.id))


def default_author() -> str:
    """The user MLflow records on runs (MLFLOW_TRACKING_USERNAME or ~/.mlflow/credentials,
    else the login name), else the login name."""
    try:
        from mlflow.tracking.context.default_context import DefaultRunContext
        from mlflow.utils.mlflow_tags import MLFLOW_USER

        user = DefaultRunContext().tags().get(MLFLOW_USER)
        if user and user != "unknown":
            return str(user)
    except Exception as exc:  # a private MLflow module moved: fall back to the login name
        log.debug("MLflow user not found: %s", exc)
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name (some containers)
        return "unknown"


def _resolver(by: str) -> str:
    text = (by or "").strip()
    if not text:
        raise ConfigError("say what resolved the feedback (--by), e.g. the version that addressed it: name@4")
    if text.startswith("models:/") or "@" in text:
        version = versions.resolve(text)
        return f"models:/{version.name}/{version.version}"
    return text


def _live_run(run_id: str | None) -> str | None:
    """`run_id` if the run still exists (its artifact can be written), else None."""
    if not run_id:
        return None
    try:
        run = MlflowClient().get_run(run_id)
    except MlflowException:
        return None
    return run_id if run.info.lifecycle_stage == "active" else None


def _check_choice(label: str, value: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ConfigError(f"unknown {label} {value!r}: use one of {', '.join(choices)}")


def _encode(item: Feedback) -> str:
    return json.dumps(item.to_dict(), ensure_ascii=False, sort_keys=True)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[:limit] + "..."
