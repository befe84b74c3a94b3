"""Several versions of one registered model scored on the same rows and ranked: `compare NAME
--data FILE`.

In: a registered model name, data (a path that `load_examples` reads, or a list of example
dicts), the versions to score (numbers or aliases; by default the newest `DEFAULT_NEWEST`), and a
bound on the model calls (`max_calls`).
Out: a `Ranking`: each version's score on those rows with its 95% interval, best first, and each
one's paired difference from the best (`stats.Comparison`: a the best, b the version; McNemar's
exact test with Newcombe's interval for right/wrong rows, the paired bootstrap otherwise).

Each version is scored as `evaluate` scores it (`evaluation.run`: an MLflow run per version, its
test tags updated). Before any is, everything is checked (`plan`): the versions, the data and its
fields, the metrics (versions scored with different metrics are refused: their scores do not mean
the same), and the calls: one per row per version; more than `max_calls` is refused (ConfigError,
exit 2) naming what would fit. Nothing is written until every check passed.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from promptomatix.errors import ConfigError, RegistryError
from promptomatix.lifecycle import paired, version_evaluation, versions
from promptomatix.lifecycle.paired import PromotionError
from promptomatix.lifecycle.promotion import different_metrics
from promptomatix.scoring import stats
from promptomatix.task.spec import Example

log = logging.getLogger(__name__)

DEFAULT_MAX_CALLS = 1000  # model calls one `compare --data` may make unless told otherwise
DEFAULT_NEWEST = 5  # versions scored when none are named: the newest ones


@dataclass(frozen=True)
class Plan:
    """A checked comparison, ready to score: nothing has been written yet. `prepared` holds one
    evaluation per version, all on the same rows; `left_out` the versions not chosen by default."""

    name: str
    prepared: tuple[version_evaluation.Prepared, ...]
    calls: int
    max_calls: int
    left_out: tuple[str, ...]

    @property
    def rows(self) -> int:
        return len(self.prepared[0].examples)


@dataclass(frozen=True)
class Ranked:
    """One version's place: `rank` (1 is best; equal scores share a rank), its `estimate` on the
    rows, its evaluation run, and `versus_best` (a: the best, b: this version; None for the best)."""

    rank: int
    version: str
    aliases: tuple[str, ...]
    estimate: stats.Estimate
    run_id: str
    versus_best: stats.Comparison | None

    @property
    def verdict(self) -> str:
        """`best`, `worse` (significantly, at p < 0.05) or `not significantly different`."""
        if self.versus_best is None:
            return "best"
        return "worse" if self.versus_best.worse else "not significantly different"


@dataclass(frozen=True)
class Ranking:
    """The versions of `name` scored with `metric` on data `data_source` (digest `digest`, `rows`
    rows), best first: `calls` model calls planned (at most `max_calls`), `used_calls` sent (as
    the versions' models counted them; None when one did not count)."""

    name: str
    metric: str
    data_source: str
    digest: str
    rows: int
    calls: int
    max_calls: int
    ranked: tuple[Ranked, ...]
    left_out: tuple[str, ...]
    used_calls: int | None = None

    def as_dicts(self) -> list[dict]:
        """One plain dict per version, best first (the JSON of `compare --data`)."""
        return [_as_dict(self, item) for item in self.ranked]


def difference_text(comparison: stats.Comparison) -> str:
    """The paired difference with its interval, the test and its p-value, as one phrase:
    `-0.333 [-0.468, -0.199], McNemar exact p<0.001`."""
    difference = comparison.difference
    return (f"{difference.value:+.3f} [{difference.low:+.3f}, {difference.high:+.3f}], "
            f"{stats.describe(comparison).rsplit(', ', 1)[1]}")


def _as_dict(ranking: Ranking, item: Ranked) -> dict:
    versus = item.versus_best
    return {"rank": item.rank, "version": item.version, "aliases": list(item.aliases), "metric": ranking.metric,
            "score": item.estimate.value, "score_low": item.estimate.low, "score_high": item.estimate.high,
            "rows": item.estimate.n, "interval": item.estimate.method, "data": ranking.data_source,
            "data_digest": ranking.digest, "run_id": item.run_id,
            "difference": versus and versus.difference.value, "difference_low": versus and versus.difference.low,
            "difference_high": versus and versus.difference.high, "test": versus and versus.test,
            "p_value": versus and versus.p_value, "verdict": item.verdict}


def compare_on_data(name: str, data: str | Sequence[Example], *, refs: Sequence[str] | None = None,
                    max_calls: int = DEFAULT_MAX_CALLS, show_progress: bool = True) -> Ranking:
    """Score the versions `refs` names (default: the newest `DEFAULT_NEWEST`) of `name` on `data`
    and rank them (see the module docstring). Raises RegistryError / DataError / ConfigError /
    PromotionError before any evaluation runs; LLMError if the model fails (the versions scored
    before it keep their evaluations)."""
    return score(plan(name, data, refs=refs, max_calls=max_calls), show_progress=show_progress)


def plan(name: str, data: str | Sequence[Example], *, refs: Sequence[str] | None = None,
         max_calls: int = DEFAULT_MAX_CALLS) -> Plan:
    """Every check of the module docstring, in order (versions, metrics, data and fields, calls),
    without writing anything."""
    if max_calls < 1:
        raise ConfigError(f"--max-calls must be at least 1, got {max_calls}")
    chosen, left_out = choose(name, refs)
    for version in chosen[1:]:
        different = different_metrics(version, chosen[0])
        if different:
            raise PromotionError(f"cannot rank the versions of {name!r} on the same data: {different}")
    prepared = tuple(version_evaluation.prepare(version, data) for version in chosen)
    if len({p.digest for p in prepared}) > 1:
        raise PromotionError(f"the versions of {name!r} have different fields, so they cannot be scored on the same "
                             f"data")
    calls = check_calls(len(prepared), len(prepared[0].examples), max_calls)
    return Plan(name, prepared, calls, max_calls, left_out)


def choose(name: str, refs: Sequence[str] | None) -> tuple[list, tuple[str, ...]]:
    """(the versions to score, oldest first, each once; the versions left out). `refs`: version
    numbers or aliases of `name`; None: the newest `DEFAULT_NEWEST`."""
    if refs is None:
        every = versions.all_versions(versions.get_model(name).name)
        if not every:
            raise RegistryError(f"model {name!r} has no versions")
        kept = every[-DEFAULT_NEWEST:]
        return kept, tuple(str(v.version) for v in every[:-DEFAULT_NEWEST])
    if not [ref for ref in refs if ref.strip()]:
        raise ConfigError("--versions names no version: give numbers or aliases such as 1,3,champion")
    found: dict[str, Any] = {}  # version number -> mlflow ModelVersion
    for ref in refs:
        if ref.strip():
            version = versions.resolve(f"{name}@{ref.strip()}")
            found.setdefault(str(version.version), version)
    return sorted(found.values(), key=lambda v: int(v.version)), ()


def check_calls(count: int, rows: int, max_calls: int) -> int:
    """The calls scoring `count` versions on `rows` rows takes (one per row per version), or a
    ConfigError naming what would fit within `max_calls`."""
    calls = count * rows
    if calls <= max_calls:
        return calls
    fit = max_calls // rows
    room = (f"{fit} version{'s' if fit != 1 else ''} would fit (choose with --versions)" if fit else
            f"not one version fits (each takes {rows} calls)")
    raise ConfigError(f"scoring {count} versions on {rows} rows takes {calls} model calls, more than --max-calls "
                      f"{max_calls}: {room}; use fewer rows or raise --max-calls (nothing was evaluated)")


def score(checked: Plan, *, show_progress: bool = True) -> Ranking:
    """Evaluate each version of the plan on its rows, then rank them and pair each with the best."""
    reports = []
    for number, prepared in enumerate(checked.prepared, start=1):
        version: Any = prepared.version  # an mlflow ModelVersion
        log.info("compare: scoring version %s (%d of %d) on %d rows", version.version, number,
                 len(checked.prepared), checked.rows)
        reports.append(version_evaluation.run(prepared, show_progress=show_progress))
    aliases = _aliases(checked.name)
    ordered = sorted(reports, key=lambda r: (-r.score, int(r.version)))
    best = ordered[0]
    ranked = tuple(Ranked(_rank(ordered, report), report.version, aliases.get(report.version, ()), report.estimate,
                          report.run_id, None if report is best else paired.compare_rows(
                              best.rows, report.rows, f"the results of version {best.version} and version "
                                                      f"{report.version}"))
                   for report in ordered)
    first = checked.prepared[0]
    counted = [report.calls for report in reports]
    used = None if None in counted else sum(c for c in counted if c is not None)
    return Ranking(checked.name, best.metric, first.source, first.digest, checked.rows, checked.calls,
                   checked.max_calls, ranked, checked.left_out, used)


def _rank(ordered: Sequence[version_evaluation.EvaluationReport], report: version_evaluation.EvaluationReport) -> int:
    """1 + how many versions scored strictly more (equal scores share a rank)."""
    return 1 + sum(1 for other in ordered if other.score > report.score)


def _aliases(name: str) -> dict[str, tuple[str, ...]]:
    """Version number -> its aliases, sorted."""
    found: dict[str, list[str]] = {}
    for alias, number in (versions.get_model(name).aliases or {}).items():
        found.setdefault(str(number), []).append(alias)
    return {number: tuple(sorted(names)) for number, names in found.items()}
