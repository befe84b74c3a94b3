"""chrF (character n-gram F-score) via sacrebleu, scaled to [0, 1]."""

import datasets
import evaluate
from sacrebleu.metrics import CHRF

_DESCRIPTION = """chrF from sacrebleu with default settings, divided by 100.
"chrf" is the corpus-level score; "per_example" holds sentence-level scores."""
_CITATION = """@inproceedings{popovic-2015-chrf,
  title={chrF: character n-gram F-score for automatic MT evaluation},
  author={Popovi{\\'c}, Maja}, booktitle={WMT}, year={2015}}"""
_INPUTS = """predictions (list of str), references (list of str).
Returns {"chrf": float in [0, 1], "per_example": list of float}."""


class Chrf(evaluate.Metric):
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
        chrf = CHRF()
        per_example = [chrf.sentence_score(p, [r]).score / 100 for p, r in zip(predictions, references)]
        corpus = chrf.corpus_score(list(predictions), [list(references)]).score / 100
        return {"chrf": corpus, "per_example": per_example}
