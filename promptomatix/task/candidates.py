"""What a search scores: the task a backend is given (`OptimizationTask`: the spec, the data, the
evaluator and the objective) and the scored prompts it makes of it (`Candidate`).

They are the backends' interface types (`promptomatix.backends.base` re-exports them), but
callbacks receive them and `record` writes candidates to JSON, and backends use both of those:
so the types live here, outside the `promptomatix.backends` package, whose registry depends on
every built-in backend. This module imports no MLflow.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from promptomatix.config import ModelSettings, OptimizationConfig
from promptomatix.models.lm import LM
from promptomatix.models.usage import UsageMeter
from promptomatix.scoring import CompositeMetric, Metric, Objective
from promptomatix.scoring.evaluator import Evaluation, Evaluator
from promptomatix.scoring.rows import RowsPolicy
from promptomatix.task.prompt import Prompt
from promptomatix.task.spec import Example, TaskSpec


@dataclass(frozen=True)
class Candidate:
    """A prompt with its validation quality (`score`, no penalty) and `objective` (penalized).

    `program` is what serving needs beyond the prompt text to reproduce the candidate's outputs
    (for example a compiled DSPy program's state); JSON-serializable, None for a plain prompt.
    `change` says in a few words how it differs from the prompt it was made from."""

    prompt: Prompt
    evaluation: Evaluation
    objective: float
    program: dict | None = None
    change: str = ""

    @property
    def score(self) -> float:
        return self.evaluation.score


@dataclass(frozen=True)
class OptimizationTask:
    """What a backend gets: the spec, the starting prompt, the data, and the means to score;
    its properties (`meter`, `task_model`, `optimizer_model`, `metric`, `show_progress`,
    `calibration_calls`) are the rest of what a backend may use, so no backend reaches into the
    evaluator or its model.

    `feedback` is reviewers' open comments on the starting prompt (text for the optimizer model,
    empty when there are none). `checkpoint` is the state the backend last reported with
    `on_checkpoint` in a run that was killed, `{"step": n, "state": {...}}`: a backend that
    can resume goes on from step n + 1; one that cannot ignores it and starts over."""

    spec: TaskSpec
    start: Prompt
    train: Sequence[Example]
    valid: Sequence[Example]
    evaluator: Evaluator
    objective: Objective
    optimizer_lm: LM
    config: OptimizationConfig
    feedback: str = ""
    checkpoint: dict | None = None

    @property
    def meter(self) -> UsageMeter:
        """The optimization's usage and budget, shared by every model call of the run: ask it what
        is left (`remaining_calls`), or end the search with `stop(limit, reason)`."""
        return self.evaluator.lm.meter

    @property
    def task_model(self) -> ModelSettings:
        """The model the prompt is for (which `evaluator` asks)."""
        return self.evaluator.lm.settings

    @property
    def optimizer_model(self) -> ModelSettings:
        """The model that proposes (which `optimizer_lm` asks)."""
        return self.optimizer_lm.settings

    @property
    def calibration_calls(self) -> int:
        """Model calls the calibration of a new label prompt costs: 0 when it is read from the
        answers to the validation rows, else one per content-free input (synthetic rows, see
        `Evaluator`)."""
        return len(self.evaluator.calibration_inputs(self.start))

    @property
    def synthetic(self) -> bool:
        """Whether the examples are synthetic (generated and labelled by a model, some wrongly),
        not the user's."""
        return self.evaluator.synthetic

    @property
    def rows(self) -> RowsPolicy:
        """What the search does differently on synthetic rows and on the user's (`scoring.rows.RowsPolicy`)."""
        return self.evaluator.rows

    @property
    def metric(self) -> Metric | CompositeMetric:
        """The quality metric behind every score (without the length penalty of `objective`)."""
        return self.evaluator.metric

    @property
    def show_progress(self) -> bool:
        """Whether progress bars are wanted."""
        return self.evaluator.show_progress

    @property
    def tracer(self):
        """The run's tracer (`tracking.tracer.RunTracer`), or None without traces: a backend making
        model calls of its own records them as spans through it."""
        return self.evaluator.lm.tracer

    def score(self, prompt: Prompt, desc: str = "scoring") -> Candidate:
        return self.candidate(prompt, self.evaluator.evaluate(prompt, self.valid, desc=desc))

    def candidate(self, prompt: Prompt, evaluation: Evaluation, change: str = "") -> Candidate:
        return Candidate(prompt, evaluation, self.objective(evaluation.score, prompt.template), change=change)
