"""Counting what model calls cost: calls, tokens, money, retries, parse failures and cache hits."""

from __future__ import annotations

import threading
from dataclasses import dataclass, fields


@dataclass
class Usage:
    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    retries: int = 0
    parse_failures: int = 0
    cache_hits: int = 0  # answers from the cache: not calls, no tokens, no cost

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def __sub__(self, other: Usage) -> Usage:
        return Usage(**{f.name: getattr(self, f.name) - getattr(other, f.name) for f in fields(self)})

    def as_metrics(self, prefix: str = "") -> dict[str, float]:
        values = {f.name: getattr(self, f.name) for f in fields(self)} | {"tokens": self.tokens}
        return {f"{prefix}{k}": float(v) for k, v in values.items()}


class UsageMeter:
    """A thread-safe running total of `Usage`, shared by the LMs of one optimization."""

    def __init__(self):
        self._lock = threading.Lock()
        self._usage = Usage()

    def add(self, **counts) -> None:
        with self._lock:
            for key, value in counts.items():
                setattr(self._usage, key, getattr(self._usage, key) + value)

    def snapshot(self) -> Usage:
        with self._lock:
            return Usage(**{f.name: getattr(self._usage, f.name) for f in fields(Usage)})
