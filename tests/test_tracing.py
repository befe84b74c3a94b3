"""The run tracer on its own, read back through MLflow's client: what a trace written in a batch
carries (name, run link, previews, token totals, span tree and latency), a failed call, a span
that ends after its trace was written, and the writer's batching."""

from __future__ import annotations

import threading

import mlflow
import pytest

from promptomatix.tracing import RunTracer
from promptomatix.tracewriter import TraceWriter


def traces_of(run) -> dict:
    found = mlflow.search_traces(locations=[run.info.experiment_id], run_id=run.info.run_id, return_type="list")
    return {trace.info.tags["mlflow.traceName"]: trace for trace in found}


def answer(tracer, prompt: str, text: str, tokens: int = 3):
    with tracer.call("openai/stub", prompt, {"max_tokens": 5}) as record:
        record(text, prompt_tokens=tokens, completion_tokens=1, cost=0.002)


def test_a_step_is_one_trace_of_the_run_with_its_calls_as_spans(tracking):
    with mlflow.start_run() as run:
        tracer = RunTracer(run.info.run_id, run.info.experiment_id)
        step = tracer.group("iteration 1", {"step": "iteration 1"}, inputs={"instruction": "Classify"})
        with tracer.within(step):
            prompt = tracer.group("prompt 1", {"prompt_id": "abc"})
        calls = [threading.Thread(target=lambda i=i: _in(tracer, prompt, f"Review {i}")) for i in range(3)]
        for thread in calls:
            thread.start()
        for thread in calls:
            thread.join()
        tracer.end(prompt)
        tracer.end(step, outputs={"best": 0.9})
        tracer.close()

    trace = traces_of(run)["iteration 1"]
    assert trace.info.trace_metadata["mlflow.sourceRun"] == run.info.run_id and trace.info.state == "OK"
    assert trace.info.token_usage == {"input_tokens": 9, "output_tokens": 3, "total_tokens": 12}
    assert "Classify" in trace.info.request_preview and "0.9" in trace.info.response_preview
    root, middle, *llm = trace.data.spans
    assert (root.name, middle.name, middle.parent_id, middle.attributes["prompt_id"]) == \
        ("iteration 1", "prompt 1", root.span_id, "abc")
    assert len(llm) == 3 and all(s.parent_id == middle.span_id and s.span_type == "LLM" for s in llm)
    assert sorted(s.inputs["prompt"] for s in llm) == ["Review 0", "Review 1", "Review 2"]
    assert all(s.outputs == {"answer": "yes"} and s.end_time_ns >= s.start_time_ns for s in llm)


def _in(tracer, group, prompt):
    with tracer.within(group):
        answer(tracer, prompt, "yes")


def test_a_failed_call_and_a_late_span_are_recorded(tracking):
    with mlflow.start_run() as run:
        tracer = RunTracer(run.info.run_id, run.info.experiment_id)
        with pytest.raises(RuntimeError), tracer.phase("intake"):
            with tracer.call("openai/stub", "Request: x", {}):
                raise RuntimeError("provider down")
        step = tracer.group("scoring")
        with tracer.within(step):
            late = tracer.group("straggler")
        tracer.end(step)
        tracer.end(late)  # ends after its trace was handed over: stored into the same trace
        answer(tracer, "alone", "ok")  # outside any group: a trace of its own
        tracer.close()

    traces = traces_of(run)
    assert traces["intake"].info.state == "ERROR"
    (call,) = [s for s in traces["intake"].data.spans if s.span_type == "LLM"]
    assert call.status.status_code == "ERROR" and "provider down" in call.attributes["error"]
    assert [s.name for s in traces["scoring"].data.spans] == ["scoring", "straggler"]
    assert traces["openai/stub"].data.spans[0].outputs == {"answer": "ok"}


def test_the_writer_stores_what_waits_in_one_batch_and_close_waits_for_it(tracking, monkeypatch):
    batches = []
    original = TraceWriter._write
    monkeypatch.setattr(TraceWriter, "_write", lambda self, batch: (batches.append(len(batch)), original(self, batch)))
    with mlflow.start_run() as run:
        tracer = RunTracer(run.info.run_id, run.info.experiment_id)
        for i in range(5):
            with tracer.phase(f"prompt {i}"):
                answer(tracer, f"p{i}", "ok")
        tracer.close()
        assert len(traces_of(run)) == 5  # all stored when close returns
    assert batches == [5]  # ended together: gathered into one write
