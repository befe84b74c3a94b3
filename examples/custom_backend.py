"""A backend `demos_only`: keeps the instruction and tries random few-shot demo sets.

Each iteration draws `candidates` demo sets of `num_demos` training examples, scores them on
validation and keeps the best. Like every backend it reports the starting prompt as step 0
(`on_candidate` and `on_iteration_end`), stops when a hook asked to (`callbacks.should_stop`),
keeps the best with `keep_best` (so never returns a candidate whose objective is below the
start's), and returns an `Outcome` with the start's score. Choose it with `backend="demos_only"`.
"""

import random

from promptomatix.backends import register_backend
from promptomatix.backends.base import Backend, keep_best, OptimizationTask, Outcome
from promptomatix.config import OptimizationConfig
from promptomatix.errors import ConfigError
from promptomatix.run.callbacks import Callback

NAME = "demos_only"


class DemosOnlyBackend(Backend):
    def check(self, config: OptimizationConfig) -> None:
        if config.num_demos < 1:
            raise ConfigError("the demos_only backend needs num_demos of at least 1")

    def optimize(self, task: OptimizationTask, callbacks: Callback) -> Outcome:
        rng = random.Random(task.config.seed)
        best = start = task.score(task.start, desc="scoring the starting prompt")
        callbacks.on_candidate(0, best)
        callbacks.on_iteration_end(0, best, [])
        train = list(task.train)
        for step in range(1, task.config.iterations + 1):
            scored = []
            for index in range(task.config.candidates):
                demos = tuple(rng.sample(train, min(task.config.num_demos, len(train))))
                candidate = task.score(best.prompt.with_(demos=demos), desc=f"iteration {step}, demos {index + 1}")
                callbacks.on_candidate(step, candidate)
                scored.append(candidate)
            best = keep_best(best, scored)
            callbacks.on_iteration_end(step, best, scored)
            if callbacks.should_stop:
                break
        return Outcome(best, start.score)


def register(*, replace: bool = False):
    return register_backend(NAME, DemosOnlyBackend, replace=replace)
