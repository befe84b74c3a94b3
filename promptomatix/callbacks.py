"""Events of an optimization, delivered to callbacks: the MLflow tracker, progress output and
users' hooks are all callbacks. Backends emit events and never import MLflow."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from promptomatix.backends.base import Candidate

log = logging.getLogger(__name__)


class Callback:
    """Override what you need. `step` counts iterations from 1; step 0 is the starting prompt."""

    def on_candidate(self, step: int, candidate: Candidate) -> None:
        """A candidate prompt was scored."""

    def on_iteration_end(self, step: int, best: Candidate, candidates: Sequence[Candidate]) -> None:
        """An iteration finished; `best` is the best so far, `candidates` those scored in it."""


class CallbackList(Callback):
    def __init__(self, callbacks: Sequence[Callback] = ()):
        self.callbacks = list(callbacks)

    def on_candidate(self, step, candidate):
        for cb in self.callbacks:
            cb.on_candidate(step, candidate)

    def on_iteration_end(self, step, best, candidates):
        for cb in self.callbacks:
            cb.on_iteration_end(step, best, candidates)


class ProgressPrinter(Callback):
    """One line per iteration on stderr."""

    def on_iteration_end(self, step, best, candidates):
        if candidates:
            scores = ", ".join(f"{c.score:.3f}" for c in candidates)
            log.info("iteration %d: candidates scored %s; best %.3f", step, scores, best.score)
        else:
            log.info("starting prompt scored %.3f", best.score)
