"""Events of an optimization, delivered to callbacks: the MLflow tracker, progress output and
users' hooks are all callbacks. Backends emit events and never import MLflow.

A user's hook is a `Callback` passed as `optimize(callbacks=[...])`, or registered with
`register_hook(name, factory)` / an entry point in `promptomatix.hooks` and chosen with
`--hook NAME`. A hook that raises `StopOptimization` ends the search early (the best so far is
kept); any other error in a hook is reported (logged, and tagged on the run) and the hook is
switched off, while the optimization goes on undisturbed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from promptomatix.plugins import Registry

if TYPE_CHECKING:
    from promptomatix.task.candidates import Candidate, OptimizationTask

log = logging.getLogger(__name__)


class StopOptimization(Exception):  # noqa: N818 (a signal, not an error)
    """Raised by a hook to end the search after the current iteration."""


class Callback:
    """Override what you need. `step` counts iterations from 1; step 0 is the starting prompt.

    `should_stop` is the stop request backends check between iterations: true once the search
    should end early with the best so far (`CallbackList` sets it when a hook raises
    `StopOptimization`)."""

    should_stop: bool = False

    def on_optimization_start(self, task: OptimizationTask) -> None:
        """Data and starting prompt are ready; the search is about to begin."""

    def on_candidate(self, step: int, candidate: Candidate) -> None:
        """A candidate prompt was scored."""

    def on_iteration_end(self, step: int, best: Candidate, candidates: Sequence[Candidate]) -> None:
        """An iteration finished; `best` is the best so far, `candidates` those scored in it."""

    def on_checkpoint(self, step: int, state: dict) -> None:
        """Step `step` is complete; `state` (JSON data) is what the backend needs to go on from
        there after the process dies (see `OptimizationTask.checkpoint`)."""

    def on_optimization_end(self, result: Any) -> None:
        """The run finished and the result (an `OptimizationResult`) is registered."""


class CallbackList(Callback):
    """Delivers each event to every callback in order. `should_stop` turns true once a callback
    raised `StopOptimization`; backends check it between iterations. `errors` lists the user
    hooks that failed, as (hook name, error) pairs."""

    def __init__(self, callbacks: Sequence[Callback] = (), hooks: Sequence[Callback] = ()):
        self.callbacks = list(callbacks)
        self.hooks = list(hooks)
        self.should_stop = False
        self.errors: list[tuple[str, str]] = []
        self.on_hook_error: Callable[[str, str], None] | None = None

    def _emit(self, event: str, *args) -> None:
        for callback in self.callbacks:
            getattr(callback, event)(*args)  # our own callbacks: an error is a real failure
        for hook in list(self.hooks):
            try:
                getattr(hook, event)(*args)
            except StopOptimization:
                log.info("hook %s asked to stop the optimization", _name(hook))
                self.should_stop = True
            except Exception as exc:  # a user's hook must not break the run: report it, drop it
                error = f"{type(exc).__name__}: {exc}"
                log.error("hook %s failed in %s and is switched off: %s", _name(hook), event, error)
                self.hooks.remove(hook)
                self.errors.append((_name(hook), error))
                if self.on_hook_error:
                    self.on_hook_error(_name(hook), error)

    def on_optimization_start(self, task):
        self._emit("on_optimization_start", task)

    def on_candidate(self, step, candidate):
        self._emit("on_candidate", step, candidate)

    def on_iteration_end(self, step, best, candidates):
        self._emit("on_iteration_end", step, best, candidates)

    def on_checkpoint(self, step, state):
        self._emit("on_checkpoint", step, state)

    def on_optimization_end(self, result):
        self._emit("on_optimization_end", result)


def _name(hook: Callback) -> str:
    return getattr(hook, "name", type(hook).__name__)


class ProgressPrinter(Callback):
    """One line per iteration on stderr: what was tried (each candidate's change, its score and
    on how many validation examples) and what is best so far."""

    def on_iteration_end(self, step, best, candidates):
        if not candidates:
            log.info("starting prompt scored %.3f on %d examples", best.score, len(best.evaluation.per_example))
            return
        tried = "; ".join(f"{c.change or 'candidate'} {c.score:.3f}/{len(c.evaluation.per_example)}"
                          for c in candidates)
        won = f"{best.change or 'the incumbent'}" if any(best is c for c in candidates) else "the incumbent stays"
        log.info("iteration %d tried (score/examples): %s. Best %.3f (%s)", step, tried, best.score, won)


HOOKS: Registry[Callable[[], Callback]] = Registry("hooks")


def register_hook(name: str, factory: Callable[[], Callback], *, replace: bool = False):
    """Register a hook factory (a `Callback` subclass, say) for `--hook NAME`."""
    return HOOKS.register(name, factory, replace=replace)
