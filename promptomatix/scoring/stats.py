"""The arithmetic of scores with uncertainty, and of comparing two prompt versions.

Every score the tool reports carries its rows and its interval (`Estimate`), and a prompt version
is promoted only on a real gain (`compare`, then `decide`). This module is the one place that
arithmetic lives; it uses the standard library only and holds no state.

- One score: `wilson` (a proportion: accuracy-like 0/1 rows), `bootstrap` (the mean of any per-row
  metric), `score_estimate` (picks one of the two).
- Two versions on the same rows: `compare` (McNemar's exact test with Newcombe's paired interval
  for 0/1 rows, the paired bootstrap otherwise) and `decide` (the promotion rule).
- Planning: `interval_width_of_difference` and its inverse `rows_for_width`.
- Reporting: `describe` (a comparison as one phrase), `format_p`.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from statistics import NormalDist
from typing import Sequence

DEFAULT_CONFIDENCE = 0.95  # the usual 95% interval: what reports show unless asked otherwise
DEFAULT_ALPHA = 0.05  # the significance level matching DEFAULT_CONFIDENCE
DEFAULT_RESAMPLES = 2000  # enough for stable 2.5%/97.5% percentiles (about 50 resamples beyond each)
UNINFORMATIVE_WIDTH = 0.3  # a difference interval wider than this cannot tell two candidates apart

_TEST_LABELS = {"mcnemar-exact": "McNemar exact", "paired-bootstrap": "paired bootstrap"}


@dataclass(frozen=True)
class Estimate:
    """A score with its interval: `value` in [`low`, `high`] on `n` rows, by `method`.

    `method` is "wilson" or "bootstrap" for one score; a paired difference of 0/1 scores says
    "newcombe" (see `compare`).
    """

    value: float
    low: float
    high: float
    n: int
    method: str

    def __str__(self) -> str:
        """`0.850 [0.805, 0.887] n=300`."""
        return f"{_interval(self)} n={self.n}"


@dataclass(frozen=True)
class Comparison:
    """Two prompt versions scored on the same `n` rows: `a` (current), `b` (candidate).

    `difference` is b minus a with its interval; `test` ("mcnemar-exact" or "paired-bootstrap")
    gave `p_value` (two-sided); `alpha` is the level `better` and `worse` use.
    """

    n: int
    a: Estimate
    b: Estimate
    difference: Estimate
    test: str
    p_value: float
    alpha: float = DEFAULT_ALPHA

    @property
    def better(self) -> bool:
        """True when b is significantly better than a at level `alpha`."""
        return self.p_value < self.alpha and self.difference.value > 0

    @property
    def worse(self) -> bool:
        """True when b is significantly worse than a at level `alpha`."""
        return self.p_value < self.alpha and self.difference.value < 0

    def __str__(self) -> str:
        """One line for a CI log: `n=200: 0.800 [...] -> 0.855 [...], +0.055 [...], McNemar exact p=0.021`."""
        return f"n={self.n}: {describe(self)}"


def describe(comparison: Comparison) -> str:
    """Both scores, the difference (each with its interval), the test and its p-value, as one phrase:
    `0.800 [0.739, 0.850] -> 0.855 [0.799, 0.898], +0.055 [+0.010, +0.100], McNemar exact p=0.021`."""
    return (
        f"{_interval(comparison.a)} -> {_interval(comparison.b)}, "
        f"{_interval(comparison.difference, signed=True)}, {_test_and_p(comparison)}"
    )


def _interval(estimate: Estimate, signed: bool = False) -> str:
    """Format an estimate as `0.850 [0.805, 0.887]` (with `+`/`-` signs when `signed`)."""
    spec = "+.3f" if signed else ".3f"
    return f"{estimate.value:{spec}} [{estimate.low:{spec}}, {estimate.high:{spec}}]"


def format_p(p_value: float) -> str:
    """Format a p-value as `p=0.021`, or `p<0.001` when smaller."""
    return "p<0.001" if p_value < 0.001 else f"p={p_value:.3f}"


def _test_and_p(comparison: Comparison) -> str:
    """The test's readable name and its p-value: `McNemar exact p=0.021`."""
    return f"{_TEST_LABELS.get(comparison.test, comparison.test)} {format_p(comparison.p_value)}"


def _check_level(name: str, level: float) -> None:
    """Raise ValueError unless 0 < `level` < 1 (a confidence or an alpha)."""
    if not 0.0 < level < 1.0:
        raise ValueError(f"{name} must be between 0 and 1 (exclusive), got {level}")


def _z(confidence: float) -> float:
    """The two-sided standard normal quantile for `confidence` (1.96 for 0.95)."""
    _check_level("confidence", confidence)
    return NormalDist().inv_cdf(0.5 + confidence / 2.0)


def _is_binary(values: Sequence[float]) -> bool:
    """True when every value is 0 or 1 (an accuracy-like per-row score)."""
    return all(v == 0 or v == 1 for v in values)


def wilson(successes: int, n: int, confidence: float = DEFAULT_CONFIDENCE) -> Estimate:
    """Wilson score interval of the proportion `successes`/`n`; n=0 gives 0 in [0, 1]."""
    z = _z(confidence)
    if n < 0 or not 0 <= successes <= max(n, 0):
        raise ValueError(f"wilson needs 0 <= successes <= n, got successes={successes}, n={n}")
    if n == 0:
        return Estimate(0.0, 0.0, 1.0, 0, "wilson")
    p = successes / n
    denominator = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1.0 - p) / n + z * z / (4 * n * n)) / denominator
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return Estimate(p, low, high, n, "wilson")


def _percentile(ordered: Sequence[float], q: float) -> float:
    """The `q` quantile (0..1) of the sorted `ordered`, interpolated linearly."""
    position = q * (len(ordered) - 1)
    below = math.floor(position)
    above = min(below + 1, len(ordered) - 1)
    return ordered[below] + (ordered[above] - ordered[below]) * (position - below)


def _bootstrap_means(values: Sequence[float], resamples: int, seed: int) -> list[float]:
    """The sorted means of `resamples` resamples (with replacement) of `values`, seeded by `seed`."""
    if resamples < 1:
        raise ValueError(f"resamples must be at least 1, got {resamples}")
    rng = random.Random(seed)
    n = len(values)
    return sorted(sum(rng.choices(values, k=n)) / n for _ in range(resamples))


def bootstrap(
    values: Sequence[float],
    confidence: float = DEFAULT_CONFIDENCE,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> Estimate:
    """Percentile bootstrap interval of the mean of `values` (deterministic for a given `seed`)."""
    _check_level("confidence", confidence)
    if not values:
        raise ValueError("bootstrap needs at least one value")
    means = _bootstrap_means(list(values), resamples, seed)
    tail = (1.0 - confidence) / 2.0
    mean = math.fsum(values) / len(values)
    return Estimate(mean, _percentile(means, tail), _percentile(means, 1.0 - tail), len(values), "bootstrap")


def score_estimate(
    per_example: Sequence[float],
    confidence: float = DEFAULT_CONFIDENCE,
    *,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> Estimate:
    """A score's mean with its interval: Wilson when every row is 0 or 1, the bootstrap otherwise."""
    if _is_binary(per_example):
        return wilson(int(sum(per_example)), len(per_example), confidence)
    return bootstrap(per_example, confidence, resamples, seed)


def _mcnemar_exact_p(gains: int, losses: int) -> float:
    """Two-sided exact McNemar p: binomial test of `gains` vs `losses` discordant rows at 1/2."""
    discordant = gains + losses
    if discordant == 0:
        return 1.0
    smaller = min(gains, losses)
    term, tail = 1, 1  # C(discordant, 0); the sum runs over C(discordant, 0..smaller), exactly
    for i in range(smaller):
        term = term * (discordant - i) // (i + 1)
        tail += term
    return min(1.0, 2 * tail / 2**discordant)


def _newcombe_paired(both: int, gains: int, losses: int, neither: int, confidence: float) -> Estimate:
    """Newcombe's (1998) method 10 interval for p_b - p_a from a paired 2x2 table of 0/1 rows.

    `both`: rows right under a and b; `gains`: right under b only; `losses`: right under a only.
    Square-and-add of the two Wilson intervals, corrected for the pairing by the phi coefficient
    (itself continuity-corrected as in Newcombe's paper).
    """
    n = both + gains + losses + neither
    p_b, p_a = (both + gains) / n, (both + losses) / n
    w_b, w_a = wilson(both + gains, n, confidence), wilson(both + losses, n, confidence)
    margins = (both + gains) * (losses + neither) * (both + losses) * (gains + neither)
    cross = both * neither - gains * losses
    if margins == 0 or 0 <= cross <= n / 2:
        phi = 0.0
    else:
        phi = (cross - n / 2 if cross > 0 else cross) / math.sqrt(margins)
    d_b_low, d_b_high = p_b - w_b.low, w_b.high - p_b
    d_a_low, d_a_high = p_a - w_a.low, w_a.high - p_a
    below = math.sqrt(max(0.0, d_b_low**2 - 2 * phi * d_b_low * d_a_high + d_a_high**2))
    above = math.sqrt(max(0.0, d_b_high**2 - 2 * phi * d_b_high * d_a_low + d_a_low**2))
    difference = p_b - p_a
    return Estimate(difference, max(-1.0, difference - below), min(1.0, difference + above), n, "newcombe")


def _compare_binary(a: Sequence[float], b: Sequence[float], alpha: float) -> Comparison:
    """McNemar's exact test and Newcombe's paired interval for two 0/1 score lists on the same rows."""
    both = sum(1 for x, y in zip(a, b) if x == 1 and y == 1)
    gains = sum(1 for x, y in zip(a, b) if x == 0 and y == 1)
    losses = sum(1 for x, y in zip(a, b) if x == 1 and y == 0)
    neither = len(a) - both - gains - losses
    confidence = 1.0 - alpha
    return Comparison(
        n=len(a),
        a=wilson(both + losses, len(a), confidence),
        b=wilson(both + gains, len(b), confidence),
        difference=_newcombe_paired(both, gains, losses, neither, confidence),
        test="mcnemar-exact",
        p_value=_mcnemar_exact_p(gains, losses),
        alpha=alpha,
    )


def _compare_bootstrap(a: Sequence[float], b: Sequence[float], alpha: float, resamples: int, seed: int) -> Comparison:
    """The paired bootstrap: resample rows, keeping each row's a and b together (via b - a)."""
    differences = [y - x for x, y in zip(a, b)]
    means = _bootstrap_means(differences, resamples, seed)
    at_most_zero = sum(1 for m in means if m <= 0) / resamples
    at_least_zero = sum(1 for m in means if m >= 0) / resamples
    confidence = 1.0 - alpha
    difference = Estimate(
        math.fsum(differences) / len(differences),
        _percentile(means, alpha / 2.0),
        _percentile(means, 1.0 - alpha / 2.0),
        len(differences),
        "bootstrap",
    )
    return Comparison(
        n=len(a),
        a=score_estimate(a, confidence, resamples=resamples, seed=seed),
        b=score_estimate(b, confidence, resamples=resamples, seed=seed),
        difference=difference,
        test="paired-bootstrap",
        p_value=min(1.0, 2.0 * min(at_most_zero, at_least_zero)),
        alpha=alpha,
    )


def compare(
    a: Sequence[float],
    b: Sequence[float],
    alpha: float = DEFAULT_ALPHA,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> Comparison:
    """Compare per-row scores `a` (current) and `b` (candidate) of two prompts on the SAME rows.

    All 0/1: McNemar's exact test (two-sided binomial test on the discordant rows), and for b - a
    Newcombe's method 10 interval (Wilson-based, corrected for the pairing; its coverage stays near
    nominal down to small n, where the Wald interval's does not). Otherwise the paired bootstrap
    (`resamples` resamples of the rows, seeded): percentile interval, two-sided p-value
    2 * min(share of means <= 0, share >= 0), clipped to 1. Intervals are at 1 - `alpha`.
    Raises ValueError when the lengths differ or are 0.
    """
    _check_level("alpha", alpha)
    if len(a) != len(b):
        raise ValueError(f"compare needs both prompts' scores on the same rows: a has {len(a)} rows, b has {len(b)}")
    if not a:
        raise ValueError("compare needs at least one row scored by both prompts, got 0 rows")
    if _is_binary(a) and _is_binary(b):
        return _compare_binary(a, b, alpha)
    return _compare_bootstrap(a, b, alpha, resamples, seed)


def decide(comparison: Comparison, *, require_gain: bool = False, min_gain: float = 0.0) -> tuple[bool, str]:
    """The promotion rule for candidate b over current a: (allowed, a one-sentence reason).

    Always refuses a candidate significantly worse. When `min_gain` > 0, the point difference must be
    at least `min_gain` (0, the default, turns this check off: a not-significantly-worse candidate
    passes). With `require_gain`, the gain must also be significant (p < the comparison's alpha).
    """
    evidence = (
        f"on n={comparison.n} rows the difference is {_interval(comparison.difference, signed=True)} "
        f"({_test_and_p(comparison)}, alpha={comparison.alpha:g})"
    )
    if comparison.worse:
        return False, f"Refused: the candidate is significantly worse: {evidence}."
    if min_gain > 0 and comparison.difference.value < min_gain:
        return False, f"Refused: the gain is below the required minimum of {min_gain:g}: {evidence}."
    if require_gain and not comparison.better:
        return False, f"Refused: the gain is not significant: {evidence}."
    if comparison.better:
        return True, f"Promoted: a significant gain: {evidence}."
    return True, f"Promoted: not significantly worse: {evidence}."


def interval_width_of_difference(n: int, p: float = 0.5, confidence: float = DEFAULT_CONFIDENCE) -> float:
    """Rough width of the interval of a paired difference of two accuracies near `p` on `n` rows.

    Assumes independent errors (row variance of b - a is 2p(1-p)), the widest usual case; errors that
    agree across versions give narrower intervals. Above UNINFORMATIVE_WIDTH there are too few rows
    to tell candidates apart. n=0 gives infinity.
    """
    if n < 0 or not 0.0 <= p <= 1.0:
        raise ValueError(f"needs n >= 0 and 0 <= p <= 1, got n={n}, p={p}")
    if n == 0:
        return math.inf
    return 2.0 * _z(confidence) * math.sqrt(2.0 * p * (1.0 - p) / n)


def rows_for_width(width: float, p: float = 0.5, confidence: float = DEFAULT_CONFIDENCE) -> int:
    """Rows needed for `interval_width_of_difference` to be at most `width` (the inverse; at least 1)."""
    if width <= 0 or not 0.0 <= p <= 1.0:
        raise ValueError(f"needs width > 0 and 0 <= p <= 1, got width={width}, p={p}")
    rows = math.ceil((2.0 * _z(confidence) / width) ** 2 * 2.0 * p * (1.0 - p))
    rows = max(1, rows)
    while interval_width_of_difference(rows, p, confidence) > width:
        rows += 1  # float rounding in the ceil above can land one short
    while rows > 1 and interval_width_of_difference(rows - 1, p, confidence) <= width:
        rows -= 1  # ... or one over
    return rows
