"""`starts_with_label`: an `evaluate` module scoring 1.0 when the prediction starts with the
reference (case and surrounding spaces ignored), so "positive, clearly" counts for "positive".

The folder `custom_metric/` holding this file of the same name is the module; register it by
path with `register()` (or `register_metric("starts_with_label", "/path/to/custom_metric")`)
and choose it with `metric_weights={"starts_with_label": 1.0}` / `--metric starts_with_label`.
"""

from pathlib import Path

import datasets
import evaluate

NAME = "starts_with_label"


class StartsWithLabel(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description="Fraction of predictions that start with their reference.",
            citation="Promptomatix example metric; no citation.",
            inputs_description="predictions (list of str), references (list of str).",
            features=datasets.Features(
                {"predictions": datasets.Value("string"), "references": datasets.Value("string")}
            ),
        )

    def _compute(self, predictions, references):
        scores = [float(str(p).strip().casefold().startswith(str(r).strip().casefold()))
                  for p, r in zip(predictions, references)]
        # `per_example` lets promptomatix show which examples failed without re-scoring each one.
        return {NAME: sum(scores) / max(len(scores), 1), "per_example": scores}


def register(*, replace: bool = False) -> str:
    """Register this folder as the metric `starts_with_label`."""
    from promptomatix.scoring import register_metric

    return register_metric(NAME, str(Path(__file__).resolve().parent), replace=replace)
