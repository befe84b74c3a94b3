"""One optimization as `api.optimize` resolved it before its run started: where it starts from
(`Head`), the job itself (`Job`), the run's two models on one budget (`Models`), and the
starting prompt. Shared by `api` and the modules it runs the job with (`preparation`,
`recorder`), which import nothing of `api`."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from promptomatix.backends.base import Backend
from promptomatix.config import OptimizationConfig
from promptomatix.errors import BudgetExhausted
from promptomatix.models.cache import default_cache
from promptomatix.models.lm import LM
from promptomatix.models.usage import UsageMeter
from promptomatix.run import checkpoints, lineage
from promptomatix.run.callbacks import Callback
from promptomatix.task.prompt import Prompt
from promptomatix.task.spec import Example, TaskSpec
from promptomatix.tracking.tracer import RunTracer


@dataclass(frozen=True)
class Head:
    """What an optimization starts from besides its config: nothing for a new one; for
    `from_`, a registered version (`origin`); for `resume`, an unfinished run (`saved`)."""

    origin: lineage.Origin | None = None
    saved: checkpoints.Saved | None = None

    @property
    def spec(self) -> TaskSpec | None:
        return self.origin.spec if self.origin else self.saved.spec if self.saved else None

    @property
    def data(self) -> tuple[list[Example], list[Example]] | None:
        if self.origin:
            return self.origin.train, self.origin.valid
        if self.saved and self.saved.train is not None and self.saved.valid is not None:
            return self.saved.train, self.saved.valid
        return None


@dataclass(frozen=True)
class Job:
    """One optimization as `optimize` resolved it before the run started: its config, registry
    name, starting point, backend, hooks, and the user's data (read early, so a bad file costs
    no run)."""

    config: OptimizationConfig
    name: str
    head: Head
    backend: Backend
    hooks: list[Callback]
    show_progress: bool
    user_data: list[Example] | None = None
    valid_data: list[Example] | None = None

    def start(self, spec: TaskSpec) -> Prompt:
        """The prompt the search starts from: the version started from, else the user's words."""
        return self.head.origin.prompt if self.head.origin else starting_prompt(spec)


@dataclass(frozen=True)
class Models:
    """The two models of a run, sharing one budget (`meter`), answer cache and tracer."""

    meter: UsageMeter
    task_lm: LM
    optimizer_lm: LM
    tracer: RunTracer | None

    @classmethod
    def open(cls, config: OptimizationConfig, tracer: RunTracer | None) -> Models:
        meter = UsageMeter(config.limits)
        cache = default_cache() if config.cache else None
        make = lambda settings: LM(settings, meter, max_retries=config.max_retries, seed=config.seed,  # noqa: E731
                                   cache=cache, tracer=tracer)
        return cls(meter, make(config.task_model), make(config.optimizer_model), tracer)

    def phase(self, name: str, inputs: dict | None = None):
        """A stretch of work whose model calls are traced together, given `inputs` (nothing
        without traces); the block may `traced_outputs` on the span it gets."""
        return self.tracer.phase(name, inputs=inputs) if self.tracer else contextlib.nullcontext()


def starting_prompt(spec: TaskSpec) -> Prompt:
    """The user's own words as the first prompt, with the examples they wrote as demos; a
    classification with a known label set answers with one of its labels."""
    labelled = spec.task_type == "classification" and spec.labels and len(spec.output_fields) == 1
    return Prompt(spec.instructions or spec.description, spec.input_fields, spec.output_fields,
                  demos=tuple(spec.sample_examples), single_line=spec.task_type == "classification",
                  labels=tuple(spec.labels) if labelled else ())


@contextlib.contextmanager
def spent_before(what: str):
    """A budget spent before `what`: there is no prompt worth keeping yet, so the run fails with
    a message that says when, and what to raise."""
    try:
        yield
    except BudgetExhausted as exc:
        raise BudgetExhausted(exc.limit, f"{exc} before {what}; raise the budget (--max-calls, --max-cost, "
                                         f"--max-seconds)") from None
