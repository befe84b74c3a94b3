"""Label accuracy and macro-F1 (over reference labels) with exact_match normalization."""

import string

import datasets
import evaluate

_DESCRIPTION = """Accuracy and macro-F1 for label predictions. Labels are normalized
(casefold, strip, collapse whitespace, strip edge punctuation/quotes). Macro-F1 is the mean
per-label F1 over the labels that occur in the references."""
_CITATION = "Local promptomatix metric; no citation."
_INPUTS = """predictions (list of str), references (list of str).
Returns {"accuracy": float, "macro_f1": float, "per_example": list of 1.0/0.0}."""

_EDGE = string.punctuation + string.whitespace + "\u2018\u2019\u201c\u201d\u00ab\u00bb"


def _normalize(text):
    return " ".join(str(text).casefold().split()).strip(_EDGE)


class Classification(evaluate.Metric):
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
        preds = [_normalize(p) for p in predictions]
        refs = [_normalize(r) for r in references]
        scores = [float(p == r) for p, r in zip(preds, refs)]
        f1s = []
        for label in sorted(set(refs)):
            tp = sum(1 for p, r in zip(preds, refs) if p == label and r == label)
            n_pred = sum(1 for p in preds if p == label)
            n_ref = sum(1 for r in refs if r == label)
            f1s.append(2 * tp / (n_pred + n_ref))  # equals 2PR/(P+R); 0 when tp == 0
        return {
            "accuracy": sum(scores) / len(scores),
            "macro_f1": sum(f1s) / len(f1s),
            "per_example": scores,
        }
