"""A metric in each shape promptomatix accepts (the `evaluate` module shape is
`custom_metric/`), and a metric that reads the prompt.

- `label_in_answer(predictions, references) -> dict`: the batch shape, one output field at a time;
- `exact_label(example, pred, trace=None) -> float`: DSPy's shape, whole examples (as in the
  original guide's `my_custom_metric`), read as `example.sentiment` or `example["sentiment"]`;
- `short_and_right(example, pred, trace=None, prompt="")`: asks for the prompt with the keyword
  `prompt`, so a custom length penalty needs no custom backend.

The shape is found when the metric is registered; anything else is refused there with one line.
Choose one with `metric_weights={"exact_label": 1.0}` / `--metric exact_label=1`, or as a
final-evaluation metric with `eval_metrics=["short_and_right"]` / `--eval-metric short_and_right`.
"""

from promptomatix.scoring import register_metric


def label_in_answer(predictions, references):
    """1.0 when the reference label appears anywhere in the answer."""
    scores = [float(r.strip().lower() in p.lower()) for p, r in zip(predictions, references)]
    return {"label_in_answer": sum(scores) / max(len(scores), 1), "per_example": scores}


def exact_label(example, pred, trace=None):
    return float(pred.sentiment.strip().lower() == example.sentiment.strip().lower())


def short_and_right(example, pred, trace=None, prompt=""):
    """Right answers count, less 0.1 for every 50 words of prompt (instruction and demos)."""
    right = exact_label(example, pred)
    return max(0.0, right - 0.1 * (len(prompt.split()) // 50))


METRICS = {"label_in_answer": label_in_answer, "exact_label": exact_label, "short_and_right": short_and_right}


def register(*, replace: bool = False) -> list[str]:
    return [register_metric(name, metric, replace=replace) and name for name, metric in METRICS.items()]
