"""SARI (Xu et al. 2016): how well a rewrite keeps, deletes and adds n-grams, judged against the
source text and the reference rewrite(s)."""

from collections import Counter

import datasets
import evaluate
from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a

_DESCRIPTION = """SARI for text simplification and other rewriting (paraphrase, formalization,
correction), sentence level, scaled to [0, 1]. For n = 1..4 it scores the n-grams the prediction
KEEPS from the source (F1), DELETES from it (precision) and ADDS to it (F1), each against what
the references keep, delete and add; the example's score is the mean of the three operations'
means over n. Text is lowercased and tokenized as sacrebleu's 13a; n-gram counts of the source
and the prediction are multiplied by the number of references. Like the HF `sari` metric (with
its fix of the keep recall), an empty operation counts as perfect (0/0 = 1), so a prediction
equal to a reference scores 1. Copying the source scores no addition at all (add F1 = 0 as soon
as the references add anything): copies score low, unlike ROUGE-L.
The main score is the mean over examples (HF `sari` / 100)."""
_CITATION = """@article{xu-etal-2016-optimizing,
  title={Optimizing Statistical Machine Translation for Text Simplification},
  author={Xu, Wei and Napoles, Courtney and Pavlick, Ellie and Chen, Quanze and Callison-Burch, Chris},
  journal={Transactions of the Association for Computational Linguistics}, volume={4},
  pages={401--415}, year={2016}}"""
_INPUTS = """sources (list of str): the texts to rewrite; predictions (list of str): the rewrites;
references (list of str, or list of lists of str): one reference rewrite, or several, per example.
Returns {"sari": float in [0, 1], "per_example": list of float}."""

MAX_N = 4
_TOKENIZE = Tokenizer13a()


def _tokens(text) -> list[str]:
    return _TOKENIZE(str(text).lower()).split()


def _ngrams(tokens: list[str], n: int) -> Counter:
    return Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))


def _f1(precision: float, recall: float) -> float:
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def _operations(source: Counter, prediction: Counter, references: Counter, copies: int) -> tuple[float, float, float]:
    """keep F1, delete precision and add F1 for one n-gram order. `references` sums the n-gram
    counts of all references; `copies` (their number) scales the source's and prediction's."""
    source = Counter({g: c * copies for g, c in source.items()})
    prediction = Counter({g: c * copies for g, c in prediction.items()})

    kept = source & prediction
    kept_good = kept & references
    kept_by_refs = source & references
    keep_p = sum(kept_good[g] / kept[g] for g in kept) / len(kept) if kept else 1.0
    keep_r = sum(kept_good.values()) / sum(kept_by_refs.values()) if kept_by_refs else 1.0

    deleted = source - prediction
    deleted_good = deleted - references
    delete_p = sum(deleted_good[g] / deleted[g] for g in deleted) / len(deleted) if deleted else 1.0

    added = set(prediction) - set(source)
    added_good = added & set(references)
    added_by_refs = set(references) - set(source)
    add_p = len(added_good) / len(added) if added else 1.0
    add_r = len(added_good) / len(added_by_refs) if added_by_refs else 1.0
    return _f1(keep_p, keep_r), delete_p, _f1(add_p, add_r)


def sari_sentence(source: str, prediction: str, references: list[str]) -> float:
    """One example's SARI in [0, 1]."""
    src, pred = _tokens(source), _tokens(prediction)
    refs = [_tokens(r) for r in references]
    if not refs:
        raise ValueError("an example has no reference")
    keep = delete = add = 0.0
    for n in range(1, MAX_N + 1):
        ref_grams = sum((_ngrams(r, n) for r in refs), Counter())
        k, d, a = _operations(_ngrams(src, n), _ngrams(pred, n), ref_grams, len(refs))
        keep, delete, add = keep + k, delete + d, add + a
    return (keep + delete + add) / (3 * MAX_N)


class Sari(evaluate.Metric):
    def _info(self):
        string = datasets.Value("string")
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_INPUTS,
            features=[
                datasets.Features({"sources": string, "predictions": string, "references": string}),
                datasets.Features({"sources": string, "predictions": string,
                                   "references": datasets.Sequence(string)}),
            ],
        )

    def _compute(self, sources, predictions, references):
        if not predictions:
            raise ValueError("no predictions to score")
        if not len(sources) == len(predictions) == len(references):
            raise ValueError(f"{len(sources)} sources, {len(predictions)} predictions, {len(references)} references")
        scores = [sari_sentence(s, p, [r] if isinstance(r, str) else list(r))
                  for s, p, r in zip(sources, predictions, references)]
        return {"sari": sum(scores) / len(scores), "per_example": scores}
