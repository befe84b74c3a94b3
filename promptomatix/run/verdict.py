"""What a finished search's winner is worth, before it is registered: the starting prompt and the
winner compared on held-out rows the search never saw (`held_out_check`), the winner's answers
looked at beside the references (`look_at_answers`), refused when it mostly copies its input
(`copy_refusal`), and what changed said in words for the summary and the version's description
(`what_changed`). Each writes what it found on the active run through `recorder`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from promptomatix.backends.base import OptimizationTask, Outcome
from promptomatix.errors import BudgetExhausted
from promptomatix.intake import answer_doubts, Reading
from promptomatix.run.job import Job
from promptomatix.scoring import stats
from promptomatix.scoring.freetext import Degenerate, degenerate, mean_words
from promptomatix.task.spec import Example
from promptomatix.tracking import mlflow_tracker, recorder

log = logging.getLogger(__name__)


def what_changed(job: Job, task: OptimizationTask, outcome: Outcome, reading: Reading, interval,
                  checked, few: str | None) -> tuple[str, str, tuple[str, ...]]:
    """What changed, as the summary says it; the same with the doubts about the task, the
    held-out check or the too-few-rows warning, as the registered version's description says it;
    and the doubts (also a tag of the run, where a person reads the result)."""
    best = outcome.best
    described = mlflow_tracker.describe_change(task.start, best.prompt, outcome.initial_score, best.score, len(task.valid),
                                         parent=job.head.origin.version if job.head.origin else None,
                                         interval=(interval.low, interval.high))
    change = described
    doubts = (*reading.doubts, *answer_doubts(task.spec, best.evaluation.unmapped, len(best.evaluation.per_example)))
    if doubts:
        recorder.record_doubts(doubts)
        change = f"{change}. Check the task as it was read: {'; '.join(doubts)}"
    if checked is not None:
        change = f"{change}; on {checked.n} held-out rows the search never saw: {stats.describe(checked)}"
    elif few:
        change = f"{change}. Beware: {few}"
    return described, change, doubts


def held_out_check(task: OptimizationTask, outcome: Outcome, rows: list[Example]) -> stats.Comparison | None:
    """The starting prompt and the winner scored on `rows`, the user's rows the search never saw,
    and compared row by row (`stats.compare`), logged as `check_*` metrics. The winner was chosen
    on the validation rows, so its score there is biased upward; this one is not. None without
    such rows, or when a budget other than the calls (kept for it) is spent."""
    if not rows:
        return None
    start, best = task.start, outcome.best.prompt
    try:
        initial, final = task.evaluator.evaluate_many([start, best], rows, desc="scoring the held-out check rows")
    except BudgetExhausted as exc:
        log.warning("no check on the held-out rows: %s", exc)
        return None
    checked = stats.compare(initial.per_example, final.per_example)
    recorder.record_check(checked, initial, final)
    log.info("on %d held-out rows the search never saw: %s", checked.n, stats.describe(checked))
    return checked


@dataclass(frozen=True)
class Answers:
    """What the winner's free-text answers on the validation rows look like beside the references."""

    degenerate: Degenerate
    answer_words: float | None = None
    reference_words: float | None = None


def look_at_answers(task: OptimizationTask, outcome: Outcome) -> Answers:
    """The winner's degenerate answers (`freetext.degenerate`) and, for free text, the mean
    length of its answers and of the references, logged on the run."""
    best = outcome.best
    rows = list(task.valid[:len(best.evaluation.predictions)])
    found = degenerate(best.prompt, rows, best.evaluation.predictions)
    if best.prompt.labels or not rows:
        return Answers(found)
    fields = best.prompt.output_fields
    checked = Answers(found, mean_words(best.evaluation.predictions, fields), mean_words(rows, fields))
    recorder.record_answers(found, checked.answer_words, checked.reference_words)
    if found.any:
        log.warning("the best prompt's answers on the validation rows: %s", found.describe())
    return checked


def copy_refusal(answers: Answers) -> str:
    """Why the winner is not registered ('' when it is): most of its answers copy their input,
    where the references do not (see `freetext`)."""
    if not answers.degenerate.mostly_copies:
        return ""
    return (f"not registered: the best prompt found copies its input in {answers.degenerate.copies} of "
            f"{answers.degenerate.rows} validation answers, where the references do not; try more calls, "
            f"another model or --task-type rewriting (a metric that does not reward copying)")
