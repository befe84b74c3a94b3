"""Metrics and the training objective.

The package also holds `evaluator` (a prompt run over examples and scored), `labels` (an
answer read as one of the labels; calibration), `freetext` (free-text answers), `judges`
(MLflow's scorers as metrics), `stats` (scores with uncertainty) and `rows` (whose rows the
search scores on).

A metric comes in one of three shapes, told apart when it is registered (`metric_shape`):

- an `evaluate` module: a folder path (loaded with `evaluate.load`) or a loaded module object;
- a batch callable `f(predictions, references) -> dict` (lists of strings, one output field at
  a time), the result holding the score key and optionally `per_example`;
- DSPy's per-example callable `f(example, pred, trace=None) -> float` (or bool), where `example`
  and `pred` are records of every field (read as `example.review` or `example["review"]`).

MLflow's scorers and judges are metrics of the per-example shape: `mlflow:<Scorer>` names a
built-in one (`mlflow:Correctness`), and a scorer object (`make_judge(...)`, `@scorer`) may be
registered like a callable; their judge model is `build_metric`'s `judge_model` (judges.py).

A metric that judges an output against the task's input too (SARI judges a rewrite against its
source) says so by a `sources` input: an `evaluate` module whose features include `sources`, or a
batch callable with a `sources` parameter. It receives the values of the task's first input field
(`score_records` finds them in the examples; `score` takes them as `sources=`).
Either callable may also take a keyword `prompt` (the prompt's text, instruction and demos, as
the task model reads it: for prompt-quality metrics and custom length penalties) and keywords
named after plugin options (`promptomatix.config.plugin_options`), which receive the run's values.
The built-in modules live in the project's `metrics/` folder, installed inside the package as
`promptomatix.builtin_metrics`.
"""

from __future__ import annotations

import inspect
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

from promptomatix.errors import ConfigError
from promptomatix.plugins import Registry
from promptomatix.scoring import judges, modules

# An `evaluate` module folder, or a callable: a batch f(predictions, references) -> dict, DSPy's per-example
# f(example, pred, trace=None) -> float, an MLflow scorer (a loaded `evaluate` module is untyped, so it fits too).
MetricSource = str | Callable[..., Any]


def builtin_metrics_dir() -> Path:
    """The folder holding the built-in `evaluate` modules, one sub-folder per metric."""
    return Path(str(files("promptomatix.builtin_metrics")))


def _builtins(registry: Registry[MetricSource]) -> None:
    root = builtin_metrics_dir()
    for module in sorted(p for p in root.iterdir() if (p / f"{p.name}.py").is_file()):
        registry.register(module.name, str(module))
    registry.register(judges.FAMILY, judges.mlflow_scorer)  # mlflow:<Scorer>, MLflow's judges (judges.py)


METRICS: Registry[MetricSource] = Registry("metrics", _builtins)


def register_metric(name: str, source: MetricSource, *, replace: bool = False) -> MetricSource:
    """Register a metric under `name`: an `evaluate` module (folder path or loaded module), a
    batch callable `f(predictions, references) -> dict` or DSPy's `f(example, pred, trace=None)`.
    Any other shape is a one-line `ConfigError` here, before any run."""
    metric_shape(name, source)
    return METRICS.register(name, source, replace=replace)


BATCH, PER_EXAMPLE, MODULE = "batch", "per_example", "module"
SOURCES = "sources"  # the input of a metric that also reads the task's input text
_SHAPES = ("an evaluate module, f(predictions, references) -> dict, or f(example, pred, trace=None) -> float "
           "(either callable may add a keyword prompt=None, the batch one a parameter sources)")


def metric_shape(name: str, source) -> str:
    """`module`, `batch` or `per_example`: how `source` is called. ConfigError for anything else."""
    if isinstance(source, str):
        if not _is_module(source):
            raise ConfigError(f"metric {name!r}: {source} is not an evaluate module folder")
        return MODULE
    if callable(getattr(source, "compute", None)):  # a loaded `evaluate` module
        return MODULE
    if judges.is_scorer(source):  # an MLflow scorer or judge (make_judge), called per example
        return PER_EXAMPLE
    if not callable(source):
        raise ConfigError(f"metric {name!r} is a {type(source).__name__}; a metric is {_SHAPES}")
    try:
        params = inspect.signature(source).parameters
    except (TypeError, ValueError):
        raise ConfigError(f"metric {name!r}: cannot read its signature; a metric is {_SHAPES}") from None
    positional = [p for p in params.values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    required = [p.name for p in params.values()
                if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    if {"predictions", "references"} <= set(params):
        shape, data = BATCH, {"predictions", "references", SOURCES}
    elif len(positional) >= 2 and not {"predictions", "references"} & {p.name for p in positional[:2]}:
        shape, data = PER_EXAMPLE, {positional[0].name, positional[1].name}
    else:
        raise ConfigError(f"metric {name!r} has the signature {name}{inspect.signature(source)}; a metric is {_SHAPES}")
    extra = [r for r in required if r not in data]
    if extra:
        raise ConfigError(f"metric {name!r}: {name}{inspect.signature(source)} requires {', '.join(extra)}, "
                          f"which promptomatix cannot give; a metric is {_SHAPES}")
    return shape


class Record(dict):
    """One example's fields for a per-example metric: `record["review"]` or `record.review`."""

    def __getattr__(self, key):
        try:
            return self[key]
        except KeyError:
            raise AttributeError(key) from None


def _module_inputs(module) -> set[str]:
    """The input names of a loaded `evaluate` module (its features; the first set when several)."""
    return set(modules.declared_inputs(module) or ())


def sources_of(examples: Sequence[Mapping], fields: Sequence[str],
               input_fields: Sequence[str] | None = None) -> list[str]:
    """The values of each example's first input field, for a metric that reads them: the first of
    `input_fields` when given, else each example's first key that is not an output field (examples
    hold their input fields first, as the data loaders and task specs order them)."""
    sources = []
    for number, example in enumerate(examples, 1):
        name = input_fields[0] if input_fields else next((k for k in example if k not in fields), None)
        if name is None or name not in example:
            what = f"input field {name!r}" if name else "input field (only output fields)"
            raise ConfigError(f"example {number} has no {what} for a metric that reads the task's input")
        sources.append(str(example[name]))
    return sources


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

    def __init__(self, name: str, score_key: str, options: Mapping[str, object] | None = None):
        self.name = name
        self.score_key = score_key
        source = name if name not in METRICS.names() and _is_module(name) else METRICS.get(name)
        if source is judges.mlflow_scorer:  # mlflow:<Scorer>: the key names MLflow's scorer
            source = judges.ScorerMetric.by_name(score_key, judges.judge_options(options))
        elif judges.is_scorer(source):
            source = judges.ScorerMetric.of(name, source, judges.judge_options(options))
        self.shape = metric_shape(name, source)
        self._asks: set[str] = set()
        self._options: dict = {}
        self._compute: Callable[..., Any]  # returns what the metric's shape says (a dict, or a number per example)
        if self.shape == MODULE:
            module: Any = source  # a loaded `evaluate` module (an untyped package), or its folder, loaded below
            if isinstance(source, str):
                import evaluate

                module = evaluate.load(source, keep_in_memory=True)
            self._asks = {SOURCES} & _module_inputs(module)
            self._compute = modules.compute_function(module)
        else:
            assert callable(source)  # metric_shape: every shape but MODULE is a callable
            params = inspect.signature(source).parameters
            self._asks = {k for k in params if k == "prompt" or (k == SOURCES and self.shape == BATCH)}
            self._options = {k: v for k, v in (options or {}).items() if k in params}
            self._compute = source

    @property
    def asks_prompt(self) -> bool:
        return "prompt" in self._asks

    @property
    def needs_sources(self) -> bool:
        """True for a metric that also reads the task's input (`sources`, see the module doc)."""
        return SOURCES in self._asks

    @property
    def weights(self) -> dict[str, float]:
        """What this metric is, as a registered version records it: `name:key` -> weight."""
        return {f"{self.name}:{self.score_key}": 1.0}

    @property
    def per_example(self) -> bool:
        """True for DSPy's shape: it scores whole examples, not one output field at a time."""
        return self.shape == PER_EXAMPLE

    def _extra(self, prompt: str) -> dict:
        extra = dict(self._options)
        if "prompt" in self._asks:
            extra["prompt"] = prompt
        return extra

    def score_records(self, predictions: Sequence[Mapping], examples: Sequence[Mapping],
                      fields: Sequence[str], *, prompt: str = "",
                      input_fields: Sequence[str] | None = None) -> Scores:
        """The score of whole predictions against whole examples: each output field scored and
        averaged (module and batch shapes), or each example scored once (DSPy's shape). A metric
        that reads the task's input gets the first input field's values (see `sources_of`)."""
        if self.shape == PER_EXAMPLE:
            extra = self._extra(prompt)
            per_example = []
            for p, e in zip(predictions, examples):
                value = self._compute(Record(e), Record(p), **extra)
                value = getattr(value, "score", value)  # a dspy.Prediction(score=..., feedback=...)
                if isinstance(value, bool):
                    value = float(value)
                if not isinstance(value, (int, float)):
                    raise ConfigError(f"metric {self.name!r} returned {value!r:.80}; a per-example metric returns a number")
                per_example.append(float(value))
            return Scores(sum(per_example) / max(len(per_example), 1), per_example, {})
        sources = sources_of(examples, fields, input_fields) if self.needs_sources else None
        per_field = [self.score([p[f] for p in predictions], [e[f] for e in examples], prompt=prompt, sources=sources)
                     for f in fields]
        per_example = [mean_over_fields([s.per_example[i] for s in per_field]) for i in range(len(examples))]
        return Scores(mean_over_fields([s.score for s in per_field]), per_example,
                      per_field[0].details if len(per_field) == 1 else {})

    def score(self, predictions: Sequence[str], references: Sequence[str], *, prompt: str = "",
              sources: Sequence[str] | None = None) -> Scores:
        """One output field's predictions against its references (module and batch shapes), and
        against `sources` (the task's input texts) for a metric that reads them."""
        if self.shape == PER_EXAMPLE:
            raise ConfigError(f"metric {self.name!r} scores whole examples; call score_records")
        extra = self._extra(prompt)
        if self.needs_sources:
            if sources is None:
                raise ConfigError(f"metric {self.name!r} judges outputs against the task's input: "
                                  f"it needs sources=, or call score_records with the examples")
            if len(sources) != len(predictions):
                raise ConfigError(f"metric {self.name!r}: {len(sources)} sources for {len(predictions)} predictions")
            extra[SOURCES] = list(sources)
        result = dict(self._compute(predictions=list(predictions), references=list(references), **extra))
        if self.score_key not in result:
            raise ConfigError(f"metric {self.name!r} returned no {self.score_key!r} (keys: {', '.join(result)})")
        per_example = result.pop("per_example", None)
        if per_example is None:  # a user's module without per-example scores
            per_example = []
            for i, (p, r) in enumerate(zip(predictions, references)):
                one = {**extra, SOURCES: [extra[SOURCES][i]]} if SOURCES in extra else extra
                per_example.append(float(self._compute(predictions=[p], references=[r], **one)[self.score_key]))
        return Scores(float(result[self.score_key]), [float(s) for s in per_example], result)


def mean_over_fields(scores: Sequence[float]) -> float:
    """One score from each output field's: their plain mean, every field counting the same
    (a prediction is as good as its fields on average; weights are for metrics, not fields)."""
    return sum(scores) / len(scores)


WEIGHTED_KEY = "weighted"


class CompositeMetric:
    """A weighted combination of metrics (e.g. 0.7 accuracy + 0.3 brevity): the score and each
    example's score are the weighted means of the parts'; `details` has each part's score."""

    def __init__(self, parts: Sequence[tuple[Metric, float]]):
        self.parts = list(parts)
        self.total = sum(weight for _, weight in self.parts)
        self.name = " + ".join(f"{w:g}*{m.name}:{m.score_key}" for m, w in self.parts)
        self.score_key = WEIGHTED_KEY  # the combination's own score, as `evaluate` names it

    @property
    def weights(self) -> dict[str, float]:
        """`name:key` -> weight of each part, as a registered version records it (weights of
        one part named twice add up)."""
        found: dict[str, float] = {}
        for metric, weight in self.parts:
            spec = f"{metric.name}:{metric.score_key}"
            found[spec] = found.get(spec, 0.0) + weight
        return found

    @property
    def per_example(self) -> bool:
        return any(m.per_example for m, _ in self.parts)

    @property
    def asks_prompt(self) -> bool:
        return any(m.asks_prompt for m, _ in self.parts)

    @property
    def needs_sources(self) -> bool:
        return any(m.needs_sources for m, _ in self.parts)

    def score(self, predictions: Sequence[str], references: Sequence[str], *, prompt: str = "",
              sources: Sequence[str] | None = None) -> Scores:
        results = [(metric.score(predictions, references, prompt=prompt, sources=sources), weight, metric)
                   for metric, weight in self.parts]
        return self._combine(results, len(predictions))

    def score_records(self, predictions: Sequence[Mapping], examples: Sequence[Mapping],
                      fields: Sequence[str], *, prompt: str = "",
                      input_fields: Sequence[str] | None = None) -> Scores:
        results = [(metric.score_records(predictions, examples, fields, prompt=prompt, input_fields=input_fields),
                    weight, metric) for metric, weight in self.parts]
        return self._combine(results, len(examples))

    def _combine(self, results, size: int) -> Scores:
        score = sum(r.score * w for r, w, _ in results) / self.total
        per_example = [sum(r.per_example[i] * w for r, w, _ in results) / self.total for i in range(size)]
        return Scores(score, per_example, {f"{m.name}:{m.score_key}": r.score for r, _, m in results})


def build_metric(default: str, default_key: str, weights: dict[str, float] | None = None,
                 options: Mapping[str, object] | None = None, *,
                 judge_model: str | None = None) -> Metric | CompositeMetric:
    """The task type's metric (`default`, maximizing `default_key`), or the weighted combination
    `weights` maps out: `{"classification": 0.7, "brevity": 0.3}`, a part named `metric:key` to
    choose the key (the default key is the task type's for its own metric, else the name).
    `judge_model` (a LiteLLM name) judges for MLflow's scorers (`mlflow:Correctness`, judges.py);
    a callable metric with a parameter `judge_model` receives it too."""
    options = _with_judge(options, judge_model)
    if not weights:
        return Metric(default, default_key, options)
    parts = []
    for spec, weight in weights.items():
        name, _, key = spec.partition(":")
        if not isinstance(weight, (int, float)) or weight <= 0:
            raise ConfigError(f"metric weight for {spec!r} must be a positive number, got {weight!r}")
        parts.append((Metric(name, key or (default_key if name == default else name), options), float(weight)))
    return CompositeMetric(parts)


def check_metric_spec(spec: str) -> None:
    """ConfigError, before any run, for a metric spec (`name` or `name:key`) that names no
    registered metric, or for `mlflow:<Scorer>` no scorer MLflow has."""
    name, _, key = spec.partition(":")
    source = METRICS.get(name)
    metric_shape(name, source)
    if source is judges.mlflow_scorer:
        judges.check_scorer(key)


def _with_judge(options: Mapping[str, object] | None, judge_model: str | None) -> Mapping[str, object] | None:
    return {**(options or {}), judges.JUDGE_MODEL: judge_model} if judge_model else options


def metric_from_weights(weights: Mapping[str, float], options: Mapping[str, object] | None = None, *,
                        judge_model: str | None = None) -> Metric | CompositeMetric:
    """The metric a registered version recorded (`name:key` -> weight, see `Metric.weights`),
    MLflow's scorers judged by `judge_model` (as `build_metric`)."""
    options = _with_judge(options, judge_model)
    # each spec is `name:key` (Metric.weights), so the split gives the name and key arguments
    parts = [(Metric(*spec.split(":", 1), options), weight)  # type: ignore[call-arg, arg-type]
             for spec, weight in weights.items()]
    if len(parts) == 1 and parts[0][1] == 1.0:
        return parts[0][0]
    return CompositeMetric(parts)


def eval_metrics(specs: Sequence[str], default: str, default_key: str,
                 options: Mapping[str, object] | None = None, *,
                 judge_model: str | None = None) -> dict[str, Metric]:
    """The final-evaluation metrics `specs` name (`name` or `name:key`; the key defaults as in
    `build_metric`), by label (`name` or `name.key`, fit for an MLflow metric name); MLflow's
    scorers judged by `judge_model` (as `build_metric`)."""
    options = _with_judge(options, judge_model)
    metrics = {}
    for spec in specs:
        name, _, key = spec.partition(":")
        metrics[f"{name}.{key}" if key else name] = Metric(name, key or (default_key if name == default else name),
                                                           options)
    return metrics


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
