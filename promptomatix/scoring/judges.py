"""MLflow GenAI scorers and judges as promptomatix metrics.

`--metric mlflow:Correctness=1` scores each answer with MLflow's built-in `Correctness` judge
(any class of `mlflow.genai.scorers` that judges an output: `Correctness`, `RelevanceToQuery`,
`Safety`, `Completeness`, `Equivalence`, `Fluency`, `Summarization`, ...; `SCORERS` lists them),
its judge model a LiteLLM name: `--judge-model`, else the run's optimizer model. The metric
`mlflow` is a family: the part after the colon, where other metrics have their score key, names
the scorer.

A scorer object can also be registered as a metric of its own: `register_metric("polite",
make_judge(name="polite", instructions="... {{ outputs }} ...", model=judge_uri("openai/gpt-4o")))`,
a `Guidelines(guidelines=[...])` (given the run's judge model when it names none), or an
`@scorer` function.

Each example is judged once per distinct answer (`inputs`: the example's input fields, `outputs`:
the answer, one output field's text or a dict of several, `expectations`: `{"expected_response":
the reference}`), each argument given only to a scorer that takes it. A `Feedback` of yes/no
scores 1/0, a number or a bool scores as itself; anything else, and a judge that fails, is an
`LLMError`: a judge's failure never scores 0.
"""

from __future__ import annotations

import inspect
import json
import sys
import threading
from collections.abc import Mapping

from promptomatix.errors import ConfigError, LLMError

FAMILY = "mlflow"  # the metric name of MLflow's built-in scorers: mlflow:<Scorer>
JUDGE_MODEL = "judge_model"  # the metric option carrying the judge model (a LiteLLM name)
# Built-in scorers that judge an output but need more than a model to be built or to run
# (`ExpectationsGuidelines` reads per-row guidelines); register an instance instead.
_NOT_BY_NAME = {"ExpectationsGuidelines", "Guidelines", "RegexMatch", "ResponseLength"}
_YES = {"yes", "true", "pass"}
_NO = {"no", "false", "fail"}


def mlflow_scorer(example, pred, trace=None) -> float:
    """The metric `mlflow`, registered so that the name is known; `Metric` builds the scorer
    its key names (`mlflow:Correctness`)."""
    raise ConfigError(f"metric {FAMILY!r} names a scorer: {FAMILY}:<Scorer>, one of {', '.join(scorer_names())}")


def scorer_names() -> list[str]:
    """The classes of `mlflow.genai.scorers` that `mlflow:<name>` can name: built-in scorers of
    one answer (not of a trace or a conversation) that need nothing but a judge model."""
    import mlflow.genai.scorers as scorers
    from mlflow.genai.scorers import builtin_scorers

    names = []
    for name in sorted(scorers._LAZY_IMPORTS - _NOT_BY_NAME):
        cls = getattr(scorers, name, None)
        if not (isinstance(cls, type) and issubclass(cls, builtin_scorers.BuiltInScorer)):
            continue
        if issubclass(cls, builtin_scorers.SessionLevelScorer):
            continue
        if "outputs" not in inspect.signature(cls.__call__).parameters:
            continue
        if any(f.is_required() for f in cls.model_fields.values()):
            continue
        names.append(name)
    return names


def check_scorer(name: str) -> None:
    """ConfigError unless `mlflow:<name>` names a usable built-in scorer."""
    known = scorer_names()
    if name not in known:
        what = f"scorer {FAMILY}:{name}" if name and name != FAMILY else f"metric {FAMILY!r} without a scorer"
        raise ConfigError(f"unknown {what}; choose one of: {', '.join(f'{FAMILY}:{n}' for n in known)}")


def judge_uri(model: str) -> str:
    """A LiteLLM model name (`openai/gpt-4o-mini`, `gpt-4o-mini`, `scripted/fake`) in the form
    MLflow's judges take (`openai:/gpt-4o-mini`). MLflow calls providers it knows natively and
    every other through LiteLLM, so a LiteLLM custom provider works too."""
    if not isinstance(model, str) or not model.strip():
        raise ConfigError("judge model is empty")
    model = model.strip()
    provider, sep, rest = model.partition("/")
    if provider.endswith(":"):  # already MLflow's provider:/name
        return model
    if sep and provider and rest:
        return f"{provider}:/{rest}"
    from promptomatix.models.providers import import_litellm

    litellm = import_litellm()
    try:
        name, provider, *_ = litellm.get_llm_provider(model)
    except Exception:
        raise ConfigError(f"judge model {model!r}: name it provider/model (a LiteLLM name), "
                          f"e.g. openai/gpt-4o-mini") from None
    return f"{provider}:/{name}"


def is_scorer(source) -> bool:
    """True for an MLflow `Scorer` (a built-in scorer, a `make_judge` judge, an `@scorer`)."""
    base = sys.modules.get("mlflow.genai.scorers.base")  # not loaded: nothing can be a Scorer
    return base is not None and isinstance(source, base.Scorer)


class ScorerMetric:
    """An MLflow scorer as a per-example metric `f(example, pred, trace=None) -> float`."""

    def __init__(self, label: str, scorer, model: str | None = None):
        self.label = label
        self.model = model
        self.scorer = scorer
        self._takes = set(inspect.signature(scorer.__call__).parameters)
        self._cache: dict[str, float] = {}
        self._lock = threading.Lock()

    @classmethod
    def by_name(cls, name: str, judge_model: str | None) -> ScorerMetric:
        """`mlflow:<name>`, judged by `judge_model` (a LiteLLM name; None: MLflow's default,
        `MLFLOW_GENAI_JUDGE_DEFAULT_MODEL`)."""
        check_scorer(name)
        import mlflow.genai.scorers as scorers

        scorer_cls = getattr(scorers, name)
        model = judge_uri(judge_model) if judge_model and "model" in scorer_cls.model_fields else None
        scorer = scorer_cls(model=model) if model else scorer_cls()
        return cls(f"{FAMILY}:{name}", scorer, model)

    @classmethod
    def of(cls, name: str, scorer, judge_model: str | None) -> ScorerMetric:
        """A registered scorer object; a built-in one naming no model gets `judge_model`."""
        model = getattr(scorer, "model", None)
        fields = getattr(type(scorer), "model_fields", {})
        if model is None and judge_model and "model" in fields:
            model = judge_uri(judge_model)
            scorer = scorer.model_copy(update={"model": model})
        return cls(name, scorer, model)

    def __call__(self, example, pred, trace=None) -> float:
        outputs = dict(pred)
        args = {
            "inputs": {k: v for k, v in dict(example).items() if k not in outputs},
            "outputs": next(iter(outputs.values())) if len(outputs) == 1 else outputs,
            "expectations": {"expected_response": example[next(iter(outputs))] if len(outputs) == 1
                             else {k: example[k] for k in outputs if k in example}},
        }
        if not all(k in example for k in outputs):
            del args["expectations"]
        args = {k: v for k, v in args.items() if k in self._takes}
        key = json.dumps(args, sort_keys=True, default=str)
        with self._lock:
            if key in self._cache:
                return self._cache[key]
        try:
            value = self.scorer(**args)
        except Exception as exc:
            raise LLMError(f"judge {self.label}{self._by()} failed: {_first_line(exc)}") from exc
        score = self._score(value)
        with self._lock:
            self._cache[key] = score
        return score

    def _by(self) -> str:
        return f" (model {self.model})" if self.model else ""

    def _score(self, value) -> float:
        feedback = value
        if isinstance(value, list):  # a scorer may answer one Feedback per part
            raise LLMError(f"judge {self.label} returned {len(value)} assessments; a metric needs one")
        error = getattr(feedback, "error", None)
        if error is not None:
            message = getattr(error, "error_message", None) or str(error)
            raise LLMError(f"judge {self.label}{self._by()} failed: {_first_line(message)}")
        value = getattr(feedback, "value", feedback)
        value = getattr(value, "value", value)  # CategoricalRating.YES -> "yes"
        if isinstance(value, bool):
            return float(value)
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str) and value.strip().lower() in _YES | _NO:
            return 1.0 if value.strip().lower() in _YES else 0.0
        raise LLMError(f"judge {self.label}{self._by()} gave {value!r:.80}, not yes/no or a number "
                       f"(rationale: {_first_line(getattr(feedback, 'rationale', '') or '-')})")


def _first_line(text) -> str:
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return (lines[0] if lines else type(text).__name__)[:300]


def judge_options(options: Mapping[str, object] | None) -> str | None:
    """The judge model a metric's options carry (`JUDGE_MODEL`), if any."""
    value = (options or {}).get(JUDGE_MODEL)
    return str(value) if value else None
