"""The interface every optimization backend implements: what a backend gets (`OptimizationTask`,
and `Callback` for reporting and for the stop request), what it returns (`Outcome`), and the one
rule for keeping the best candidate (`keep_best`). A backend needs nothing else from the package,
and never imports MLflow (the run is recorded by the callbacks).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from operator import attrgetter
from typing import TypeVar

from promptomatix.run.callbacks import Callback
# The task a backend gets and the candidates it scores, re-exported: they live outside the
# package because callbacks and records use them too (see `promptomatix.task.candidates`).
from promptomatix.config import OptimizationConfig
from promptomatix.task.candidates import Candidate, OptimizationTask


@dataclass(frozen=True)
class Outcome:
    """What a backend returns: the best candidate it found, scored on the validation rows it
    searched on, and the starting prompt's score on the same rows."""

    best: Candidate
    initial_score: float


# A line of a plan: what a step does, and the model calls it makes at most (None: unknown).
PlanStep = tuple[str, "int | None"]


@dataclass(frozen=True)
class PlanInput:
    """What a backend's plan is sized by: the run's config, the validation and training rows it
    will get, whether the task is a label task and the rows synthetic, the calls the steps before
    the search take (`calls_before`: intake, data) and those the check after it keeps back."""

    config: OptimizationConfig
    valid_rows: int
    train_rows: int
    classification: bool
    synthetic: bool
    calls_before: int = 0
    check_calls: int = 0

    @property
    def start_step(self) -> PlanStep:
        """Scoring the starting prompt on every validation row; free for synthetic label rows,
        whose answers the labelling made (the evaluator's cache)."""
        if self.synthetic and self.classification:
            return ("scoring the starting prompt (answers from labelling)", 0)
        return (f"scoring the starting prompt on {self.valid_rows} examples", self.valid_rows)


@dataclass(frozen=True)
class BackendPlan:
    """The calls a backend plans (steps from scoring the start on, at most), and the validation
    rows it tells prompts apart on."""

    steps: tuple[PlanStep, ...]
    valid_rows: int


Ranked = TypeVar("Ranked")


def keep_best(incumbent: Ranked, challengers: Iterable[Ranked],
              key: Callable[[Ranked], float] = attrgetter("objective")) -> Ranked:
    """The challenger ranking highest by `key` (the objective unless a backend ranks otherwise)
    when it ranks strictly above `incumbent`, else `incumbent`. Ties keep the incumbent: a change
    must earn its place, so what a backend returns is never below its start."""
    best = incumbent
    for challenger in challengers:
        if key(challenger) > key(best):
            best = challenger
    return best


class Backend(ABC):
    """An optimizer of prompts.

    `optimize` receives the task (starting prompt, train and validation examples, an evaluator
    and the objective, and what else a backend may use: the budget's `meter`, the two models'
    settings, the `metric`, `show_progress`) and returns an `Outcome`: the best candidate it
    found, scored on the validation set, and the starting prompt's score. It reports each
    scored candidate and each finished iteration to `callbacks`, with step 0 for the starting
    prompt, stops between iterations once `callbacks.should_stop` is true, and may report its
    state after each step (`on_checkpoint`) so a killed run can be resumed. It keeps the best
    with `keep_best` (or a stricter rule), so it never returns a candidate whose objective is
    below the starting prompt's.

    `options` names the backend-specific config keys it reads (of `config.BACKEND_OPTIONS`):
    only those are logged as the run's params, with the options every backend reads.
    """

    options: tuple[str, ...] = ()

    def check(self, config: OptimizationConfig) -> None:
        """Raise `ConfigError` for options this backend cannot honour. Called before the run
        starts, so bad input costs nothing and leaves nothing behind."""

    def plan(self, given: PlanInput) -> BackendPlan:
        """The model calls `optimize` will make for `given`, step by step, at most (`--dry-run`
        prints them). A backend that cannot say plans its search as unknown: the call budget
        bounds it."""
        steps = (given.start_step, (f"search: {type(self).__name__} (calls unknown; the budget bounds them)", None))
        return BackendPlan(steps, given.valid_rows)

    def upfront_note(self, config: OptimizationConfig) -> str | None:
        """A warning to log before the run starts (what the search may cost), or None."""
        return None

    @abstractmethod
    def optimize(self, task: OptimizationTask, callbacks: Callback) -> Outcome:
        ...
