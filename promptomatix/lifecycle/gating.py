"""A gate for CI: is a candidate version at least as good as the current one, on this data?

In: two version references (`name@3`, `name@champion`, `models:/name/3`), data (a path or a list
of examples), and the rule's options (`require_gain`, `min_gain`; see `paired.Rule`).
Out: a `GateResult`: the paired comparison of the two (`stats.Comparison`: the current version
is a, the candidate b), whether the candidate passes, and one line for a CI log (`line`).

Both versions are evaluated on the data as `evaluate` does (an MLflow run each, the versions
tagged with their test scores); no alias moves. Raises RegistryError / DataError / ConfigError /
PromotionError (different metrics or fields: the scores would not mean the same) before either
evaluation runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from promptomatix.lifecycle import paired, version_evaluation, versions
from promptomatix.lifecycle.paired import PromotionError, Rule
from promptomatix.lifecycle.promotion import different_metrics
from promptomatix.scoring import stats
from promptomatix.task.spec import Example


@dataclass(frozen=True)
class GateResult:
    """The candidate `candidate` (a reference as given, version `candidate_version`) against
    `against` (version `against_version`) on data `digest`: `comparison` (a: against, b:
    candidate), `passed` under `rule`, and `verdict` (better, not worse, worse, no significant
    gain, gain below the minimum of X)."""

    candidate: str
    candidate_version: str
    against: str
    against_version: str
    digest: str
    comparison: stats.Comparison
    rule: str
    passed: bool
    verdict: str

    def line(self) -> str:
        """`gate: reviews@3 vs reviews@champion (version 2) on 200 rows: 0.800 [0.739, 0.850] ->
        0.855 [0.800, 0.897], +0.055 [+0.012, +0.101], McNemar exact p=0.019: better`."""
        return (f"gate: {_named(self.candidate, self.candidate_version)} vs "
                f"{_named(self.against, self.against_version)} on {self.comparison.n} rows: "
                f"{stats.describe(self.comparison)}: {self.verdict}")


def _named(ref: str, version: str) -> str:
    """`ref`, with `(version N)` after it unless it names the version number already."""
    tail = ref.rpartition("@")[2] if "@" in ref else ref.rpartition("/")[2]
    return ref if tail.strip().lstrip("vV") == version else f"{ref} (version {version})"


def gate(candidate: str, against: str, data: str | Sequence[Example], *, require_gain: bool = False,
         min_gain: float = 0.0, show_progress: bool = True) -> GateResult:
    """Evaluate the versions `candidate` and `against` name on `data` and compare them row by row
    (see the module docstring); the candidate passes when `stats.decide` allows it under the rule
    (never significantly worse; with `require_gain` a significant gain; a point gain of at least
    `min_gain`)."""
    rule = Rule(require_gain, min_gain).check()
    new, old = versions.resolve(candidate), versions.resolve(against)
    different = different_metrics(new, old)
    if different:
        raise PromotionError(f"cannot compare {candidate} with {against}: {different}")
    prepared = [version_evaluation.prepare(version, data) for version in (new, old)]
    if prepared[0].digest != prepared[1].digest:
        raise PromotionError(f"{candidate} and {against} have different fields, so they cannot be scored on the "
                             f"same data")
    same = (new.name, str(new.version)) == (old.name, str(old.version))
    first = version_evaluation.run(prepared[0], show_progress=show_progress)
    second = first if same else version_evaluation.run(prepared[1], show_progress=show_progress)
    comparison = paired.compare_rows(second.rows, first.rows, f"the results of {candidate} and {against}")
    passed, verdict = paired.verdict(comparison, rule)
    return GateResult(candidate, str(new.version), against, str(old.version), prepared[0].digest, comparison,
                      str(rule), passed, verdict)
