"""A hook `stop_at_target`: ends the search once the best validation score reaches a target.

Pass an instance, `optimize(..., callbacks=[StopAtScore(0.9)])`, or register the factory and
choose it by name: `hooks=["stop_at_target"]` / `--hook stop_at_target`.

The target is a plugin option, `stop_target`: declared once, it is a flag of `promptomatix
optimize` (`--stop-target 0.8`, listed by `--help`), a config-file key (`stop_target: 0.8`) and
a keyword (`optimize(..., stop_target=0.8)`), checked as a number before the run, logged as the
param `promptomatix.stop_target`, and given to the factory, whose parameter has its name.
"""

from promptomatix.config.plugin_options import PluginOption, register_option
from promptomatix.run.callbacks import Callback, register_hook, StopOptimization

NAME = "stop_at_target"
TARGET = PluginOption("stop_target", float, 1.0, "Score at which the stop_at_target hook ends the search.")


class StopAtScore(Callback):
    name = NAME  # how errors and tags name this hook

    def __init__(self, target: float = 1.0):
        self.target = target
        self.stopped_at = None

    def on_iteration_end(self, step, best, candidates):
        if best.score >= self.target:
            self.stopped_at = step
            raise StopOptimization(f"score {best.score:.3f} reached the target {self.target}")


def make_hook(stop_target: float = 1.0) -> StopAtScore:
    """The factory: promptomatix passes the run's `stop_target`."""
    return StopAtScore(stop_target)


def register(*, replace: bool = False):
    register_option(TARGET, replace=replace)
    return register_hook(NAME, make_hook, replace=replace)
