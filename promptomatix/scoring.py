"""Metrics and the training objective.

A metric is an `evaluate` module (a folder path, loaded with `evaluate.load`) or a plain
callable `f(predictions, references) -> dict`. The built-in modules live in the project's
`metrics/` folder, installed inside the package as `promptomatix.builtin_metrics`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

from promptomatix.errors import ConfigError
from promptomatix.plugins import Registry

MetricSource = str | Callable[..., dict]


def builtin_metrics_dir() -> Path:
    """The folder holding the built-in `evaluate` modules, one sub-folder per metric."""
    return Path(str(files("promptomatix.builtin_metrics")))


def _builtins(registry: Registry[MetricSource]) -> None:
    root = builtin_metrics_dir()
    for module in sorted(p for p in root.iterdir() if (p / f"{p.name}.py").is_file()):
        registry.register(module.name, str(module))


METRICS: Registry[MetricSource] = Registry("metrics", _builtins)


def register_metric(name: str, source: MetricSource, *, replace: bool = False) -> MetricSource:
    """Register an `evaluate` module path or a callable under `name`."""
    if isinstance(source, str) and not _is_module(source):
        raise ConfigError(f"metric {name!r}: {source} is not an evaluate module folder")
    return METRICS.register(name, source, replace=replace)


def _is_module(path: str) -> bool:
    """An `evaluate` module folder: `<dir>/<dir name>.py`."""
    return (Path(path) / f"{Path(path).name}.py").is_file()


@dataclass(frozen=True)
class Scores:
    score: float
    per_example: list[float]
    details: dict


class Metric:
    """One metric, loaded once, scoring lists of predictions against references."""

    def __init__(self, name: str, score_key: str):
        self.name = name
        self.score_key = score_key
        source = name if name not in METRICS.names() and _is_module(name) else METRICS.get(name)
        if callable(source):
            self._compute = source
        else:
            import evaluate

            module = evaluate.load(source, keep_in_memory=True)
            self._compute = lambda predictions, references: module.compute(
                predictions=predictions, references=references
            )

    def score(self, predictions: Sequence[str], references: Sequence[str]) -> Scores:
        result = dict(self._compute(predictions=list(predictions), references=list(references)))
        if self.score_key not in result:
            raise ConfigError(f"metric {self.name!r} returned no {self.score_key!r} (keys: {', '.join(result)})")
        per_example = result.pop("per_example", None)
        if per_example is None:  # a user's module without per-example scores
            per_example = [
                float(self._compute(predictions=[p], references=[r])[self.score_key])
                for p, r in zip(predictions, references)
            ]
        return Scores(float(result[self.score_key]), [float(s) for s in per_example], result)


class CompositeMetric:
    """A weighted combination of metrics (e.g. 0.7 accuracy + 0.3 brevity): the score and each
    example's score are the weighted means of the parts'; `details` has each part's score."""

    def __init__(self, parts: Sequence[tuple[Metric, float]]):
        self.parts = list(parts)
        self.total = sum(weight for _, weight in self.parts)
        self.name = " + ".join(f"{w:g}*{m.name}:{m.score_key}" for m, w in self.parts)

    def score(self, predictions: Sequence[str], references: Sequence[str]) -> Scores:
        results = [(metric.score(predictions, references), weight, metric) for metric, weight in self.parts]
        score = sum(r.score * w for r, w, _ in results) / self.total
        per_example = [sum(r.per_example[i] * w for r, w, _ in results) / self.total for i in range(len(predictions))]
        return Scores(score, per_example, {f"{m.name}:{m.score_key}": r.score for r, _, m in results})


def build_metric(default: str, default_key: str, weights: dict[str, float] | None = None) -> Metric | CompositeMetric:
    """The task type's metric (`default`, maximizing `default_key`), or the weighted combination
    `weights` maps out: `{"classification": 0.7, "brevity": 0.3}`, a part named `metric:key` to
    choose the key (the default key is the task type's for its own metric, else the name)."""
    if not weights:
        return Metric(default, default_key)
    parts = []
    for spec, weight in weights.items():
        name, _, key = spec.partition(":")
        if not isinstance(weight, (int, float)) or weight <= 0:
            raise ConfigError(f"metric weight for {spec!r} must be a positive number, got {weight!r}")
        parts.append((Metric(name, key or (default_key if name == default else name)), float(weight)))
    return CompositeMetric(parts)


_WORD = re.compile(r"[^\W_]+")


def prompt_words(text: str) -> int:
    """Words for the length penalty: runs of letters and digits, so that a model cannot make a
    long prompt look short by gluing words with underscores or punctuation."""
    return len(_WORD.findall(text))


@dataclass(frozen=True)
class Objective:
    """What optimizers maximize: quality x exp(-lambda x prompt words). Reports use the quality."""

    lambda_penalty: float = 0.0001  # as `OptimizationConfig.lambda_penalty`

    def __call__(self, quality: float, prompt_text: str) -> float:
        return quality * math.exp(-self.lambda_penalty * prompt_words(prompt_text))
