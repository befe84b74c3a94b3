"""Counting what model calls cost (calls, tokens, money, retries, parse failures, cache hits,
answers that named no label) and holding an optimization to its budget."""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass, fields

from promptomatix.errors import BudgetExhausted


@dataclass(frozen=True)
class Limits:
    """What one optimization may spend, task and optimizer model calls alike; None: no limit.
    `calls` counts requests sent to a model (answers from the cache are free); `cost` is checked
    before each call, so the calls in flight may take the total a little past it; `seconds` counts
    from the start of the optimization."""

    calls: int | None = None
    cost: float | None = None
    seconds: float | None = None


@dataclass
class Usage:
    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    retries: int = 0
    parse_failures: int = 0
    cache_hits: int = 0  # answers from the cache: not calls, no tokens, no cost
    unmapped_answers: int = 0  # classification answers that named none of the labels (scored wrong)

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def __sub__(self, other: Usage) -> Usage:
        return Usage(**{f.name: getattr(self, f.name) - getattr(other, f.name) for f in fields(self)})

    def as_metrics(self, prefix: str = "") -> dict[str, float]:
        values = {f.name: getattr(self, f.name) for f in fields(self)} | {"tokens": self.tokens}
        return {f"{prefix}{k}": float(v) for k, v in values.items()}


class UsageMeter:
    """A thread-safe running total of `Usage`, shared by the LMs of one optimization, and the
    keeper of its `Limits`: every model request first takes a permit (`take`), which raises
    `BudgetExhausted` once a limit is reached; `stopped_by` then names the limit."""

    def __init__(self, limits: Limits | None = None, *, clock=time.monotonic):
        self._lock = threading.Lock()
        self._usage = Usage()
        self.limits = limits or Limits()
        self._clock = clock
        self._started = clock()
        self._taken = 0
        self._reserved = 0  # calls kept back from the current block (`reserved`)
        self.stopped_by: str | None = None

    def take(self) -> None:
        """A permit for one model request, or `BudgetExhausted` naming the limit reached."""
        with self._lock:
            limits = self.limits
            if limits.calls is not None and self._taken >= limits.calls - self._reserved:
                kept = f" ({self._reserved} kept for a later step)" if self._reserved else ""
                self._stop("max_calls", f"the budget of {limits.calls} model calls is spent{kept}")
            if limits.cost is not None and self._usage.cost >= limits.cost:
                self._stop("max_cost", f"the budget of ${limits.cost:g} is spent (${self._usage.cost:.4f})")
            if limits.seconds is not None and self._clock() - self._started >= limits.seconds:
                self._stop("max_seconds", f"the time budget of {limits.seconds:g} s is spent")
            self._taken += 1

    def _stop(self, limit: str, message: str):
        self.stopped_by = self.stopped_by or limit
        raise BudgetExhausted(limit, message)

    def stop(self, limit: str, message: str):
        """Raise `BudgetExhausted` for `limit` now: what is left of it cannot pay for the next
        step (a search that knows its step's cost stops before starting it)."""
        with self._lock:
            self._stop(limit, message)

    @contextlib.contextmanager
    def reserved(self, calls: int):
        """A block in which `calls` of the call budget are kept back: a step after it (the
        held-out check) is paid for whatever the block spends."""
        with self._lock:
            self._reserved += calls
        try:
            yield
        finally:
            with self._lock:
                self._reserved -= calls

    def remaining_calls(self) -> int | None:
        """Permits left under `limits.calls` (None: no call limit)."""
        with self._lock:
            return None if self.limits.calls is None else max(0, self.limits.calls - self._reserved - self._taken)

    def add(self, **counts) -> None:
        with self._lock:
            for key, value in counts.items():
                setattr(self._usage, key, getattr(self._usage, key) + value)

    def snapshot(self) -> Usage:
        with self._lock:
            return Usage(**{f.name: getattr(self._usage, f.name) for f in fields(Usage)})
