"""Model calls in parallel threads that stop when the process is asked to stop.

`map_in_threads` is how the evaluator and the meta-prompt backend run many model calls at once.
It lives beside the models, not with the signal handling (`promptomatix.run.signals`), because
its contract is about calls: on a stop, none starts and none under way is waited for.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def map_in_threads(fn: Callable[[T], R], items: Iterable[T], workers: int) -> list[R]:
    """`[fn(item) for item in items]` on `workers` threads, in order. When it is stopped (a
    failed item, Ctrl-C, `Terminated`) no new item starts and it does not wait for the ones under
    way (model calls that may take a minute): a stop is over in seconds. `with
    ThreadPoolExecutor()` would wait for them."""
    pool = ThreadPoolExecutor(max_workers=max(1, workers))
    try:
        results = list(pool.map(fn, items))
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()
    return results
