"""Scoring a DSPy program on examples the way `promptomatix.scoring.evaluator.Evaluator` scores a prompt.

`evaluate_program(program, examples, metric, output_fields, num_threads=4)` runs the program on
every example in parallel (DSPy's `ParallelExecutor`, which carries the active `dspy.context`
into its threads), then scores each output field with the task's metric over all predictions
at once, averaged over the fields: the same `Evaluation` (quality, no length penalty) as the
meta-prompt backend reports, so scores compare across backends.

An example whose answer cannot be parsed predicts empty fields (the adapter has counted it in
the meter's `parse_failures`); any other error stops the evaluation and is raised.
"""

from __future__ import annotations

from collections.abc import Sequence

from promptomatix.scoring import CompositeMetric, Metric
from promptomatix.scoring.evaluator import Evaluation


def evaluate_program(program, examples: Sequence, metric: Metric | CompositeMetric, output_fields: Sequence[str], *,
                     num_threads: int = 1, show_progress: bool = False) -> Evaluation:
    """`examples` are `dspy.Example`s with their inputs marked."""
    from dspy.utils.exceptions import AdapterParseError
    from dspy.utils.parallelizer import ParallelExecutor

    def run(example):
        try:
            return program(**example.inputs()), None
        except AdapterParseError:
            return None, None
        except Exception as exc:  # handed back to the caller's thread, raised below
            return None, exc

    # timeout=0: no straggler resubmission (a slow local model would be asked twice).
    executor = ParallelExecutor(num_threads=num_threads, disable_progress_bar=not show_progress, timeout=0)
    outcomes = executor.execute(run, list(examples))
    errors = [error for _, error in outcomes if error is not None]
    if errors:
        raise errors[0]
    predictions = tuple(
        {name: "" if prediction is None or getattr(prediction, name, None) is None else str(getattr(prediction, name))
         for name in output_fields}
        for prediction, _ in outcomes
    )
    from promptomatix.backends.dspy.program import program_text

    records = [{k: str(v) for k, v in e.items()} for e in examples]
    scored = metric.score_records(predictions, records, output_fields, prompt=program_text(program))
    return Evaluation(scored.score, tuple(scored.per_example), predictions)
