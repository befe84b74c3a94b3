"""Moving an alias (such as `champion`) between versions: promote with a score check, roll back.

In: a registered model name, a version, an alias; for `promote` optionally evaluation data, a
reason, `force`, the rule's options (`require_gain`, `min_gain`), and a target model to copy the
version into first.
Out: a `PromotionDecision`, also recorded as tags `promotion.<alias>.*` on the version it is
about and on the prompt version linked to it (decision, score, previous, previous_score, basis,
digest, reason, model, time; with a paired test n, score_low/score_high,
previous_score_low/previous_score_high, difference, difference_low, difference_high, test,
p_value, alpha; rule, verdict and summary), and as a "Promotion (<alias>, <time>): ..."
paragraph of the model version's description and of the prompt version's commit message (the
description its page shows: there the paragraph comes first, before the message it was
registered with), replacing that alias's earlier one and keeping the rest; a value the decision
did not use (no previous holder, no reason given, no paired test) is left out, never written
empty. The registered model keeps the versions that held the alias in the tag
`alias_history.<alias>`, which `rollback` walks back. The Prompt Registry alias of the same name
on `<name>-prompt` follows the model alias to the prompt version linked with the model version.

What a candidate is compared on (`compare_versions`), in this order:
  1. a data set both were scored on by `evaluate` (same data digest, tags `test_score.<digest>`);
     with `data=...` both are evaluated on it first and that digest is used. Their per-row
     results on it are paired row by row (`paired`): McNemar's exact test for right/wrong rows,
     the paired bootstrap otherwise;
  2. else the same validation set: both versions' optimization runs have a `valid` dataset input
     with the same digest; their `validation_score` tags are compared as two point scores (no
     paired test: the validation set chose each version's prompt, so a test on it would
     overstate a gain);
  3. else there is no comparison: refused (PromotionError), unless `force=True`.
The rule with a paired test (`paired.Rule`, `stats.decide`): a candidate significantly worse
(p < 0.05 and a negative difference) is rejected; any other is promoted, and the decision says
when its gain is not significant. `require_gain` promotes only a significant gain; `min_gain`
asks for a point difference of at least that much. Without a paired test (2.) the candidate
needs a score at least the holder's (and a gain of `min_gain`); `require_gain` is refused there
(PromotionError: give data). `force` moves the alias whatever the rule says ("forced").
Both versions must also have been scored with the same metric (`record.METRIC_WEIGHTS`: the
same parts with the same weights) and the same final-evaluation metrics (`eval_metrics`), or the
scores would not mean the same; a version registered before the metric was recorded is compared
on its task type instead. A first holder needs no comparison. Every check runs before the first
write to the registry (with `data`, the two evaluation runs come first).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timezone

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from promptomatix.errors import PermissionDeniedError, RegistryError
from promptomatix.lifecycle import paired, version_evaluation, versions
from promptomatix.lifecycle.copies import check_target, copy_checked, PARAGRAPH_START, split_commit_message
from promptomatix.lifecycle.paired import PromotionError, Rule
from promptomatix.run.registration import promote_hint, PROMOTE_HINT_START
from promptomatix.scoring import stats
from promptomatix.task.spec import Example
from promptomatix.tracking import record, storeretry

TAG_PREFIX = "promotion."
HISTORY_LIMIT = 100
MOVED = ("promoted", "forced", "rolled_back")
DESCRIPTION_LIMIT = 5000  # MLflow's column for a model version's description
# Why the validation fallback has no paired test (see the module docstring).
VALIDATION_UNPAIRED = "the validation set chose the prompts, so a test on it would overstate a gain"
# What a paired verdict (`paired.verdict`) that refuses reads as in a summary.
_REFUSED = {"worse": "significantly worse", "no significant gain": "no significant gain"}

__all__ = ["Comparison", "PromotionDecision", "PromotionError", "Rule", "compare_versions", "different_metrics",
           "promote", "rollback"]


@dataclass(frozen=True)
class Comparison:
    """How a candidate and a holder compare. `basis` is "test" or "validation", or "none" with
    `why` saying what is missing. `paired` is the paired test on `n` rows, or None with
    `unpaired` saying why there is none (`n` then counts the validation set's rows, if known)."""

    basis: str
    digest: str | None = None
    score: float | None = None
    previous_score: float | None = None
    why: str = ""
    paired: stats.Comparison | None = None
    n: int | None = None
    unpaired: str = ""


@dataclass(frozen=True)
class PromotionDecision:
    """What happened to `alias` on the registered model `name`. `decision` is promoted, forced,
    rejected, unchanged or rolled_back; `version` is the version it is about, `previous` the
    holder before. `copied_from` names the source version when the version is a fresh copy.
    `paired` is the paired test of holder (a) and candidate (b) on `n` rows (None without one,
    `unpaired` saying why), `rule` what the candidate needed and `verdict` what the test found
    (`paired.verdict`: better, not worse, worse, ...)."""

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
    paired: stats.Comparison | None = None
    n: int | None = None
    rule: str = ""
    verdict: str = ""
    unpaired: str = ""

    @property
    def moved(self) -> bool:
        return self.decision in MOVED

    def summary(self) -> str:
        """One line: what happened, both scores (with intervals and the test when paired)."""
        where = f"{self.name}@{self.alias}"
        held = f"version {self.previous}" if self.previous else "no version"
        scores = self._scores()
        copied = f" (copied from {self.copied_from})" if self.copied_from else ""
        if self.decision == "unchanged":
            return f"{where} already is version {self.version}; nothing changed"
        if self.decision == "rolled_back":
            return f"rolled back {where} to version {self.version} (was version {self.previous})"
        if self.decision == "rejected":
            if self.verdict:
                return (f"not promoted ({_REFUSED.get(self.verdict, self.verdict)}): version {self.version} "
                        f"against {where} ({held}){scores}")
            return f"not promoted: version {self.version} scores below {where} ({held}){scores}"
        if self.decision == "forced":
            refused = f" (refused without --force: {_REFUSED.get(self.verdict, self.verdict)})" if self.verdict else ""
            return (f"forced {where} to version {self.version}{copied} (was {held})"
                    f"{scores or ' without a comparison'}{refused}")
        first = " (first holder)" if self.basis == "first" else ""
        return f"promoted version {self.version}{copied} to {where}{first} (was {held}){scores}{self._gain()}"

    def _scores(self) -> str:
        """`: <holder> -> <candidate>, <difference>, <test> on 200 rows of test data <digest>`, or the
        two point scores and why there is no paired test; "" without a comparison."""
        if self.paired is not None:
            return f": {stats.describe(self.paired)} on {self.n} rows of test data {self.digest}"
        if self.score is None or self.previous_score is None:
            return ""
        sign = ">=" if self.score >= self.previous_score else "<"
        rows = f"{self.n} rows; " if self.n else ""
        return (f": {self.score:.4f} {sign} {self.previous_score:.4f} on "
                f"{'test data' if self.basis == 'test' else 'the validation set'} {self.digest} "
                f"({rows}no paired test: {self.unpaired})")

    def _gain(self) -> str:
        """For a promotion on a paired test: ` (significant gain)` or ` (gain not significant: ...)`."""
        if self.paired is None:
            return ""
        if self.paired.better:
            return " (significant gain)"
        return f" (gain not significant: {stats.format_p(self.paired.p_value)}, alpha {self.paired.alpha:g})"


def compare_versions(candidate, holder, *, digest: str | None = None,
                     rows: tuple[Sequence[dict], Sequence[dict]] | None = None) -> Comparison:
    """Apply the order of the module docstring; `digest` names the test data to use (else the
    candidate's latest shared one); `rows`, the (candidate, holder) per-row results on it when
    they were just produced (else they are read from the evaluation runs)."""
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
        return _test_comparison(candidate, holder, chosen, (ours[chosen], theirs[chosen]), rows)
    if digest is not None:
        return Comparison("none", why=f"the two versions have no score on data {digest}")
    valid = versions.valid_digest(candidate), versions.valid_digest(holder)
    scores = versions.float_tag(candidate, record.VALIDATION_SCORE), versions.float_tag(holder, record.VALIDATION_SCORE)
    if valid[0] and valid[0] == valid[1] and None not in scores:
        return Comparison("validation", valid[0], scores[0], scores[1], n=versions.valid_rows(candidate),
                          unpaired=VALIDATION_UNPAIRED)
    return Comparison("none", why=(
        f"version {candidate.version} and version {holder.version} have no score on the same data "
        f"(test data: {', '.join(sorted(ours)) or 'none'} vs {', '.join(sorted(theirs)) or 'none'}; "
        f"validation sets: {valid[0] or 'unknown'} vs {valid[1] or 'unknown'})"))


def _test_comparison(candidate, holder, digest: str, scores: tuple[float, float],
                     rows: tuple[Sequence[dict], Sequence[dict]] | None) -> Comparison:
    """The comparison on test data `digest`: paired row by row when both versions' per-row results
    are at hand (`rows`) or can be read; else the two point scores, saying why not paired.
    Raises PromotionError when the rows do not pair up."""
    if rows is None:
        loaded = [paired.stored_rows(version, digest) for version in (candidate, holder)]
        missing = next((why for _, why in loaded if why), "")
        if missing:
            return Comparison("test", digest, *scores, unpaired=missing)
        rows = (loaded[0][0] or [], loaded[1][0] or [])
    what = f"the results of version {candidate.version} and version {holder.version} on data {digest}"
    result = paired.compare_rows(rows[1], rows[0], what)
    return Comparison("test", digest, *scores, paired=result, n=result.n)


def different_metrics(candidate, holder) -> str | None:
    """Why the two versions' scores do not mean the same (see the module docstring), or None."""
    ours, theirs = candidate.tags or {}, holder.tags or {}
    metric, other = record.recorded_metric(ours), record.recorded_metric(theirs)
    if metric is None or other is None:  # one predates the metric record: its task type says which metric it had
        kinds = ours.get(record.TASK_TYPE), theirs.get(record.TASK_TYPE)
        if kinds[0] != kinds[1]:
            return f"the versions have different task types ({kinds[0]} and {kinds[1]}), so different metrics"
        return None
    if metric != other:
        return (f"version {candidate.version} was scored with {record.metric_label(metric)} and version "
                f"{holder.version} with {record.metric_label(other)}, so their scores do not mean the same")
    finals = record.eval_metric_specs(ours), record.eval_metric_specs(theirs)
    if finals[0] != finals[1]:
        return (f"version {candidate.version} is evaluated with {','.join(finals[0]) or 'its metric'} and version "
                f"{holder.version} with {','.join(finals[1]) or 'its metric'}, so their scores do not mean the same")
    return None


def promote(name: str, version: str, alias: str, *, force: bool = False, reason: str = "",
            data: str | Sequence[Example] | None = None, to_model: str | None = None,
            require_gain: bool = False, min_gain: float = 0.0, show_progress: bool = True) -> PromotionDecision:
    """Give `alias` to version `version` of `name` if the rule of the module docstring allows it
    against the holder (`require_gain`, `min_gain`: see there); `force` skips the check. With
    `data`, both are evaluated on it first. With `to_model`, the version is copied into that model
    and the alias set there (nothing is copied if the promotion is rejected). Raises RegistryError
    / DataError / ConfigError / PromotionError before any write to the registry; a
    PermissionDeniedError when the tracking server refuses a write (403: a user without EDIT or
    MANAGE on the model), with whatever was written undone."""
    storeretry.install()  # a write whose answer is lost is retried, and done once (storeretry.py)
    with _denied_in_one_line("promoting", to_model or name):
        return _promote(name, version, alias, force=force, reason=reason, data=data, to_model=to_model,
                        require_gain=require_gain, min_gain=min_gain, show_progress=show_progress)


def _promote(name: str, version: str, alias: str, *, force: bool, reason: str,
             data: str | Sequence[Example] | None, to_model: str | None, require_gain: bool, min_gain: float,
             show_progress: bool) -> PromotionDecision:
    versions.check_alias(alias)
    rule = Rule(require_gain, min_gain).check()
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
    different = holder is not None and different_metrics(candidate, holder)
    if different and not force:  # scoring both on `data` would not help: refused before any write
        raise PromotionError(f"cannot compare: {different}; pass --force to promote anyway")
    candidate, holder, comparison = _compared(candidate, holder, data, show_progress)
    decision, verdict = _apply(comparison, rule, force)
    comparison = comparison or Comparison("first")
    result = PromotionDecision(
        target, alias, str(candidate.version), str(holder.version) if holder is not None else None, decision,
        comparison.basis, comparison.score, comparison.previous_score, comparison.digest, reason,
        paired=comparison.paired, n=comparison.n, rule=str(rule) if comparison.basis in ("test", "validation") else "",
        verdict=verdict, unpaired=comparison.unpaired)
    if decision == "rejected":
        _write(_record_steps(candidate, prompt, result))
        return result
    return _move(result, candidate, prompt, to_model)


def _compared(candidate, holder, data: str | Sequence[Example] | None, show_progress: bool):
    """(candidate, holder, Comparison or None when there is no holder), both versions evaluated on
    `data` first when given (then re-read, with their new tags)."""
    if data is None:
        return candidate, holder, holder and compare_versions(candidate, holder)
    prepared = [version_evaluation.prepare(v, data) for v in (candidate, holder) if v is not None]
    if len({p.digest for p in prepared}) > 1:
        raise PromotionError(f"version {candidate.version} of {candidate.name!r} and version {holder.version} of "
                             f"{holder.name!r} have different fields, so they cannot be scored on the same data")
    reports = [version_evaluation.run(item, show_progress=show_progress) for item in prepared]
    candidate = versions.get_version(candidate.name, str(candidate.version))
    if holder is None:
        return candidate, None, None
    holder = versions.get_version(holder.name, str(holder.version))
    rows = (list(reports[0].rows), list(reports[1].rows))
    return candidate, holder, compare_versions(candidate, holder, digest=prepared[0].digest, rows=rows)


def _apply(comparison: Comparison | None, rule: Rule, force: bool) -> tuple[str, str]:
    """(decision, verdict) of the rule on `comparison` (None: a first holder). Raises
    PromotionError, unless `force`, when there is nothing to compare or the rule needs a test
    there is not."""
    if comparison is None:
        return "promoted", ""
    if comparison.basis == "none":
        if not force:
            raise PromotionError(f"cannot compare: {comparison.why}; pass --data FILE to score both on the same "
                                 f"data, or --force")
        return "forced", ""
    if comparison.paired is not None:
        passes, verdict = paired.verdict(comparison.paired, rule)
    elif rule.require_gain:
        if not force:
            raise PromotionError(f"cannot test the gain: no paired test is possible ({comparison.unpaired}); "
                                 f"pass --data FILE to score both on the same data, or --force")
        passes, verdict = False, "no paired test"
    else:
        score, previous = comparison.score, comparison.previous_score
        assert score is not None and previous is not None  # a test or validation comparison has both scores
        if rule.min_gain > 0 and round(score - previous, 4) < rule.min_gain:
            passes, verdict = False, f"gain below the minimum of {rule.min_gain:g}"
        else:
            passes, verdict = score >= previous, ""
    return ("promoted" if passes else "forced" if force else "rejected"), verdict


def _move(result: PromotionDecision, candidate, prompt: tuple[str, str], to_model: str | None) -> PromotionDecision:
    """Write a promotion: copy the version into `to_model` first if asked, then move both aliases,
    extend the alias history and record the decision (all undone if one write fails)."""
    if to_model is not None:
        copied = copy_checked(candidate, prompt, to_model)
        candidate = versions.get_version(to_model, copied.version)
        prompt = versions.linked_prompt(candidate)
        result = replace(result, version=str(candidate.version), copied_from=copied.source_uri)
    model = versions.get_model(result.name)
    _write(_alias_steps(result.name, result.alias, candidate, prompt, result.previous)
           + _history_steps(model, result.alias, versions.history(model, result.alias) + [str(candidate.version)])
           + _record_steps(candidate, prompt, result) + _replaced_steps(result.name, result.previous, result))
    return result


def rollback(name: str, alias: str, *, reason: str = "") -> PromotionDecision:
    """Give `alias` back to the version that held it before the current holder (per the alias
    history kept by `promote`); the Prompt Registry alias follows. A PermissionDeniedError as in
    `promote`."""
    storeretry.install()
    with _denied_in_one_line("rolling back", name):
        return _rollback(name, alias, reason=reason)


def _rollback(name: str, alias: str, *, reason: str) -> PromotionDecision:
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
           + _history_steps(model, alias, past[:-1]) + _record_steps(target, prompt, result)
           + _replaced_steps(name, str(current), result))
    return result


# MLflow's basic-auth app (`mlflow server --app-name basic-auth`) answers 403 to a write by a user
# whose permission on the registered model (or prompt) is below EDIT; MLflow's client raises it
# as an MlflowException with this code.
DENIED = "PERMISSION_DENIED"


@contextmanager
def _denied_in_one_line(action: str, model: str) -> Iterator[None]:
    """A 403 from the tracking server inside the block becomes a PermissionDeniedError naming the
    user, the permission and the registered model `model` (a refused prompt alias is named by the
    alias step itself, `_on_prompt`)."""
    try:
        yield
    except MlflowException as exc:
        if exc.error_code != DENIED:
            raise
        raise PermissionDeniedError(_denied_message(action, f"registered model {model!r}")) from None


def _denied_message(action: str, resource: str) -> str:
    user = os.environ.get("MLFLOW_TRACKING_USERNAME")
    who = f"user {user!r}" if user else "this user (no MLFLOW_TRACKING_USERNAME)"
    return (f"{who} lacks EDIT permission (EDIT or MANAGE) on {resource}, which {action} needs: the tracking "
            f"server refused the write (403); nothing changed")


def _on_prompt(write: Callable[[], object], prompt_name: str, action: str) -> Callable[[], object]:
    """`write` (a step on the prompt `prompt_name`), with a 403 named as a missing permission on
    that prompt."""
    def run() -> object:
        try:
            return write()
        except MlflowException as exc:
            if exc.error_code != DENIED:
                raise
            raise PermissionDeniedError(_denied_message(action, f"prompt {prompt_name!r}")) from None
    return run


def _holder(name: str, alias: str):
    """The holder of `alias` on `name`; None when the alias is unset or the model does not exist
    (a store that does not answer is raised: read as "no holder", the candidate would take the
    alias without being compared)."""
    try:
        model = MlflowClient().get_registered_model(name)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        return None
    number = (model.aliases or {}).get(alias)
    return MlflowClient().get_model_version(name, number) if number is not None else None


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
        (_on_prompt(lambda: mlflow.genai.set_prompt_alias(prompt_name, alias, int(prompt_version)), prompt_name,
                    "moving its alias"), restore_prompt),
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


def _record_steps(version, prompt: tuple[str, str], decision: PromotionDecision) -> list[Step]:
    """Record `decision` on the model version (tags, a paragraph of its description) and on the
    prompt version linked to it (tags, a paragraph of its commit message)."""
    client = MlflowClient()
    values = _tag_values(decision)
    found = client.get_prompt_version(*prompt)
    model_tags = _tag_steps(values, version.tags or {}, lambda key, value: client.set_model_version_tag(
        version.name, str(version.version), key, value), lambda key: client.delete_model_version_tag(
        version.name, str(version.version), key))
    prompt_tags = _tag_steps(values, (found.tags if found is not None else None) or {},
                             lambda key, value: client.set_prompt_version_tag(*prompt, key, value),
                             lambda key: client.delete_prompt_version_tag(*prompt, key))
    paragraph = _paragraph(decision, values[TAG_PREFIX + decision.alias + ".time"])
    return model_tags + prompt_tags + _note_steps(version, prompt, decision.alias, paragraph)


def _paragraph(decision: PromotionDecision, time: str) -> str:
    """What the decision says where a person reads a version: "Promotion (<alias>, <time>):
    <summary>. Reason: <reason>"."""
    text = f"{_marker(decision.alias)}{time}): {decision.summary()}." + (
        f" Reason: {decision.reason}" if decision.reason else "")
    return text[:DESCRIPTION_LIMIT // 2]


def _marker(alias: str) -> str:
    return f"{PARAGRAPH_START}{alias}, "


def _note_steps(version, prompt: tuple[str, str], alias: str, paragraph: str) -> list[Step]:
    """`paragraph` as the alias's paragraph of the model version's description and of its prompt
    version's commit message (the description the prompt page shows, which lists only a few
    tags), and as the tag `promotion.<alias>` of both."""
    client = MlflowClient()
    key = TAG_PREFIX + alias
    found = client.get_prompt_version(*prompt)
    steps = _tag_steps({key: paragraph[:5000]}, version.tags or {}, lambda k, v: client.set_model_version_tag(
        version.name, str(version.version), k, v), lambda k: client.delete_model_version_tag(
        version.name, str(version.version), k))
    steps += _tag_steps({key: paragraph[:5000]}, (found.tags if found is not None else None) or {},
                        lambda k, v: client.set_prompt_version_tag(*prompt, k, v),
                        lambda k: client.delete_prompt_version_tag(*prompt, k))
    return steps + _description_steps(version, alias, paragraph) + _commit_message_steps(prompt, found, alias,
                                                                                          paragraph)


def _replaced_steps(name: str, previous: str | None, decision: PromotionDecision) -> list[Step]:
    """The former holder of the alias, when it moved to another version, says so (its paragraph
    and `promotion.<alias>` tag, model and prompt version, and `promotion.<alias>.replaced_by`):
    the reason it held the alias is no longer current. Nothing for a first holder, or when the
    former holder is gone or was not registered by promptomatix."""
    if previous is None or previous == decision.version:
        return []
    try:
        former = MlflowClient().get_model_version(name, previous)
        prompt = versions.linked_prompt(former)
    except (MlflowException, RegistryError):
        return []
    client = MlflowClient()
    time = datetime.now(timezone.utc).isoformat(timespec="seconds")
    paragraph = (f"{_marker(decision.alias)}{time}): no longer holds {name}@{decision.alias}, which moved to version "
                 f"{decision.version} ({decision.decision.replace('_', ' ')}).")
    key = f"{TAG_PREFIX}{decision.alias}.replaced_by"
    found = client.get_prompt_version(*prompt)
    steps = _tag_steps({key: decision.version}, former.tags or {}, lambda k, v: client.set_model_version_tag(
        name, str(former.version), k, v), lambda k: client.delete_model_version_tag(name, str(former.version), k))
    steps += _tag_steps({key: decision.version}, (found.tags if found is not None else None) or {},
                        lambda k, v: client.set_prompt_version_tag(*prompt, k, v),
                        lambda k: client.delete_prompt_version_tag(*prompt, k))
    return steps + _note_steps(former, prompt, decision.alias, paragraph)


def _tag_values(decision: PromotionDecision) -> dict[str, str]:
    """Tag -> value of the decision (see the module docstring); "" for what it did not use."""
    fmt = lambda value: "" if value is None else f"{value:.4f}"  # noqa: E731
    test = decision.paired
    values = {"decision": decision.decision, "model": decision.name, "score": fmt(decision.score),
              "previous": decision.previous or "", "previous_score": fmt(decision.previous_score),
              "basis": decision.basis, "digest": decision.digest or "",
              "reason": (decision.reason or f"no reason given; the rule: {decision.summary()}")[:5000],
              "copied_from": decision.copied_from or "", "n": str(decision.n) if decision.n else "",
              "score_low": fmt(test and test.b.low), "score_high": fmt(test and test.b.high),
              "previous_score_low": fmt(test and test.a.low), "previous_score_high": fmt(test and test.a.high),
              "difference": fmt(test and test.difference.value), "difference_low": fmt(test and test.difference.low),
              "difference_high": fmt(test and test.difference.high), "test": test.test if test else "",
              "p_value": f"{test.p_value:.6g}" if test else "", "alpha": f"{test.alpha:g}" if test else "",
              "rule": decision.rule, "verdict": decision.verdict, "summary": decision.summary()[:5000],
              **({"replaced_by": ""} if decision.moved else {}),  # holding it again: no longer replaced
              "time": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    return {f"{TAG_PREFIX}{decision.alias}.{key}": value for key, value in values.items()}


def _tag_steps(values: dict[str, str], old: dict[str, str], set_tag: Callable[[str, str], object],
               delete_tag: Callable[[str], object]) -> list[Step]:
    """Steps writing `values` over the tags `old`: a value "" removes an earlier decision's tag
    (what this decision did not use is left out, never written empty)."""
    steps: list[Step] = []
    for key, value in values.items():
        if not value.strip() and key not in old:
            continue

        def do(key=key, value=value):
            return set_tag(key, value) if value.strip() else delete_tag(key)

        def undo(key=key):
            return set_tag(key, old[key]) if key in old else delete_tag(key)

        steps.append((do, undo))
    return steps


def _description_steps(version, alias: str, paragraph: str) -> list[Step]:
    """A step putting `paragraph` in the model version's description, replacing that alias's
    earlier one, after the rest, and ending with how to promote (`PROMOTE_HINT`)."""
    client = MlflowClient()
    old = version.description or ""
    hint = promote_hint(version.name, str(version.version))
    kept = [part for part in old.split("\n\n") if part.strip() and not part.startswith(_marker(alias))
            and not part.startswith(PROMOTE_HINT_START)]
    while kept and len("\n\n".join(kept + [paragraph, hint])) > DESCRIPTION_LIMIT:
        kept.pop(0)  # the oldest paragraphs give way first
    new = "\n\n".join(kept + [paragraph, hint])
    return [(lambda: client.update_model_version(version.name, str(version.version), description=new),
             lambda: client.update_model_version(version.name, str(version.version), description=old))]


def _commit_message_steps(prompt: tuple[str, str], found, alias: str, paragraph: str) -> list[Step]:
    """A step putting `paragraph` first in the commit message of the prompt version `found`
    (`prompt`), replacing that alias's earlier paragraph; the other aliases' paragraphs follow,
    then the message it was registered with, unchanged.

    Written with MLflow's registry client: `MlflowClient.update_model_version` refuses a prompt
    (`_raise_if_prompt`) and MLflow has no prompt call that changes a commit message, but a prompt
    version is a model version whose description is its commit message, and the registry client's
    `update_model_version` (the store's, or `mlflow server`'s UpdateModelVersion) writes it."""
    registry = MlflowClient()._get_registry_client()
    old = (found.commit_message if found is not None else None) or ""
    paragraphs, message = split_commit_message(old)
    others = [part for part in paragraphs if not part.startswith(_marker(alias))]
    while others and len("\n\n".join([paragraph, *others, message])) > DESCRIPTION_LIMIT:
        others.pop()  # the oldest paragraphs give way first
    new = "\n\n".join([paragraph, *others] + ([message] if message else []))[:DESCRIPTION_LIMIT]

    def write(text: str) -> Callable[[], object]:
        return lambda: registry.update_model_version(*prompt, description=text)

    return [(_on_prompt(write(new), prompt[0], "recording the decision"), write(old))]
