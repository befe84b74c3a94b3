"""A loaded `evaluate` module called as a function: `compute_function(module)(predictions=...,
references=..., **extra) -> dict`, the same dict `module.compute` returns.

Why not `module.compute` each time: it writes its inputs to an Arrow table, fingerprints the
table (pickling it) and reads it back before calling the module's own `_compute`: ~2 ms a call
on one core, paid under the interpreter lock. The search scores each prompt's answers as they
come in, a few rows at a time, on the thread that hands out the model calls, so that cost kept
workers waiting. For string inputs (every built-in metric; any module whose declared inputs, or
their first set, are all `Value("string")`) the table gives back exactly what went in, so
`_compute` is called directly, as `compute` would call it (under the module's seed). Other
inputs, or a module with an output format (numpy, torch), go through `compute`, which casts or
refuses them; those calls hold a lock, as `compute` keeps its table on the module.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any


def compute_function(module: Any) -> Callable[..., dict]:
    """See the module's doc. `module` is a loaded `evaluate.EvaluationModule` (untyped package)."""
    from datasets.utils.py_utils import temp_seed  # what `compute` seeds `_compute` with

    lock = threading.Lock()
    strings = _string_inputs(module)

    def compute(*, predictions, references, **extra) -> dict:
        given = {"predictions": predictions, "references": references, **extra}
        if strings is not None and all(name in given and _all_strings(given[name]) for name in strings):
            with temp_seed(module.seed):
                return module._compute(**given)
        with lock:
            return module.compute(**given)

    return compute


def declared_inputs(module: Any) -> Any:
    """The module's declared inputs (a `datasets.Features`), the first set when it declares
    several (`compute` takes the first that fits: string inputs fit a first set of strings)."""
    features = getattr(module, "features", None)
    if isinstance(features, (list, tuple)):
        features = features[0] if features else None
    return features


def _string_inputs(module: Any) -> tuple[str, ...] | None:
    """The module's input names when each is declared a plain string and its inputs reach
    `_compute` as Python lists (no output format); else None."""
    from datasets import Features, Value

    features = declared_inputs(module)
    if not isinstance(features, Features) or not features or getattr(module.info, "format", None) is not None:
        return None
    if not all(isinstance(kind, Value) and kind.dtype == "string" for kind in features.values()):
        return None
    if getattr(module, "process_id", 0) != 0 or getattr(module, "num_process", 1) != 1:
        return None  # distributed evaluation: `compute` gathers the other processes' rows
    return tuple(features)


def _all_strings(values: object) -> bool:
    return isinstance(values, list) and all(isinstance(v, str) for v in values)
