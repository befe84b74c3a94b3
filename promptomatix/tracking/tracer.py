"""`RunTracer`: every LLM call of an optimization as an MLflow trace span linked to its run.

The run's Traces tab then shows what the model was asked and answered: the prompt and the
request's settings as inputs, the answer as outputs, token usage (MLflow's own attribute, which
the UI sums per trace), cost, whether the cache answered, and each span's latency.

Calls are grouped: `group(name, attributes, inputs)` opens a trace (a step of the search, say)
and `within(group)` makes the calls of the current thread its children; `phase(name)` does
both for a stretch of work on this thread (intake, data generation, an iteration). A call
outside any group is a trace of its own. The `LM`, the `Evaluator` and the DSPy backend see only
this interface. Worker threads do not inherit the current group: `bound(fn)` carries it over.

What MLflow's GenAI pages read, every trace carries: its name (the step's, `mlflow.traceName`),
its run (`mlflow.sourceRun`), its session (`mlflow.trace.session`, the run id: the Sessions
page lists a run's traces as one session) and user (`mlflow.trace.user`), and on its root span
inputs (what the step was given) and outputs (what it found), which become the Request and
Response of the trace lists. A step that gave none shows its attributes and how many calls it
made (or its error), never an empty cell.

Spans are recorded here as plain data, not through MLflow's live tracing (which exports every
span as it ends, a store transaction each): a trace is built into MLflow's entities when its
root ends and handed to a `TraceWriter`, which stores finished traces in batches in the
background. `close()` waits until all are stored.
"""

from __future__ import annotations

import base64
import contextlib
import contextvars
import json
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from promptomatix.tracking.tracewriter import TraceWriter

PREVIEW_CHARS = 1000  # MLflow's own cut for a trace's request and response previews


@dataclass
class _Trace:
    """One trace while it is recorded: its ids, where it goes, and its spans that have ended."""

    otel_id: int
    experiment_id: str
    ended: list = field(default_factory=list)
    written: bool = False

    @property
    def trace_id(self) -> str:
        return f"tr-{self.otel_id:032x}"  # MLflow's form of a trace id


@dataclass
class SpanRecord:
    """A span being recorded: what `group` returns and `within`/`end` take."""

    trace: _Trace
    span_id: int
    parent: "SpanRecord | None"
    name: str
    span_type: str
    inputs: Any
    attributes: dict
    start_ns: int
    run_id: str = ""
    outputs: Any = None  # what `end` records when it is given none (`set_outputs`)

    def set_inputs(self, inputs) -> None:
        self.inputs = inputs

    def set_outputs(self, outputs) -> None:
        self.outputs = outputs

    def set_attributes(self, attributes: dict) -> None:
        self.attributes.update(attributes)

    def set_attribute(self, key: str, value) -> None:
        self.attributes[key] = value


class RunTracer:
    """Traces of the run `run_id`, in experiment `experiment_id`, written to the store that
    `tracking_uri` names (the current one when None)."""

    def __init__(self, run_id: str, experiment_id: str, tracking_uri: str | None = None, user: str | None = None):
        import mlflow

        self.run_id = run_id
        self.experiment_id = experiment_id
        self.user = user if user is not None else _user()
        self._writer = TraceWriter(tracking_uri or mlflow.get_tracking_uri())
        self._lock = threading.Lock()
        self._parent: contextvars.ContextVar[SpanRecord | None] = contextvars.ContextVar(
            f"promptomatix_trace_parent_{id(self)}", default=None)

    # -- grouping ------------------------------------------------------------------------------

    def group(self, name: str, attributes: dict | None = None, inputs: dict | None = None) -> SpanRecord:
        return self._start(name, "CHAIN", inputs, dict(attributes or {}))

    def end(self, span: SpanRecord, outputs=None, status: str = "OK") -> None:
        self._end(span, outputs if outputs is not None else span.outputs, status)

    def current(self) -> SpanRecord | None:
        """The group the calls of this thread go into (None: each call a trace of its own)."""
        return self._parent.get()

    def bound(self, fn):
        """`fn` running in the group current here, from whichever thread calls it (a thread
        pool's workers start outside any group)."""
        group = self.current()

        def run(*args, **kwargs):
            with self.within(group):
                return fn(*args, **kwargs)

        return run

    @contextlib.contextmanager
    def within(self, span: SpanRecord | None):
        token = self._parent.set(span)
        try:
            yield span
        finally:
            self._parent.reset(token)

    @contextlib.contextmanager
    def phase(self, name: str, attributes: dict | None = None, inputs: dict | None = None):
        """The block's calls as one trace (a span of the current group's, inside one); the
        block may `set_outputs` on the span it is given."""
        span = self.group(name, attributes, inputs)
        status = "OK"
        try:
            with self.within(span):
                yield span
        except BaseException as exc:
            status = "ERROR"
            if span.outputs is None:
                span.set_outputs({"error": f"{type(exc).__name__}: {exc}"[:2000]})
            raise
        finally:
            self.end(span, status=status)

    # -- calls ---------------------------------------------------------------------------------

    @contextlib.contextmanager
    def call(self, model: str, prompt, request: dict):
        """One LLM request; the block calls `record(answer, prompt_tokens, completion_tokens,
        cost, cached)` once it has the answer. `prompt` None: `request` holds the whole input
        (a chat's messages, say)."""
        inputs = request if prompt is None else {"prompt": prompt, **request}
        span = self._start(model, "LLM", inputs, {"model": model})
        answer: dict = {}

        def record(text: str, prompt_tokens: int = 0, completion_tokens: int = 0, cost: float = 0.0,
                   cached: bool = False) -> None:
            answer.update(text=text, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
                          cost=cost, cached=cached)

        try:
            yield record
        except BaseException as exc:
            span.set_attribute("error", f"{type(exc).__name__}: {exc}"[:2000])
            self._end(span, None, "ERROR")
            raise
        tokens_in, tokens_out = answer.get("prompt_tokens", 0), answer.get("completion_tokens", 0)
        span.set_attributes({"mlflow.chat.tokenUsage": {"input_tokens": tokens_in, "output_tokens": tokens_out,
                                                        "total_tokens": tokens_in + tokens_out},
                             "cost_usd": answer.get("cost", 0.0), "cached": answer.get("cached", False)})
        self._end(span, {"answer": answer.get("text", "")}, "OK")

    def close(self, timeout: float = 120) -> None:
        """Every trace whose root has ended is in the store (or given up on after `timeout` s)."""
        self._writer.close(timeout)

    # -- recording -----------------------------------------------------------------------------

    def _start(self, name: str, span_type: str, inputs, attributes: dict) -> SpanRecord:
        parent = self._parent.get()
        trace = parent.trace if parent is not None else _Trace(random.getrandbits(128), self.experiment_id)
        return SpanRecord(trace, random.getrandbits(64), parent, name, span_type, inputs, attributes,
                          time.time_ns(), self.run_id)

    def _root_io(self, root: SpanRecord, outputs, status: str, ended: list) -> tuple:
        """The root's inputs and outputs as recorded: a step that gave none shows its name and
        attributes, and how many calls it made (the trace lists never show an empty cell)."""
        inputs = root.inputs if root.inputs is not None else {"step": root.name, **root.attributes}
        if outputs is None:
            calls = sum(1 for e in ended if e[0].span_type == "LLM")
            outputs = {"status": status, "calls": calls}
        return inputs, outputs

    def _end(self, span: SpanRecord, outputs, status: str) -> None:
        end_ns, trace = time.time_ns(), span.trace
        with self._lock:
            late = trace.written  # a child that outlived its root: its spans go on their own
            if span.parent is None and not late:
                span.inputs, outputs = self._root_io(span, outputs, status, trace.ended)
            ended = (span, end_ns, outputs, status)
            if not late:
                trace.ended.append(ended)
                if span.parent is None:
                    trace.written = True
        if late:
            self._writer.put(trace.experiment_id, None, [_entity(*ended)])
        elif span.parent is None:
            self._writer.put(trace.experiment_id, _info(span, end_ns, outputs, status, user=self.user),
                             [_entity(*e) for e in sorted(trace.ended, key=_started)])


def _user() -> str:
    """Who runs this, as MLflow names a run's user (`mlflow.user`)."""
    try:
        from mlflow.tracking.context.default_context import _get_user

        return _get_user() or ""
    except Exception:  # noqa: BLE001 - a label, never a reason to fail
        return ""


def traced_outputs(span: SpanRecord | None, outputs) -> None:
    """`outputs` as what the traced block `span` found (nothing without a span: no traces)."""
    if span is not None:
        span.set_outputs(outputs)


def _started(ended: tuple) -> int:
    return ended[0].start_ns  # the root first, then its calls in order: as MLflow lists a trace's spans


# -- MLflow's entities --------------------------------------------------------------------------

def _json(value) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def _b64(number: int, size: int) -> str:
    return base64.b64encode(number.to_bytes(size, "big")).decode()


def _entity(span: SpanRecord, end_ns: int, outputs, status: str):
    """The span as MLflow's `Span` entity: attributes JSON-encoded, as MLflow's own spans carry them."""
    from mlflow.entities import Span

    attributes = {"mlflow.traceRequestId": _json(span.trace.trace_id), "mlflow.spanType": _json(span.span_type),
                  **{key: _json(value) for key, value in span.attributes.items()}}
    if span.inputs is not None:
        attributes["mlflow.spanInputs"] = _json(span.inputs)
    if outputs is not None:
        attributes["mlflow.spanOutputs"] = _json(outputs)
    return Span.from_dict({
        "trace_id": _b64(span.trace.otel_id, 16), "span_id": _b64(span.span_id, 8),
        "parent_span_id": _b64(span.parent.span_id, 8) if span.parent is not None else None,
        "name": span.name, "start_time_unix_nano": span.start_ns, "end_time_unix_nano": end_ns, "events": [],
        "status": {"code": "STATUS_CODE_OK" if status == "OK" else "STATUS_CODE_ERROR", "message": ""},
        "attributes": attributes})


def _info(root: SpanRecord, end_ns: int, outputs, status: str, user: str = ""):
    """The trace's record: its name, the run it belongs to (`mlflow.sourceRun`, what the run's
    Traces tab and `search_traces(run_id=...)` look for), its session (the run: what MLflow's
    Sessions page groups by) and user, previews of its input and output."""
    from mlflow.entities import TraceInfo, TraceLocation, TraceState
    from mlflow.tracing.constant import TraceMetadataKey

    metadata = {TraceMetadataKey.SOURCE_RUN: root.run_id, TraceMetadataKey.TRACE_SESSION: root.run_id,
                "mlflow.trace_schema.version": "3"}
    if user:
        metadata[TraceMetadataKey.TRACE_USER] = user

    return TraceInfo(
        trace_id=root.trace.trace_id, trace_location=TraceLocation.from_experiment_id(root.trace.experiment_id),
        request_time=root.start_ns // 1_000_000, execution_duration=(end_ns - root.start_ns) // 1_000_000,
        state=TraceState.OK if status == "OK" else TraceState.ERROR,
        request_preview=_json(root.inputs)[:PREVIEW_CHARS] if root.inputs is not None else None,
        response_preview=_json(outputs)[:PREVIEW_CHARS] if outputs is not None else None,
        trace_metadata=metadata,
        tags={"mlflow.traceName": root.name})
