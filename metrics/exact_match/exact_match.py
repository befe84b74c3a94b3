"""Normalized exact match: casefold, collapse whitespace, strip edge punctuation/quotes."""

import string

import datasets
import evaluate

_DESCRIPTION = """Fraction of predictions that equal their reference after normalization
(casefold, strip, collapse inner whitespace, strip leading/trailing punctuation and quotes)."""
_CITATION = "Local promptomatix metric; no citation."
_INPUTS = """predictions (list of str), references (list of str).
Returns {"exact_match": float in [0, 1], "per_example": list of 1.0/0.0}."""

_EDGE = string.punctuation + string.whitespace + "\u2018\u2019\u201c\u201d\u00ab\u00bb"


def _normalize(text):
    return " ".join(str(text).casefold().split()).strip(_EDGE)


class ExactMatch(evaluate.Metric):
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
        scores = [float(_normalize(p) == _normalize(r)) for p, r in zip(predictions, references)]
        return {"exact_match": sum(scores) / len(scores), "per_example": scores}
