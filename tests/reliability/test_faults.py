"""Fault injection: a provider that fails one call in ten (429, 500, 503, timeouts, truncated or
malformed JSON, empty content) still gives the fault-free run's result; the retries and parse
failures are counted, logged and recorded as run metrics, and the waits back off."""

from __future__ import annotations

import json
import logging
import types

import mlflow
import pytest
from mlflow import MlflowClient
from reliability_support import CONTENT_FAULTS, EXCEPTION_FAULTS, RAW_INPUT, FaultyLLM, install

import promptomatix
import promptomatix.models.lm as lm_module
from promptomatix.config import ModelSettings
from promptomatix.errors import LLMError, ParseError
from promptomatix.models.lm import LM
from promptomatix.models.usage import UsageMeter

SCHEMA = {"type": "object", "properties": {"instruction": {"type": "string"}}, "required": ["instruction"]}
REWRITE = "Current instruction: be nice\n\nImproved instruction as JSON:"


@pytest.fixture
def sleeps(monkeypatch):
    """The backoff waits the model layer asks for, recorded instead of slept."""
    delays: list[float] = []
    monkeypatch.setattr(lm_module, "time", types.SimpleNamespace(sleep=delays.append))
    return delays


def make_lm(model: str) -> LM:
    return LM(ModelSettings(model=model), UsageMeter(), max_retries=3, backoff=0.5)


@pytest.mark.parametrize("kind", EXCEPTION_FAULTS + CONTENT_FAULTS)
def test_each_fault_kind_on_a_structured_call_is_retried_and_counted(kind, sleeps):
    model = install("onefault", FaultyLLM(rate=1.0, max_in_a_row=1, kinds=(kind,)))
    lm = make_lm(model)

    assert lm.complete_json(REWRITE, SCHEMA) == {"instruction": "Read the review CAREFULLY and answer positive "
                                                                "or negative."}

    usage = lm.meter.snapshot()
    if kind in EXCEPTION_FAULTS:  # retried inside the call, after a backoff wait
        assert (usage.retries, usage.parse_failures, usage.calls) == (1, 0, 1)
        assert len(sleeps) == 1 and 0.25 <= sleeps[0] < 0.75
    else:  # the answer came back but is no JSON: asked again, without a wait
        assert (usage.retries, usage.parse_failures, usage.calls) == (0, 1, 2)
        assert sleeps == []


@pytest.mark.parametrize("kind", EXCEPTION_FAULTS)
def test_each_transient_fault_on_a_plain_call_is_retried(kind, sleeps):
    model = install("onefault", FaultyLLM(rate=1.0, max_in_a_row=1, kinds=(kind,)))
    lm = make_lm(model)

    assert lm.complete("Review: a good film\nSentiment:") == "maybe"
    assert (lm.meter.snapshot().retries, lm.meter.snapshot().calls) == (1, 1)


def test_a_fault_that_persists_past_the_retries_is_a_typed_one_line_error(sleeps):
    model = install("onefault", FaultyLLM(rate=1.0, max_in_a_row=99, kinds=("rate_limit",)))
    with pytest.raises(LLMError, match=r"RateLimitError after 4 attempts") as info:
        make_lm(model).complete("hello")
    assert "\n" not in str(info.value)
    # waits double: 0.5, 1, 2 (each jittered by a factor in [0.5, 1.5))
    assert len(sleeps) == 3
    for attempt, delay in enumerate(sleeps):
        assert 0.5 * 2**attempt * 0.5 <= delay < 0.5 * 2**attempt * 1.5

    model = install("onefault", FaultyLLM(rate=1.0, max_in_a_row=99, kinds=("empty",)))
    with pytest.raises(ParseError, match="no valid JSON after 3 attempts"):
        make_lm(model).complete_json(REWRITE, SCHEMA)


def _optimize(name: str):
    return promptomatix.optimize(raw_input=RAW_INPUT, model="flaky/fake", name=name, synthetic_data_size=40,
                                 iterations=3, candidates=3, num_threads=4, batch_size=2, seed=7,
                                 show_progress=False)


def _trail(result) -> dict:
    """What a user compares between two runs: prompt, scores step by step, every candidate, and
    the registered prompt text."""
    client = MlflowClient()
    table = json.loads(mlflow.artifacts.load_text(f"runs:/{result.run_id}/candidates.json"))
    return {
        "prompt": result.prompt,
        "scores": (result.initial_score, result.optimized_score),
        "best_score": [(m.step, m.value) for m in client.get_metric_history(result.run_id, "best_score")],
        "candidates": sorted(map(tuple, table["data"])),
        "train": mlflow.artifacts.load_text(f"runs:/{result.run_id}/data/train.jsonl"),
        "valid": mlflow.artifacts.load_text(f"runs:/{result.run_id}/data/valid.jsonl"),
        "registered": mlflow.genai.load_prompt(result.prompt_uri).template,
    }


def test_an_optimization_against_a_provider_failing_one_call_in_ten_matches_the_fault_free_run(
        tracking, sleeps, caplog):
    install("flaky", FaultyLLM(rate=0.0))
    clean = _optimize("clean")
    assert clean.usage.retries == clean.usage.parse_failures == 0

    # Structured answers (intake, rewrites) are few: each is failed twice, so that every kind of
    # fault comes up; about one plain answer in ten fails.
    faulty = FaultyLLM(rate=0.1, salt="ci", structured_period=1)
    install("flaky", faulty)
    with caplog.at_level(logging.WARNING, logger="promptomatix.models.lm"):
        flaky = _optimize("flaky")

    # the faults happened, about one call in ten, of every kind
    assert 0.05 <= sum(faulty.injected.values()) / faulty.calls <= 0.15, (faulty.injected, faulty.calls)
    assert set(faulty.injected) == set(EXCEPTION_FAULTS + CONTENT_FAULTS), faulty.injected
    # ... and did not change the outcome
    assert _trail(flaky) == _trail(clean)
    assert clean.optimized_score == 1.0 and clean.initial_score == 0.0
    assert flaky.model_version == "1" and mlflow.genai.load_prompt(flaky.prompt_uri).template == clean.prompt

    # every transient fault cost one retry after a backoff wait, every bad JSON one parse failure
    run = mlflow.get_run(flaky.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.metrics["total_retries"] == flaky.usage.retries == faulty.exception_faults
    assert run.data.metrics["total_parse_failures"] == flaky.usage.parse_failures == faulty.content_faults
    assert mlflow.get_run(clean.run_id).data.metrics["total_retries"] == 0
    assert len(sleeps) == faulty.exception_faults
    assert all(0.5 <= d < 1.5 or 1.0 <= d < 3.0 for d in sleeps)  # backoff 1 s x 2^attempt, jittered
    # ... and logged, one warning each
    messages = [r.getMessage() for r in caplog.records]
    assert sum("retrying in" in m for m in messages) == faulty.exception_faults
    assert sum("unparseable JSON answer" in m for m in messages) == faulty.content_faults


@pytest.mark.parametrize("second_run", [False, True], ids=["first version", "later version"])
def test_a_store_failure_while_registering_leaves_the_registry_as_it_was(tracking, monkeypatch, second_run):
    install("flaky", FaultyLLM(rate=0.0))
    options = dict(raw_input=RAW_INPUT, model="flaky/fake", name="reviews", synthetic_data_size=6, iterations=1,
                   candidates=1, show_progress=False)
    if second_run:
        promptomatix.optimize(**options)
    client = MlflowClient()
    before = ([(v.version, v.run_id) for v in client.search_model_versions("name='reviews'")],
              [p.name for p in mlflow.genai.search_prompts()])

    def store_down(*args, **kwargs):  # the prompt version is written; the model version is not
        raise mlflow.exceptions.MlflowException("503 Service Unavailable: the tracking server is restarting")

    monkeypatch.setattr(mlflow, "register_model", store_down)
    with pytest.raises(mlflow.exceptions.MlflowException, match="restarting"):
        promptomatix.optimize(**options)

    after = ([(v.version, v.run_id) for v in client.search_model_versions("name='reviews'")],
             [p.name for p in mlflow.genai.search_prompts()])
    assert after == before
    if second_run:  # the prompt keeps exactly its first version
        assert mlflow.genai.load_prompt("prompts:/reviews-prompt/1").template
        with pytest.raises(Exception):  # noqa: B017 (MLflow's own error for a missing version: any will do)
            mlflow.genai.load_prompt("prompts:/reviews-prompt/2")
    failed = [r for r in mlflow.search_runs(output_format="list", search_all_experiments=True)
              if r.info.status == "FAILED"]
    assert len(failed) == 1 and "restarting" in failed[0].data.tags["promptomatix.error"]


def test_a_tracking_server_dropping_a_data_set_answer_mid_way_is_asked_again(tracking, monkeypatch):
    """A busy server that closes the connection while answering `log-inputs` (seen with eight
    concurrent optimizations on one server): the data set is logged again, the run finishes."""
    install("flaky", FaultyLLM(rate=0.0))
    real, dropped = mlflow.log_input, []

    def drops_once(dataset, *args, **kwargs):
        if not dropped:
            dropped.append(dataset.name)
            raise mlflow.exceptions.MlflowException(
                "API request to http://127.0.0.1:5000/api/2.0/mlflow/runs/log-inputs failed with exception "
                "('Connection broken: IncompleteRead(0 bytes read, 2 more expected)', IncompleteRead(0 bytes read))")
        return real(dataset, *args, **kwargs)

    monkeypatch.setattr(mlflow, "log_input", drops_once)
    monkeypatch.setattr("promptomatix.tracking.mlflow_tracker.time.sleep", lambda seconds: None)
    result = promptomatix.optimize(raw_input=RAW_INPUT, model="flaky/fake", name="reviews", synthetic_data_size=6,
                                   iterations=1, candidates=1, show_progress=False)

    run = mlflow.get_run(result.run_id)
    assert run.info.status == "FINISHED" and dropped
    assert dropped[0] in {d.dataset.name for d in run.inputs.dataset_inputs}
