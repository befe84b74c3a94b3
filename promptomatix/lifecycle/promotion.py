"""Moving an alias (such as `champion`) between versions: promote with a score check, roll back.

In: a registered model name, a version, an alias; for `promote` optionally evaluation data, a
reason, `force`, and a target model to copy the version into first.
Out: a `PromotionDecision`, also recorded as tags `promotion.<alias>.*` on the version it is
about (decision, score, previous, previous_score, basis, digest, reason, model, time); a value
the decision did not use (no previous holder, no reason given) is left out, never written empty. The
registered model keeps the versions that held the alias in the tag `alias_history.<alias>`,
which `rollback` walks back. The Prompt Registry alias of the same name on `<name>-prompt`
follows the model alias to the prompt version linked with the model version.

The rule (`compare_versions`): a candidate may take the alias from its holder when its score on
the same data is at least the holder's. "The same data" is, in this order:
  1. a data set both were scored on by `evaluate` (same data digest, tags `test_score.<digest>`);
     with `data=...` both are evaluated on it first and that digest is used;
  2. else the same validation set: both versions' optimization runs have a `valid` dataset input
     with the same digest; their `validation_score` tags are compared;
  3. else there is no comparison: refused (PromotionError), unless `force=True`.
Both versions must also have been scored with the same metric (`record.METRIC_WEIGHTS`: the
same parts with the same weights) and the same final-evaluation metrics (`eval_metrics`), or the
scores would not mean the same; a version registered before the metric was recorded is compared
on its task type instead. A first holder needs no comparison. Every check runs before the first
write.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from promptomatix import record
from promptomatix.errors import RegistryError
from promptomatix.lifecycle import evaluation
from promptomatix.lifecycle import versions
from promptomatix.lifecycle.copies import check_target, copy_checked
from promptomatix.spec import Example

TAG_PREFIX = "promotion."
HISTORY_LIMIT = 100
MOVED = ("promoted", "forced", "rolled_back")


class PromotionError(RegistryError):
    """A promotion refused because the two versions have no score on the same data."""


@dataclass(frozen=True)
class Comparison:
    """How a candidate and a holder compare. `basis` is "test" or "validation", or "none" with
    `why` saying what is missing."""

    basis: str
    digest: str | None = None
    score: float | None = None
    previous_score: float | None = None
    why: str = ""


@dataclass(frozen=True)
class PromotionDecision:
    """What happened to `alias` on the registered model `name`. `decision` is promoted, forced,
    rejected, unchanged or rolled_back; `version` is the version it is about, `previous` the
    holder before. `copied_from` names the source version when the version is a fresh copy."""

    name: str
    alias: str
    version: str
    previous: str | None
    decision: str
    basis: str
    score: float | None = None
    previous_score: float | None = None
    digest: str | None = None
    reason: str = ""
    copied_from: str | None = None

    @property
    def moved(self) -> bool:
        return self.decision in MOVED

    def summary(self) -> str:
        where = f"{self.name}@{self.alias}"
        held = f"version {self.previous}" if self.previous else "no version"
        scores = ""
        if self.score is not None and self.previous_score is not None:
            sign = ">=" if self.score >= self.previous_score else "<"
            scores = (f": {self.score:.4f} {sign} {self.previous_score:.4f} on "
                      f"{'test data' if self.basis == 'test' else 'the validation set'} {self.digest}")
        copied = f" (copied from {self.copied_from})" if self.copied_from else ""
        if self.decision == "unchanged":
            return f"{where} already is version {self.version}; nothing changed"
        if self.decision == "rolled_back":
            return f"rolled back {where} to version {self.version} (was version {self.previous})"
        if self.decision == "rejected":
            return f"not promoted: version {self.version} scores below {where} ({held}){scores}"
        if self.decision == "forced":
            return (f"forced {where} to version {self.version}{copied} (was {held})"
                    f"{scores or ' without a comparison'}")
        first = " (first holder)" if self.basis == "first" else ""
        return f"promoted version {self.version}{copied} to {where}{first} (was {held}){scores}"


def compare_versions(candidate, holder, *, digest: str | None = None) -> Comparison:
    """Apply the rule of the module docstring; `digest` names the test data to use (else the
    candidate's latest shared one)."""
    different = different_metrics(candidate, holder)
    if different:
        return Comparison("none", why=different)
    ours, theirs = versions.test_scores(candidate), versions.test_scores(holder)
    shared = set(ours) & set(theirs)
    if digest is not None:
        shared &= {digest}
    if shared:
        latest = [(candidate.tags or {}).get(record.TEST_DIGEST), (holder.tags or {}).get(record.TEST_DIGEST)]
        chosen = next((d for d in latest if d in shared), None) or sorted(shared)[0]
        return Comparison("test", chosen, ours[chosen], theirs[chosen])
    if digest is not None:
        return Comparison("none", why=f"the two versions have no score on data {digest}")
    valid = versions.valid_digest(candidate), versions.valid_digest(holder)
    scores = versions.float_tag(candidate, record.VALIDATION_SCORE), versions.float_tag(holder, record.VALIDATION_SCORE)
    if valid[0] and valid[0] == valid[1] and None not in scores:
        return Comparison("validation", valid[0], scores[0], scores[1])
    return Comparison("none", why=(
        f"version {candidate.version} and version {holder.version} have no score on the same data "
        f"(test data: {', '.join(sorted(ours)) or 'none'} vs {', '.join(sorted(theirs)) or 'none'}; "
        f"validation sets: {valid[0] or 'unknown'} vs {valid[1] or 'unknown'})"))


def different_metrics(candidate, holder) -> str | None:
    """Why the two versions' scores do not mean the same (see the module docstring), or None."""
    ours, theirs = candidate.tags or {}, holder.tags or {}
    metrics = record.recorded_metric(ours), record.recorded_metric(theirs)
    if None in metrics:  # one predates the metric record: its task type says which metric it had
        kinds = ours.get(record.TASK_TYPE), theirs.get(record.TASK_TYPE)
        if kinds[0] != kinds[1]:
            return f"the versions have different task types ({kinds[0]} and {kinds[1]}), so different metrics"
        return None
    if metrics[0] != metrics[1]:
        return (f"version {candidate.version} was scored with {record.metric_label(metrics[0])} and version "
                f"{holder.version} with {record.metric_label(metrics[1])}, so their scores do not mean the same")
    finals = record.eval_metric_specs(ours), record.eval_metric_specs(theirs)
    if finals[0] != finals[1]:
        return (f"version {candidate.version} is evaluated with {','.join(finals[0]) or 'its metric'} and version "
                f"{holder.version} with {','.join(finals[1]) or 'its metric'}, so their scores do not mean the same")
    return None


def promote(name: str, version: str, alias: str, *, force: bool = False, reason: str = "",
            data: str | Sequence[Example] | None = None, to_model: str | None = None,
            show_progress: bool = True) -> PromotionDecision:
    """Give `alias` to version `version` of `name` if it scores at least as well as the holder on
    the same data (see the module docstring); `force` skips the check. With `data`, both are
    evaluated on it first. With `to_model`, the version is copied into that model and the alias
    set there (nothing is copied if the promotion is rejected). Raises RegistryError / DataError /
    PromotionError before any write."""
    versions.check_alias(alias)
    candidate = versions.get_version(name, version)
    prompt = versions.linked_prompt(candidate)
    target = name
    if to_model is not None:
        check_target(name, to_model)
        target = to_model
    holder = _holder(target, alias)
    if holder is not None and target == name and holder.version == candidate.version:
        return PromotionDecision(target, alias, str(candidate.version), str(holder.version), "unchanged", "none",
                                 reason=reason)
    comparison = None
    different = holder is not None and different_metrics(candidate, holder)
    if different and not force:  # scoring both on `data` would not help: refused before any write
        raise PromotionError(f"cannot compare: {different}; pass --force to promote anyway")
    if data is not None:
        prepared = [evaluation.prepare(v, data) for v in (candidate, holder) if v is not None]
        if len({p.digest for p in prepared}) > 1:
            raise PromotionError(f"version {candidate.version} and {target}@{alias} (version {holder.version}) "
                                 f"have different fields, so they cannot be scored on the same data")
        for item in prepared:
            evaluation.run(item, show_progress=show_progress)
        candidate = versions.get_version(name, str(candidate.version))
        holder = holder and versions.get_version(target, str(holder.version))
        comparison = holder and compare_versions(candidate, holder, digest=prepared[0].digest)
    elif holder is not None:
        comparison = compare_versions(candidate, holder)
    if holder is None:
        decision, comparison = "promoted", Comparison("first")
    elif comparison.basis == "none":
        if not force:
            raise PromotionError(f"cannot compare: {comparison.why}; pass --data FILE to score both on the same "
                                 f"data, or --force")
        decision = "forced"
    elif comparison.score >= comparison.previous_score:
        decision = "promoted"
    else:
        decision = "forced" if force else "rejected"
    previous = str(holder.version) if holder is not None else None
    if decision == "rejected":
        result = _decision(target, alias, str(candidate.version), previous, decision, comparison, reason)
        _write(_tag_steps(candidate, result))
        return result
    copied_from = None
    if to_model is not None:
        copied = copy_checked(candidate, prompt, target)
        copied_from = copied.source_uri
        candidate = versions.get_version(target, copied.version)
        prompt = versions.linked_prompt(candidate)
    result = _decision(target, alias, str(candidate.version), previous, decision, comparison, reason, copied_from)
    model = versions.get_model(target)
    _write(_alias_steps(target, alias, candidate, prompt, previous)
           + _history_steps(model, alias, versions.history(model, alias) + [str(candidate.version)])
           + _tag_steps(candidate, result))
    return result


def rollback(name: str, alias: str, *, reason: str = "") -> PromotionDecision:
    """Give `alias` back to the version that held it before the current holder (per the alias
    history kept by `promote`); the Prompt Registry alias follows."""
    versions.check_alias(alias)
    model = versions.get_model(name)
    current = (model.aliases or {}).get(alias)
    if current is None:
        raise RegistryError(f"model {name!r} has no alias {alias!r}; nothing to roll back")
    past = versions.history(model, alias)
    if len(past) < 2:
        raise RegistryError(f"no earlier holder of {name}@{alias} is recorded; nothing to roll back to")
    earlier = past[-2]
    try:
        target = MlflowClient().get_model_version(name, earlier)
    except MlflowException:
        raise RegistryError(f"version {earlier} of {name!r}, the holder of {alias!r} before version {current}, "
                            f"no longer exists") from None
    prompt = versions.linked_prompt(target)
    result = PromotionDecision(name, alias, str(target.version), str(current), "rolled_back", "rollback",
                               reason=reason)
    _write(_alias_steps(name, alias, target, prompt, str(current))
           + _history_steps(model, alias, past[:-1]) + _tag_steps(target, result))
    return result


def _holder(name: str, alias: str):
    """The holder of `alias` on `name`; None when the alias is unset or the model does not exist."""
    try:
        model = MlflowClient().get_registered_model(name)
    except MlflowException:
        return None
    number = (model.aliases or {}).get(alias)
    return MlflowClient().get_model_version(name, number) if number is not None else None


def _decision(name, alias, version, previous, decision, comparison: Comparison, reason, copied_from=None):
    return PromotionDecision(name, alias, version, previous, decision, comparison.basis, comparison.score,
                             comparison.previous_score, comparison.digest, reason, copied_from)


# Writes: each step is (do, undo); `_write` runs them in order and, if one fails, undoes the
# ones done (so a failed write leaves the registry as it was, as far as MLflow lets us).
Step = tuple[Callable[[], object], Callable[[], object]]


def _write(steps: list[Step]) -> None:
    done: list[Step] = []
    try:
        for step in steps:
            step[0]()
            done.append(step)
    except BaseException:
        for _, undo in reversed(done):
            try:
                undo()
            except MlflowException:
                pass
        raise


def _alias_steps(name: str, alias: str, version, prompt: tuple[str, str], previous: str | None) -> list[Step]:
    client = MlflowClient()
    prompt_name, prompt_version = prompt
    try:
        old_prompt = client.get_prompt_version_by_alias(prompt_name, alias).version
    except MlflowException:
        old_prompt = None

    def restore_model():
        if previous is None:
            client.delete_registered_model_alias(name, alias)
        else:
            client.set_registered_model_alias(name, alias, previous)

    def restore_prompt():
        if old_prompt is None:
            mlflow.genai.delete_prompt_alias(prompt_name, alias)
        else:
            mlflow.genai.set_prompt_alias(prompt_name, alias, int(old_prompt))

    return [
        (lambda: client.set_registered_model_alias(name, alias, str(version.version)), restore_model),
        (lambda: mlflow.genai.set_prompt_alias(prompt_name, alias, int(prompt_version)), restore_prompt),
    ]


def _history_steps(model, alias: str, past: list[str]) -> list[Step]:
    client = MlflowClient()
    key = versions.HISTORY_PREFIX + alias
    old = (model.tags or {}).get(key)

    def restore():
        if old is None:
            client.delete_registered_model_tag(model.name, key)
        else:
            client.set_registered_model_tag(model.name, key, old)

    return [(lambda: client.set_registered_model_tag(model.name, key, json.dumps(past[-HISTORY_LIMIT:])), restore)]


def _tag_steps(version, decision: PromotionDecision) -> list[Step]:
    client = MlflowClient()
    prefix = f"{TAG_PREFIX}{decision.alias}."
    fmt = lambda value: "" if value is None else f"{value:.4f}"  # noqa: E731
    values = {"decision": decision.decision, "model": decision.name, "score": fmt(decision.score),
              "previous": decision.previous or "", "previous_score": fmt(decision.previous_score),
              "basis": decision.basis, "digest": decision.digest or "",
              "reason": (decision.reason or f"no reason given; the rule: {decision.summary()}")[:5000],
              "copied_from": decision.copied_from or "",
              "time": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    old = version.tags or {}
    steps = []
    for key, value in values.items():
        full = prefix + key
        if not value.strip() and full not in old:
            continue  # what this decision did not use is left out, never written empty

        def do(full=full, value=value):
            if value.strip():
                client.set_model_version_tag(version.name, str(version.version), full, value)
            else:  # an earlier decision's value, which this one did not use: removed
                client.delete_model_version_tag(version.name, str(version.version), full)

        def undo(full=full):
            if full in old:
                client.set_model_version_tag(version.name, str(version.version), full, old[full])
            else:
                client.delete_model_version_tag(version.name, str(version.version), full)

        steps.append((do, undo))
    return steps
