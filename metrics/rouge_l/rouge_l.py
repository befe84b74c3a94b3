"""ROUGE-L F-measure (longest common subsequence) via the rouge_score package."""

import datasets
import evaluate
from rouge_score import rouge_scorer

_DESCRIPTION = """ROUGE-L F-measure per example (rouge_score, Porter stemming);
the main score is the mean over examples."""
_CITATION = """@inproceedings{lin-2004-rouge,
  title={ROUGE: A Package for Automatic Evaluation of Summaries},
  author={Lin, Chin-Yew}, booktitle={Text Summarization Branches Out}, year={2004}}"""
_INPUTS = """predictions (list of str), references (list of str).
Returns {"rouge_l": float in [0, 1], "per_example": list of float}."""


class RougeL(evaluate.Metric):
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
        scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
        # rouge_score's signature is score(target, prediction).
        scores = [float(scorer.score(r, p)["rougeL"].fmeasure) for p, r in zip(predictions, references)]
        return {"rouge_l": sum(scores) / len(scores), "per_example": scores}
