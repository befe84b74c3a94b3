"""Numeric answer match: last number in the prediction vs the number in the reference."""

import re

import datasets
import evaluate

_DESCRIPTION = """For math answers. Takes the last number in the prediction (handles sign,
decimals, thousands separators, $, %, trailing period, simple fractions like 3/4) and the
number in the reference; they match if |pred - ref| <= 1e-6 * max(1, |ref|).
A prediction (or reference) with no number scores 0."""
_CITATION = "Local promptomatix metric; no citation."
_INPUTS = """predictions (list of str), references (list of str).
Returns {"numeric_match": float in [0, 1], "per_example": list of 1.0/0.0}."""

_NUMBER = re.compile(
    r"(?:(?<![\w.])[-+\u2212])?"  # sign, unless it is a hyphen between words/numbers ("2-5")
    r"(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+|(?=\.\d))"  # 1,234 | 1234 | (bare .5)
    r"(?:\.\d+)?"  # decimals (a trailing sentence period is not consumed)
    r"(?:\s*/\s*\d+(?:\.\d+)?)?"  # optional fraction denominator
)


def _last_number(text):
    matches = _NUMBER.findall(str(text))
    if not matches:
        return None
    token = "".join(matches[-1].split()).replace(",", "").replace("\u2212", "-")
    if "/" in token:
        num, den = token.split("/")
        return float(num) / float(den) if float(den) != 0 else None
    return float(token)


class NumericMatch(evaluate.Metric):
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
        for pred, ref in zip(predictions, references):
            p, r = _last_number(pred), _last_number(ref)
            ok = p is not None and r is not None and abs(p - r) <= 1e-6 * max(1.0, abs(r))
            scores.append(float(ok))
        return {"numeric_match": sum(scores) / len(scores), "per_example": scores}
