"""Two registered versions compared row by row on the same data: the paired test behind
`promote` and `gate`.

In: a holder (current) and a candidate version, and the digest of data both were evaluated on
(`evaluate` tags each version `test_score.<digest>`), or the rows an evaluation just produced.
Out: a `stats.Comparison` of holder (a) and candidate (b) on the same rows (McNemar's exact test
for right/wrong rows, the paired bootstrap otherwise), and the verdict of a `Rule` on it.

The per-row results are the `evaluation/results.json` table of each version's evaluation run on
that digest (its `test_run_id` when that is the latest, else the latest finished run tagged with
the version and the digest). The same data gives the same rows in the same order; the inputs and
expected answers are checked row by row all the same, and rows that do not match are refused
(PromotionError). Nothing here writes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import mlflow
from mlflow.exceptions import MlflowException

from promptomatix.errors import ConfigError, RegistryError
from promptomatix.lifecycle import version_evaluation
from promptomatix.scoring import stats
from promptomatix.tracking import record

Row = Mapping[str, object]
GAIN_TOLERANCE = 1e-9  # a gain of exactly --min-gain passes, whatever the float arithmetic of the scores


class PromotionError(RegistryError):
    """Two versions that cannot be compared: no score on the same data, different metrics, or
    per-row results that do not pair up."""


@dataclass(frozen=True)
class Rule:
    """What a candidate needs against the holder: never significantly worse; with `require_gain`
    a significant gain; with `min_gain` > 0 a point difference of at least `min_gain`."""

    require_gain: bool = False
    min_gain: float = 0.0

    def check(self) -> Rule:
        """This rule, or a ConfigError when `min_gain` is negative or not a number."""
        if math.isnan(self.min_gain) or self.min_gain < 0:
            raise ConfigError(f"--min-gain must be a difference of scores >= 0, such as 0.02; got {self.min_gain}")
        return self

    def __str__(self) -> str:
        """`not significantly worse`, `a significant gain`, `... and a gain of at least 0.05`."""
        text = "a significant gain" if self.require_gain else "not significantly worse"
        return text + (f", and a gain of at least {self.min_gain:g}" if self.min_gain > 0 else "")


def verdict(comparison: stats.Comparison, rule: Rule) -> tuple[bool, str]:
    """(passes, a few words): `better`, `not worse`, `worse`, `no significant gain` or `gain below
    the minimum of X`, in the order `stats.decide` applies the rule (which says whether it passes)."""
    least = max(0.0, rule.min_gain - GAIN_TOLERANCE) if rule.min_gain > 0 else 0.0
    passes, _ = stats.decide(comparison, require_gain=rule.require_gain, min_gain=least)
    if comparison.worse:
        words = "worse"
    elif least > 0 and comparison.difference.value < least:
        words = f"gain below the minimum of {rule.min_gain:g}"
    elif comparison.better:
        words = "better"
    else:
        words = "no significant gain" if rule.require_gain else "not worse"
    return passes, words


def compare_rows(holder: Sequence[Row], candidate: Sequence[Row], what: str) -> stats.Comparison:
    """The paired comparison of two evaluations' per-row results (`score` of each row), after
    checking that row i is the same example in both (`what` names the two in the error)."""
    if len(holder) != len(candidate):
        raise PromotionError(f"cannot pair {what}: {len(holder)} rows against {len(candidate)}")
    for number, (ours, theirs) in enumerate(zip(candidate, holder), start=1):
        if _example(ours) != _example(theirs):
            raise PromotionError(f"cannot pair {what}: row {number} is not the same example in both "
                                 f"({_example(ours)} vs {_example(theirs)})")
    try:
        return stats.compare([float(r["score"]) for r in holder], [float(r["score"]) for r in candidate])  # type: ignore[arg-type]
    except (KeyError, TypeError, ValueError) as exc:
        raise PromotionError(f"cannot pair {what}: a row has no score ({exc})") from None


def _example(row: Row) -> dict[str, str]:
    """The example a result row is about: its inputs and expected answers (not the row number,
    the prediction or the scores), as text."""
    return {key: str(value) for key, value in row.items()
            if key not in ("row", "score") and not key.startswith(("predicted_", "score."))}


def stored_rows(version, digest: str) -> tuple[list[dict] | None, str]:
    """(per-row results of `version`'s evaluation on data `digest`, "") or (None, why not)."""
    run_id = evaluation_run(version, digest)
    if run_id is None:
        return None, f"no evaluation run of version {version.version} on data {digest} was found"
    try:
        table = mlflow.artifacts.load_dict(f"runs:/{run_id}/{version_evaluation.RESULTS_ARTIFACT}")
        rows = [dict(zip(table["columns"], values)) for values in table["data"]]
    except (MlflowException, OSError, ValueError, KeyError, TypeError) as exc:
        return None, f"the per-row results of run {run_id} cannot be read ({str(exc).splitlines()[0]})"
    return rows, ""


def evaluation_run(version, digest: str) -> str | None:
    """The run of the latest evaluation of `version` (or of the version it was copied from) on
    data `digest`, or None."""
    tags = version.tags or {}
    if tags.get(record.TEST_DIGEST) == digest and tags.get(record.TEST_RUN):
        return tags[record.TEST_RUN]
    uris = [f"models:/{version.name}/{version.version}"] + ([tags[record.COPIED_FROM]] if tags.get(record.COPIED_FROM) else [])
    for uri in uris:
        found = mlflow.search_runs(
            search_all_experiments=True, output_format="list", max_results=1, order_by=["attributes.start_time DESC"],
            filter_string=(f"tags.`{version_evaluation.EVALUATED_MODEL}` = '{uri}' AND "
                           f"tags.`{version_evaluation.DATA_DIGEST}` = '{digest}' AND attributes.status = 'FINISHED'"))
        if found:
            return found[0].info.run_id
    return None
