"""The metric DSPy's optimizers maximize: promptomatix's quality times the length penalty.

    metric = ProgramMetric(Metric("classification", "accuracy"), ("label",), Objective(0.0001))
    metric(example, prediction)            # DSPy's form: metric(example, pred, trace=None) -> float
    FeedbackMetric(metric)(gold, pred, trace, pred_name, pred_trace)   # GEPA's: Prediction(score, feedback)

Quality is the task's `Metric` on each output field, averaged (0 for a missing prediction).
The penalty is `Objective`'s exp(-lambda x words), over the words of the program that made the
prediction: its instructions and demos (`program_text`). The program is found from the
prediction, which `ProgramTagger` marks with its program's text when a module call returns,
or else from the predictors in `trace`; a prediction carrying neither is scored unpenalized.
Reported scores never go through this metric: they are the plain quality (see `program_eval.py`).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import dspy
from dspy.utils.callback import BaseCallback

from promptomatix.backends.dspy.program import predictors_text, program_text
from promptomatix.scoring import CompositeMetric, mean_over_fields, Metric, Objective, prompt_words, sources_of

PROGRAM_TEXT = "_promptomatix_program_text"  # the attribute ProgramTagger sets on predictions


class ProgramTagger(BaseCallback):
    """A DSPy callback marking each module call's prediction with the module's program text.

    Nested calls end before their caller, so a prediction ends up marked by the outermost
    module, the program an optimizer runs. Install it with `dspy.context(callbacks=[...])`."""

    def __init__(self):
        self._modules: dict[str, dspy.Module] = {}  # call id -> module, while the call runs

    def on_module_start(self, call_id, instance, inputs):
        self._modules[call_id] = instance

    def on_module_end(self, call_id, outputs, exception):
        module = self._modules.pop(call_id, None)
        # Some optimizers (GEPA's trace capture) make forward return (prediction, trace).
        prediction = outputs[0] if isinstance(outputs, tuple) and outputs else outputs
        if module is not None and isinstance(prediction, dspy.Prediction):
            setattr(prediction, PROGRAM_TEXT, program_text(module))


def _text(value) -> str:
    return "" if value is None else str(value)


class ProgramMetric:
    """DSPy's standard metric `metric(example, pred, trace=None) -> float` (see the module doc)."""

    def __init__(self, metric: Metric | CompositeMetric, output_fields: Sequence[str], objective: Objective):
        self.metric = metric
        self.output_fields = tuple(output_fields)
        self.objective = objective
        self._lock = threading.Lock()  # `evaluate` modules are not safe to call from threads at once

    def __call__(self, example, pred, trace=None) -> float:
        text = self.program_text(pred, trace)
        return self.objective(self.quality(example, pred, text), text)

    def quality(self, example, pred, prompt: str = "") -> float:
        """The unpenalized score of one prediction, averaged over the output fields."""
        return mean_over_fields(list(self.field_scores(example, pred, prompt).values()))

    def field_scores(self, example, pred, prompt: str = "") -> dict[str, float]:
        """The metric's score of each output field (0 for a missing prediction); a metric of
        DSPy's shape scores the whole example once, that score standing for every field."""
        if pred is None:
            return dict.fromkeys(self.output_fields, 0.0)
        record = {k: _text(v) for k, v in example.items()}
        predicted = {name: _text(getattr(pred, name, None)) for name in self.output_fields}
        if self.metric.per_example:
            with self._lock:
                value = self.metric.score_records([predicted], [record], self.output_fields, prompt=prompt).score
            return dict.fromkeys(self.output_fields, value)
        scores = {}
        sources = sources_of([record], self.output_fields) if self.metric.needs_sources else None
        for name in self.output_fields:
            with self._lock:
                result = self.metric.score([predicted[name]], [record[name]], prompt=prompt, sources=sources)
            scores[name] = result.per_example[0]
        return scores

    @staticmethod
    def program_text(pred, trace=None) -> str:
        text = getattr(pred, PROGRAM_TEXT, None)
        if text is None and trace:
            text = predictors_text(dict.fromkeys(step[0] for step in trace))
        return text or ""


class FeedbackMetric:
    """GEPA's feedback form of a `ProgramMetric`: the same score, with a sentence per output field
    saying what was expected and what came, and what the length penalty cost."""

    def __init__(self, metric: ProgramMetric):
        self.metric = metric

    def __call__(self, gold, pred, trace=None, pred_name=None, pred_trace=None):
        text = self.metric.program_text(pred, trace)
        scores = self.metric.field_scores(gold, pred, text)
        quality = mean_over_fields(list(scores.values()))
        score = self.metric.objective(quality, text)
        parts = [f"{name}: expected {_text(gold[name])!r}, got {_text(getattr(pred, name, None))!r} "
                 f"(score {scores[name]:.2f})." for name in self.metric.output_fields]
        if quality > 0 and score < quality:
            parts.append(f"The prompt's {prompt_words(text)} words cost {quality - score:.3f} of the score: "
                         f"a shorter instruction that is as good scores higher.")
        return dspy.Prediction(score=score, feedback=" ".join(parts))
