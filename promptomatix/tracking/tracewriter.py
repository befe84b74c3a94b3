"""`TraceWriter`: finished traces written to the MLflow store in batches, by one background thread.

MLflow's live tracing exports each span as it ends: on a sqlite store every span is a
transaction of its own (a commit with its fsync, plus SQLAlchemy work), 7 to 13 ms of CPU per
LLM call of an optimization, which made tracing cost +12% to +30% of the wall time at 200 ms
per call (benchmarks/README.md, "Throughput").
Here a trace reaches the store only once its root span has ended, and everything finished by
then goes in one go: each new trace's `TraceInfo` (name, run link, previews) with `start_trace`,
then all their spans with a single `log_spans`, which the store writes in one transaction.

The writer thread starts with the first trace and stops at `close()`, which waits until
everything handed over is stored (callers and tests then find the traces).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Sequence

log = logging.getLogger(__name__)

_CLOSE = object()  # the queue item that tells the thread to finish


class TraceWriter:
    """`put(experiment_id, info, spans)` hands over a finished trace (`info` its `TraceInfo`, or
    None for late spans of a trace already written); `close()` writes what is left and stops."""

    # How many traces at most one batch writes: bounds one transaction, not the throughput.
    BATCH = 64
    GATHER = 0.5  # seconds a batch waits for more traces after its first (never past a close)

    def __init__(self, tracking_uri: str | None = None):
        self._tracking_uri = tracking_uri
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._closed = False
        self._warned = False

    def put(self, experiment_id: str, info, spans: Sequence) -> None:
        with self._lock:
            if self._closed:  # a straggler after the run's end: written where it stands
                self._write([(experiment_id, info, list(spans))])
                return
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="promptomatix-traces", daemon=True)
                self._thread.start()
        self._queue.put((experiment_id, info, list(spans)))

    def close(self, timeout: float | None = 120) -> None:
        """Everything handed over is stored (or given up on after `timeout` seconds)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            thread = self._thread
        if thread is not None:
            self._queue.put(_CLOSE)
            thread.join(timeout)
            if thread.is_alive():
                log.warning("traces: still writing after %s s; the rest may be missing", timeout)

    def _loop(self) -> None:
        while True:
            item, batch = self._queue.get(), []
            # The traces of one step end together (each prompt's, then the step's): gather them
            # for a moment, so that they share one transaction instead of taking one each.
            deadline = time.monotonic() + self.GATHER
            while item is not _CLOSE:
                batch.append(item)
                if len(batch) == self.BATCH:
                    break
                try:
                    item = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
            if batch:
                self._write(batch)
            if item is _CLOSE:
                return

    def _write(self, batch: list[tuple]) -> None:
        from mlflow.exceptions import MlflowException
        from mlflow.tracing.client import TracingClient

        client = TracingClient(self._tracking_uri)
        spans_by_experiment: dict[str, list] = {}
        try:
            # The trace's own record first: the store then takes its name, run link and
            # previews as given, and fills in the token totals from the spans.
            for experiment_id, info, spans in batch:
                if info is not None:
                    client.start_trace(info)
                spans_by_experiment.setdefault(experiment_id, []).extend(spans)
            for experiment_id, spans in spans_by_experiment.items():
                if spans:
                    client.log_spans(experiment_id, spans)
        except (MlflowException, NotImplementedError) as exc:
            # A trace is a record of the run, not its result: a store that refuses it must not
            # stop the optimization (MLflow's own exporter drops a failed trace the same way).
            if not self._warned:
                self._warned = True
                log.warning("traces: the store did not take %d trace(s): %s", len(batch), str(exc)[:300])
