"""SQuAD-style token-overlap F1 between prediction and reference."""

import collections
import re
import string

import datasets
import evaluate

_DESCRIPTION = """SQuAD token F1: lowercase, remove punctuation and articles (a/an/the),
whitespace-tokenize, then F1 of the bag-of-tokens overlap. Both empty -> 1.0, one empty -> 0.0."""
_CITATION = """@inproceedings{rajpurkar2016squad,
  title={SQuAD: 100,000+ Questions for Machine Comprehension of Text},
  author={Rajpurkar, Pranav and Zhang, Jian and Lopyrev, Konstantin and Liang, Percy},
  booktitle={EMNLP}, year={2016}}"""
_INPUTS = """predictions (list of str), references (list of str).
Returns {"token_f1": float in [0, 1], "per_example": list of float}."""

_PUNCT = set(string.punctuation)


def _tokens(text):
    text = "".join(ch for ch in str(text).lower() if ch not in _PUNCT)
    return re.sub(r"\b(a|an|the)\b", " ", text).split()


def _f1(pred, ref):
    p, r = _tokens(pred), _tokens(ref)
    if not p or not r:
        return float(p == r)
    common = sum((collections.Counter(p) & collections.Counter(r)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(p), common / len(r)
    return 2 * precision * recall / (precision + recall)


class TokenF1(evaluate.Metric):
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
        scores = [_f1(p, r) for p, r in zip(predictions, references)]
        return {"token_f1": sum(scores) / len(scores), "per_example": scores}
