"""The prompt lifecycle in MLflow: compare registered versions, evaluate one on a data set,
promote one to an alias (with a paired test against the holder), gate a candidate in CI (the same
test, no alias moved), roll an alias back, copy a version to another model.

    from promptomatix import lifecycle
    lifecycle.compare("reviews")                        # -> list[dict], one per version
    lifecycle.evaluate("reviews@3", "test.jsonl")       # -> EvaluationReport
    lifecycle.promote("reviews", "3", "champion")       # -> PromotionDecision
    lifecycle.gate("reviews@3", "reviews@champion", "test.jsonl")  # -> GateResult (CI: .passed, .line())
    lifecycle.rollback("reviews", "champion")           # -> PromotionDecision
    lifecycle.copy_to("reviews", "3", "reviews-prod")   # -> Copied

Errors are typed: RegistryError (names, versions, aliases; PromotionError when two versions
cannot be compared), DataError (data files), both raised before anything is written.
"""

from promptomatix.lifecycle.copies import Copied, copy_to
from promptomatix.lifecycle.gating import gate, GateResult
from promptomatix.lifecycle.promotion import compare_versions, promote, PromotionDecision, PromotionError, rollback
from promptomatix.lifecycle.version_evaluation import evaluate, EvaluationReport
from promptomatix.lifecycle.versions import compare, resolve

__all__ = ["Copied", "EvaluationReport", "GateResult", "PromotionDecision", "PromotionError", "compare",
           "compare_versions", "copy_to", "evaluate", "gate", "promote", "resolve", "rollback"]
