"""A hook `stop_at_target`: ends the search once the best validation score reaches a target.

Pass an instance, `optimize(..., callbacks=[StopAtScore(0.9)])`, or register the factory and
choose it by name: `hooks=["stop_at_target"]` / `--hook stop_at_target`.
"""

from promptomatix.callbacks import Callback, StopOptimization, register_hook

NAME = "stop_at_target"


class StopAtScore(Callback):
    name = NAME  # how errors and tags name this hook

    def __init__(self, target: float = 1.0):
        self.target = target
        self.stopped_at = None

    def on_iteration_end(self, step, best, candidates):
        if best.score >= self.target:
            self.stopped_at = step
            raise StopOptimization(f"score {best.score:.3f} reached the target {self.target}")


def register(*, target: float = 1.0, replace: bool = False):
    return register_hook(NAME, lambda: StopAtScore(target), replace=replace)
