"""The run tracer on its own, read back through MLflow's client: what a trace written in a batch
carries (name, run link, previews, token totals, span tree and latency), a failed call, a span
that ends after its trace was written, and the writer's batching."""

from __future__ import annotations

import re
import threading

import mlflow
import pytest

from promptomatix.tracking.tracer import RunTracer
from promptomatix.tracking.tracewriter import TraceWriter


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


# --- what MLflow's GenAI pages read: names, request and response, run, session ------------------

def test_every_trace_names_its_run_and_session_and_a_bare_step_still_shows_request_and_response(tracking):
    with mlflow.start_run() as run:
        tracer = RunTracer(run.info.run_id, run.info.experiment_id, user="ana")
        with tracer.phase("intake", {"step": "intake"}):  # given no inputs, setting no outputs
            answer(tracer, "Request: x", "ok")
        with tracer.phase("synthetic data", inputs={"task": "Classify"}) as span:
            span.set_outputs({"train": [{"review": "good"}]})
        tracer.close()

    traces = traces_of(run)
    for trace in traces.values():
        assert trace.info.trace_metadata["mlflow.sourceRun"] == run.info.run_id
        assert trace.info.trace_metadata["mlflow.trace.session"] == run.info.run_id
        assert trace.info.trace_metadata["mlflow.trace.user"] == "ana"
        root = trace.data.spans[0]
        assert root.inputs and root.outputs and trace.info.request_preview and trace.info.response_preview
    assert traces["intake"].data.spans[0].inputs == {"step": "intake"}
    assert traces["intake"].data.spans[0].outputs == {"status": "OK", "calls": 1}
    assert traces["synthetic data"].data.spans[0].outputs == {"train": [{"review": "good"}]}
    # the Sessions page's query: the run's traces are one session
    session = mlflow.search_traces(locations=[run.info.experiment_id], return_type="list",
                                   filter_string=f"metadata.`mlflow.trace.session` = '{run.info.run_id}'")
    assert len(session) == 2


def test_bound_carries_the_current_group_into_a_worker_thread(tracking):
    with mlflow.start_run() as run:
        tracer = RunTracer(run.info.run_id, run.info.experiment_id)
        with tracer.phase("iteration 1"):
            worker = threading.Thread(target=tracer.bound(lambda: answer(tracer, "rewrite this", "done")))
            worker.start()
            worker.join()
        tracer.close()

    assert set(traces_of(run)) == {"iteration 1"}  # no stray trace of the call
    root, call = traces_of(run)["iteration 1"].data.spans
    assert call.parent_id == root.span_id and call.inputs["prompt"] == "rewrite this"


def test_an_optimization_traces_each_step_with_its_inputs_scores_and_winner(tracking, scripted):
    from test_api import run_optimize

    result = run_optimize(name="sentiment")
    run = mlflow.MlflowClient().get_run(result.run_id)
    traces = mlflow.search_traces(locations=[run.info.experiment_id], run_id=result.run_id, return_type="list")
    assert traces
    for trace in traces:  # every list shows a name, a request and a response, the run and its session
        root = trace.data.spans[0]
        assert trace.info.tags["mlflow.traceName"] == root.name and root.parent_id is None
        assert root.inputs and root.outputs, root.name
        assert trace.info.request_preview not in (None, "", "null")
        assert trace.info.response_preview not in (None, "", "null")
        assert trace.info.trace_metadata["mlflow.sourceRun"] == result.run_id
        assert trace.info.trace_metadata["mlflow.trace.session"] == result.run_id
        assert root.span_type != "LLM", f"a model call outside any step: {root.name}"
    roots = {t.data.spans[0].name: t for t in traces}
    assert {"intake", "synthetic data", "iteration 1", "iteration 2"} <= roots.keys()
    assert roots["intake"].data.spans[0].outputs["task_type"] == "classification"
    assert roots["intake"].data.spans[0].inputs["raw_input"].startswith("Classify the sentiment")

    # each iteration's rewrite call is a span of that iteration's trace
    for step in ("iteration 1", "iteration 2"):
        spans = roots[step].data.spans
        rewrites = [s for s in spans if s.span_type == "LLM" and "Improved instruction" in s.inputs["prompt"]]
        assert len(rewrites) == 1 and rewrites[0].parent_id == spans[0].span_id
        iteration = spans[0]
        assert iteration.inputs["task"] and iteration.inputs["rows"] == result.valid_size
        assert iteration.inputs["incumbent"]["prompt_id"] and iteration.inputs["candidates"]
        assert {"prompt_id", "score"} <= iteration.outputs["winner"].keys()
        assert all("score" in c for c in iteration.outputs["candidates"])
    first = roots["iteration 1"].data.spans[0]
    rewritten = [c for c in first.outputs["candidates"] if c["change"].startswith("instruction rewritten")]
    assert rewritten and first.outputs["winner"]["score"] == 1.0 and first.outputs["improved"] is True

    # each candidate's `prompt N` span in a race's stage carries its score, as an attribute and in
    # its outputs (a prompt alone in its stage is the stage's span); asking the content-free
    # inputs of calibration scores nothing: those spans say how many answers they asked
    raced = [s for t in traces for s in t.data.spans
             if "prompt_id" in s.attributes and re.fullmatch(r"iteration \d, \d+ rows", s.attributes["step"])]
    assert any(s.name.startswith("prompt ") for s in raced)
    for span in raced:
        assert span.attributes["score"] == span.outputs["score"] and 0.0 <= span.outputs["score"] <= 1.0
        assert span.outputs["rows"] == span.attributes["rows"] > 0
    assert {s.outputs["score"] for s in raced} == {0.0, 1.0}  # the rewritten prompt wins, the others fail
    stages = [s for t in traces for s in t.data.spans if s.name.startswith("iteration 1, ") and s.name.endswith("rows")]
    assert stages and all(s.outputs["best"]["score"] == 1.0 for s in stages if "best" in s.outputs)
    calibration = [s for t in traces for s in t.data.spans if s.attributes.get("step", "").endswith("content-free inputs")
                   and "prompt_id" in s.attributes]
    assert all(s.outputs["asked"] > 0 and "score" not in s.outputs for s in calibration)
