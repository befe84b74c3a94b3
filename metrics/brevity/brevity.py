"""Brevity: 1.0 when a prediction is no longer (in words) than its reference, falling as
reference words / prediction words when it is longer; an empty prediction scores 0.
Meant to be combined with a quality metric (e.g. 0.7 accuracy + 0.3 brevity)."""

import datasets
import evaluate

_DESCRIPTION = __doc__
_CITATION = "Local promptomatix metric; no citation."
_INPUTS = """predictions (list of str), references (list of str).
Returns {"brevity": float, "per_example": list of float}."""


class Brevity(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_INPUTS,
            features=datasets.Features(
                {"predictions": datasets.Value("string"), "references": datasets.Value("string")}
            ),
        )

    def _compute(self, predictions, references):
        if not predictions:
            raise ValueError("no predictions to score")
        scores = []
        for prediction, reference in zip(predictions, references):
            pred_words, ref_words = len(str(prediction).split()), max(1, len(str(reference).split()))
            scores.append(0.0 if pred_words == 0 else min(1.0, ref_words / pred_words))
        return {"brevity": sum(scores) / len(scores), "per_example": scores}
