"""Reading registered versions: names, versions and aliases resolved with one-line errors, the
prompt version a model version is linked to and its text, the alias history, and the comparison
table.

In: a registered model name (and a version number, alias or `name@ref` string).
Out: MLflow `ModelVersion` entities, or plain dicts for `compare`. Nothing here writes.

Every score `compare` lists carries its rows, its 95% interval and the data it is on (name and
digest): the validation score from the version's optimization run (its metrics
`optimized_score_low/high/rows` and its `valid` dataset input), the test score from the tags
`evaluate` writes. Scores of one kind on different data are marked not comparable.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from promptomatix.errors import RegistryError
from promptomatix.run.registration import model_exists, prompt_name_for, PROMPT_SUFFIX
from promptomatix.tracking import record
from promptomatix.tracking.mlflow_tracker import logged_setting

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion

# Registered-model tag holding the versions that held an alias, oldest first (JSON list).
HISTORY_PREFIX = "alias_history."

_ALIAS = re.compile(r"^[\w-]{1,255}$")
_RESERVED_ALIAS = re.compile(r"^(latest|[vV]\d+)$", re.IGNORECASE)
_PROMPT_URI = re.compile(r"^prompts:/(?P<name>[^/@]+)/(?P<version>\d+)$")


def check_alias(alias: str) -> str:
    """`alias` if MLflow accepts it for both models and prompts, else a RegistryError."""
    if not alias or not _ALIAS.match(alias):
        raise RegistryError(f"invalid alias {alias!r}: use letters, digits, '_' or '-'")
    if _RESERVED_ALIAS.match(alias):
        raise RegistryError(f"alias {alias!r} is reserved by MLflow ('latest' and v<number> name versions)")
    return alias


def get_model(name: str):
    """The `RegisteredModel` named `name`; a RegistryError naming the problem otherwise."""
    client = MlflowClient()
    try:
        return client.get_registered_model(name)
    except MlflowException as exc:  # only a missing model is "no such model"; a store that stays
        if exc.error_code != "RESOURCE_DOES_NOT_EXIST":  # unreachable is its own error
            raise
    if client.get_prompt(name) is not None:
        owner = name[:-len(PROMPT_SUFFIX)] if name.endswith(PROMPT_SUFFIX) else ""
        hint = f"; its model is {owner!r}" if owner and model_exists(client, owner) else ""
        raise RegistryError(f"{name!r} is a prompt, not a registered model{hint}")
    raise RegistryError(f"no registered model named {name!r}")


def get_version(name: str, version: str):
    """Version `version` (a number, `v<number>` or `models:/<name>/<number>`) of the registered
    model `name`. A URI naming another model is refused: versions are promoted within their model."""
    model = get_model(name)
    number = _version_number(name, str(version))
    try:
        return MlflowClient().get_model_version(model.name, number)
    except MlflowException:
        known = ", ".join(str(v.version) for v in all_versions(model.name)) or "none"
        raise RegistryError(f"model {name!r} has no version {number} (versions: {known})") from None


def _version_number(name: str, version: str) -> str:
    text = version.strip()
    if text.startswith("models:/"):
        owner, sep, number = text[len("models:/"):].rpartition("/")
        if not sep or "@" in number:
            raise RegistryError(f"{version!r} is not a model version URI such as models:/{name}/3")
        if owner != name:
            raise RegistryError(f"{version} is a version of model {owner!r}, not of {name!r}; "
                                f"copy it into {name!r} with --to-model first")
        text = number
    if text[:1] in "vV":
        text = text[1:]
    if not text.isdigit() or int(text) < 1:
        raise RegistryError(f"invalid version {version!r}: give a version number such as 3")
    return str(int(text))


def resolve(ref: str):
    """The model version named by `name@alias`, `name@3`, `models:/name/3` or `models:/name@alias`."""
    text = ref.strip()
    if text.startswith("models:/"):
        text = text[len("models:/"):]
        if "@" not in text:
            name, sep, number = text.rpartition("/")
            if not sep:
                raise RegistryError(f"{ref!r} names no version: use models:/<name>/<version> or <name>@<alias>")
            return get_version(name, number)
    name, sep, tail = text.rpartition("@")
    if not sep or not name or not tail:
        raise RegistryError(f"{ref!r} names no version: use <name>@<alias> or <name>@<version>")
    if tail.isdigit() or re.fullmatch(r"[vV]\d+", tail):
        return get_version(name, tail)
    model = get_model(name)
    aliased = (model.aliases or {}).get(tail)
    if aliased is None:
        known = ", ".join(sorted(model.aliases or {})) or "none"
        raise RegistryError(f"model {name!r} has no alias {tail!r} (aliases: {known})")
    return MlflowClient().get_model_version(name, aliased)


def linked_prompt(version) -> tuple[str, str]:
    """(prompt name, prompt version) of the Prompt Registry version registered with this model
    version. Refuses a version whose prompt belongs to another model (a copy made outside
    promptomatix) or that has none (not registered by promptomatix)."""
    uri = (version.tags or {}).get(record.PROMPT_URI, "")
    match = _PROMPT_URI.match(uri)
    if not match:
        raise RegistryError(f"version {version.version} of {version.name!r} has no linked prompt version "
                            f"(tag prompt_uri); it was not registered by promptomatix")
    expected = prompt_name_for(version.name)
    if match["name"] != expected:
        raise RegistryError(f"version {version.version} of {version.name!r} is linked to prompt {uri}, which belongs "
                            f"to another model (expected {expected!r}); copy versions with promote --to-model")
    try:
        found = MlflowClient().get_prompt_version(match["name"], match["version"])
    except MlflowException:
        found = None
    if found is None:
        raise RegistryError(f"version {version.version} of {version.name!r} is linked to {uri}, which no longer exists")
    return match["name"], match["version"]


def prompt_text(version) -> str:
    """The prompt template registered with the model version (Prompt Registry), read without
    linking it to any active run."""
    name, number = linked_prompt(version)
    template = MlflowClient().get_prompt_version(name, number).template
    if not isinstance(template, str):
        raise RegistryError(f"{name} v{number} is a chat prompt; feedback spans need a text prompt")
    return template


def history(model, alias: str) -> list[str]:
    """Versions that held `alias` on the registered model, oldest first, the current holder last
    (a holder set outside promptomatix is appended, so rollback still returns to the one before)."""
    try:
        past = [str(v) for v in json.loads((model.tags or {}).get(HISTORY_PREFIX + alias, "[]"))]
    except (ValueError, TypeError):
        past = []
    current = (model.aliases or {}).get(alias)
    if current is not None and (not past or past[-1] != str(current)):
        past.append(str(current))
    return past


def float_tag(version, key: str) -> float | None:
    try:
        return float((version.tags or {})[key])
    except (KeyError, ValueError):
        return None


def test_scores(version) -> dict[str, float]:
    """Data digest -> test score, for every data set `evaluate` scored this version on."""
    scores = {}
    for key in (version.tags or {}):
        if key.startswith(record.TEST_SCORE_PREFIX):
            value = float_tag(version, key)
            if value is not None:
                scores[key[len(record.TEST_SCORE_PREFIX):]] = value
    return scores


def valid_digest(version) -> str | None:
    """Digest of the validation set the version's optimization run scored it on (its `valid`
    dataset input), or None when the run or the input is gone."""
    dataset = _valid_dataset(run_of(version))
    return dataset.digest if dataset is not None else None


def valid_rows(version) -> int | None:
    """How many rows the version's validation set has (the `valid` dataset input's profile), or
    None when the run, the input or its profile is gone."""
    return _profile_rows(_valid_dataset(run_of(version)))


def _profile_rows(dataset) -> int | None:
    """`num_rows` of a dataset entity's profile, or None."""
    try:
        return int(json.loads(dataset.profile)["num_rows"]) if dataset is not None and dataset.profile else None
    except (ValueError, TypeError, KeyError):
        return None


def run_of(version):
    """The version's optimization run (an mlflow Run), or None when it has none or it is gone."""
    return _get_run(version.run_id)


def _get_run(run_id: str | None):
    if not run_id:
        return None
    try:
        return MlflowClient().get_run(run_id)
    except MlflowException:
        return None


def _valid_dataset(run):
    """The `valid` dataset (an mlflow Dataset entity) of an optimization run, or None."""
    for item in run.inputs.dataset_inputs if run is not None and run.inputs else ():
        if item.dataset.name == record.VALID:
            return item.dataset
    return None


# Metrics of the optimization run: the registered score's 95% interval and rows (written by `recorder`).
_MAX_HOPS = 5  # parent runs followed to find where inherited data came from
_HELD_OUT = " (held-out part)"  # validation rows split off the training file
# Tags `evaluate` writes on a version with its test score: the 95% interval and the rows.


def validation_fields(version) -> dict:
    """The version's validation score with its interval and rows, and the data it is on:
    validation_score, validation_score_low/high, validation_rows, validation_data (a file as
    given, `<file> (held-out part)`, or `synthetic`), validation_data_digest. None where the
    run or its record is missing (versions registered before intervals were logged)."""
    run = run_of(version)
    metrics = run.data.metrics if run is not None else {}
    dataset = _valid_dataset(run)
    rows = metrics.get(record.OPTIMIZED_ROWS)
    return {"validation_score": float_tag(version, record.VALIDATION_SCORE),
            "validation_score_low": metrics.get(record.OPTIMIZED_LOW),
            "validation_score_high": metrics.get(record.OPTIMIZED_HIGH),
            "validation_rows": int(rows) if rows is not None else _profile_rows(dataset),
            "validation_data": _data_source(run), "validation_data_digest": dataset.digest if dataset else None}


def _data_source(run, hops: int = _MAX_HOPS) -> str | None:
    """Where an optimization run's validation rows came from: its `--valid-data` file, part of its
    `--train-data` file, synthetic rows, or (a run started from a version or resumed) its parent's."""
    if run is None:
        return None
    params, tags = run.data.params, run.data.tags
    valid, train = logged_setting(params, "valid_data"), logged_setting(params, "train_data")
    if valid:
        return valid
    if train:
        return train + _HELD_OUT
    if record.SYNTHETIC_ACCEPTED in run.data.metrics:
        return "synthetic"
    parent = tags.get(record.PARENT_RUN) or tags.get(record.RESUMED_FROM)
    return _data_source(_get_run(parent), hops - 1) if parent and hops > 0 else None


def evaluation_fields(version) -> dict:
    """The version's latest test score (from `evaluate`) with its interval and rows, and the data
    it is on: test_score, test_score_low/high, test_rows, test_data (the file as given),
    test_data_digest. None where not recorded (never evaluated, or before intervals were)."""
    tags = version.tags or {}
    rows = float_tag(version, record.TEST_ROWS)
    return {"test_score": float_tag(version, record.TEST_SCORE),
            "test_score_low": float_tag(version, record.TEST_LOW), "test_score_high": float_tag(version, record.TEST_HIGH),
            "test_rows": int(rows) if rows is not None else None,
            "test_data": tags.get(record.TEST_DATA), "test_data_digest": tags.get(record.TEST_DIGEST)}


def data_groups(rows: Sequence[dict], kind: str) -> dict[str, list[str]]:
    """Data digest -> the versions whose `kind` ("validation" or "test") score is on it, for the
    rows of `compare` with a score and a known digest; more than one key: not comparable."""
    groups: dict[str, list[str]] = {}
    for row in rows:
        digest = row.get(f"{kind}_data_digest")
        if row.get(f"{kind}_score") is not None and digest:
            groups.setdefault(digest, []).append(row["version"])
    return groups


def _mark_comparable(rows: list[dict]) -> list[dict]:
    """Set `<kind>_comparable` on each row: True when every version's `kind` score is on the same
    data, False when they are on different data, None when the row has no score or no digest."""
    for kind in ("validation", "test"):
        same = len(data_groups(rows, kind)) <= 1
        for row in rows:
            known = row[f"{kind}_score"] is not None and row[f"{kind}_data_digest"]
            row[f"{kind}_comparable"] = same if known else None
    return rows


def data_name(source: str | None) -> str | None:
    """A data source as a table shows it: a file's name without its folders (`hf:` names and
    `synthetic` as they are)."""
    if not source or source.startswith("hf:"):
        return source
    path, held_out = (source[:-len(_HELD_OUT)], _HELD_OUT) if source.endswith(_HELD_OUT) else (source, "")
    return (path.replace("\\", "/").rstrip("/").rpartition("/")[2] or path) + held_out


def compare(name: str) -> list[dict]:
    """One dict per version of `name`, oldest first: version, parent_version (the version it was
    optimized from, or None), aliases, metric (what the validation score was measured with; None
    for a version registered before it was recorded), the fields of `validation_fields` and
    `evaluation_fields` (each score with its 95% interval, rows and data) with `validation_comparable`
    and `test_comparable` (see `_mark_comparable`), prompt_words, cost, backend, task_type,
    run_id, created (ISO 8601, UTC). Scores and cost are floats or None."""
    model = get_model(name)
    by_version: dict[str, list[str]] = {}
    for alias, number in (model.aliases or {}).items():
        by_version.setdefault(str(number), []).append(alias)
    rows = []
    for version in all_versions(model.name):
        tags = version.tags or {}
        rows.append({
            "version": str(version.version),
            "parent_version": tags.get(record.PARENT_VERSION_TAG),
            "aliases": sorted(by_version.get(str(version.version), [])),
            "metric": tags.get(record.METRIC),
            **validation_fields(version),
            **evaluation_fields(version),
            "prompt_words": _prompt_words(tags.get(record.PROMPT_URI, "")),
            "cost": float_tag(version, record.COST),
            "backend": tags.get(record.BACKEND),
            "task_type": tags.get(record.TASK_TYPE),
            "run_id": version.run_id,
            "created": datetime.fromtimestamp(version.creation_timestamp / 1000, timezone.utc)
            .isoformat(timespec="seconds"),
        })
    return _mark_comparable(rows)


def all_versions(name: str) -> list[ModelVersion]:
    """Every version of the registered model `name`, oldest first (all result pages)."""
    client = MlflowClient()
    found: list[ModelVersion] = []
    token: str | None = None
    while True:
        page = client.search_model_versions(f"name = '{name}'", page_token=token)
        found.extend(page)
        token = page.token
        if not token:
            return sorted(found, key=lambda v: int(v.version))


def _prompt_words(uri: str) -> int | None:
    match = _PROMPT_URI.match(uri)
    if not match:
        return None
    try:
        prompt = MlflowClient().get_prompt_version(match["name"], match["version"])
    except MlflowException:
        return None
    if prompt is None or not isinstance(prompt.template, str):
        return None
    from promptomatix.scoring import prompt_words

    return prompt_words(prompt.template)
