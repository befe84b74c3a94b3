"""The interface every optimization backend implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

from promptomatix.callbacks import Callback
from promptomatix.config import OptimizationConfig
from promptomatix.evaluation import Evaluation, Evaluator
from promptomatix.models.lm import LM
from promptomatix.prompts import Prompt
from promptomatix.scoring import Objective
from promptomatix.spec import Example, TaskSpec


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
    """What a backend gets: the spec, the starting prompt, the data, and the means to score.

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

    def score(self, prompt: Prompt, desc: str = "scoring") -> Candidate:
        return self.candidate(prompt, self.evaluator.evaluate(prompt, self.valid, desc=desc))

    def candidate(self, prompt: Prompt, evaluation: Evaluation, change: str = "") -> Candidate:
        return Candidate(prompt, evaluation, self.objective(evaluation.score, prompt.template), change=change)


class Backend(ABC):
    """An optimizer of prompts.

    `optimize` receives the task (starting prompt, train and validation examples, an evaluator
    and the objective) and returns the best candidate it found, scored on the validation set.
    It reports each scored candidate and each finished iteration to `callbacks`, with step 0
    for the starting prompt, and may report its state after each step (`on_checkpoint`) so a
    killed run can be resumed. It must not return a candidate whose objective is below the
    starting prompt's.

    `options` names the backend-specific config keys it reads (of `config.BACKEND_OPTIONS`):
    only those are logged as the run's params, with the options every backend reads.
    """

    options: tuple[str, ...] = ()

    def check(self, config: OptimizationConfig) -> None:
        """Raise `ConfigError` for options this backend cannot honour. Called before the run
        starts, so bad input costs nothing and leaves nothing behind."""

    @abstractmethod
    def optimize(self, task: OptimizationTask, callbacks: Callback) -> Candidate:
        ...
