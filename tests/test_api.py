"""`promptomatix.optimize` end to end on a real temporary MLflow store, with a scripted LLM."""

from __future__ import annotations

import json

import litellm
import mlflow
import pandas as pd
import pytest
from conftest import FAKE_MODEL, input_request, written_inputs
from mlflow import MlflowClient
from optimize_fixtures import BETTER, INTAKE, synthetic, written

import promptomatix
from promptomatix.errors import DataError, LLMError

def summaries(prompt: str, params: dict) -> str:
    n = params["response_format"]["json_schema"]["schema"]["properties"]["examples"]["minItems"]
    start = synthetic.counter
    synthetic.counter += n
    return json.dumps({"examples": [{"review": f"a long review number {start + i}", "summary": f"review {start + i}"}
                                    for i in range(n)]})


def run_optimize(**options):
    defaults = dict(raw_input="Classify the sentiment of a movie review as positive or negative",
                    model=FAKE_MODEL, synthetic_data_size=8, iterations=2, candidates=2,
                    num_threads=2, show_progress=False)
    return promptomatix.optimize(**(defaults | options))


def test_optimize_tracks_everything_in_one_run_and_registers_both_versions(tracking, scripted):
    result = run_optimize()
    client = MlflowClient()
    run = client.get_run(result.run_id)

    assert run.info.status == "FINISHED"
    assert result.optimized_score == 1.0 and result.initial_score == 0.0
    assert "CAREFULLY" in result.prompt and "{{review}}" in result.prompt
    # config as params under our prefix, raw input as an artifact
    assert run.data.params["promptomatix.backend"] == "meta_prompt"
    assert run.data.params["model/model"] == FAKE_MODEL
    assert run.data.params["promptomatix.synthetic_data_size"] == "8"
    artifacts = {a.path for a in client.list_artifacts(result.run_id)}
    assert {"raw_input.txt", "task_spec.json", "initial_prompt.txt", "optimized_prompt.txt",
            "candidates.json", "data", "prompts"} <= artifacts
    assert mlflow.artifacts.load_text(f"runs:/{result.run_id}/raw_input.txt").startswith("Classify the sentiment")
    # the synthetic sets as JSONL artifacts and as dataset inputs
    train = mlflow.artifacts.load_text(f"runs:/{result.run_id}/data/train.jsonl").splitlines()
    assert len(train) == result.train_size == 4 and json.loads(train[0]).keys() == {"review", "sentiment"}
    inputs = {(d.dataset.name, d.tags[0].value) for d in run.inputs.dataset_inputs}
    assert inputs == {("train", "training"), ("valid", "validation")}
    # per-iteration metrics with steps 0 (the start) .. iterations
    best = client.get_metric_history(result.run_id, "best_score")
    assert [m.step for m in best] == [0, 1, 2] and best[0].value == 0.0 and best[-1].value == 1.0
    assert [m.step for m in client.get_metric_history(result.run_id, "mean_candidate_score")] == [1, 2]
    tokens = [m.value for m in client.get_metric_history(result.run_id, "tokens")]
    assert tokens == sorted(tokens) and tokens[0] > 0
    assert run.data.metrics["total_calls"] == result.usage.calls > 0
    assert run.data.metrics["total_cost"] == pytest.approx(0.001 * result.usage.calls)
    assert run.data.metrics["optimized_score"] == 1.0 and "seconds" in run.data.metrics

    # registered: a Model Registry version and a Prompt Registry version of the same prompt
    assert result.model_version == "1" and result.prompt_version == "1"
    prompt = mlflow.genai.load_prompt(result.prompt_uri)
    assert prompt.template == result.prompt
    version = client.get_model_version(result.model_name, "1")
    assert version.run_id == result.run_id and version.tags["prompt_uri"] == result.prompt_uri
    assert version.tags["validation_score"] == "1.0000"
    model = mlflow.pyfunc.load_model(result.model_uri)
    out = model.predict(pd.DataFrame({"review": ["a good film", "a bad film"]}))
    assert list(out["sentiment"]) == ["positive", "negative"]


def test_a_second_optimization_of_the_same_task_adds_versions(tracking, scripted):
    first = run_optimize()
    second = run_optimize(iterations=1)
    assert second.model_name == first.model_name
    assert (second.model_version, second.prompt_version) == ("2", "2")


def test_result_never_scores_below_the_start_when_rewrites_are_worse(tracking, fake_llm):
    fake_llm.rules = [
        ("Request:", INTAKE),
        ("Improved instruction", {"instruction": "Answer with anything at all, whatever comes to mind."}),
        written_inputs(written, "Sentiment"),
        ("Sentiment:", lambda prompt, params: "positive" if "whatever" not in prompt else "no"),
    ]
    result = run_optimize(num_demos=0)
    assert result.optimized_score == result.initial_score > 0
    assert "whatever" not in result.prompt


def test_user_data_replaces_synthetic_data(tracking, scripted, tmp_path):
    path = tmp_path / "reviews.csv"
    pd.DataFrame({"review": [f"a good film {i}" if i % 2 else f"a bad film {i}" for i in range(10)],
                  "sentiment": ["positive" if i % 2 else "negative" for i in range(10)]}).to_csv(path, index=False)
    result = run_optimize(train_data=str(path), train_ratio=0.6)
    assert (result.train_size, result.valid_size) == (6, 4)
    assert result.spec.labels == ("negative", "positive")
    assert not any("new, varied" in c["prompt"] for c in scripted.calls)
    # the intake model was told to pick field names among the data's columns
    intake_schema = next(c for c in scripted.calls if "Request:" in c["prompt"])["params"]["response_format"]
    assert intake_schema["json_schema"]["schema"]["properties"]["input_fields"]["items"]["enum"] == ["review", "sentiment"]


def test_data_missing_a_field_fails_before_anything_is_registered(tracking, scripted, tmp_path):
    path = tmp_path / "reviews.jsonl"
    path.write_text('{"review": "fine", "sentiment": "positive"}\n{"review": "bad"}\n')
    with pytest.raises(DataError, match="example 2 lacks field 'sentiment'"):
        run_optimize(train_data=str(path))
    assert MlflowClient().search_registered_models() == []


def test_llm_failure_mid_run_marks_the_run_failed_with_the_reason(tracking, scripted):
    scripted.rules.insert(0, ("Improved instruction", litellm.AuthenticationError(
        message="invalid key", llm_provider="scripted", model="fake")))
    with pytest.raises(LLMError, match="authentication failed"):
        run_optimize()
    (run,) = mlflow.search_runs(output_format="list", search_all_experiments=True)
    assert run.info.status == "FAILED"
    assert "authentication failed" in run.data.tags["promptomatix.error"]
    assert MlflowClient().search_registered_models() == []
    assert mlflow.genai.search_prompts() == []


def test_registry_name_taken_by_a_prompt_is_refused_up_front(tracking, scripted):
    mlflow.genai.register_prompt(name="reviews", template="hi {{x}}")
    with pytest.raises(promptomatix.RegistryError, match="already used by a prompt"):
        run_optimize(name="reviews")
    assert mlflow.search_runs(output_format="list", search_all_experiments=True) == []


def test_no_register_leaves_the_registry_alone(tracking, scripted):
    result = run_optimize(register=False, iterations=1)
    assert result.model_version is None and MlflowClient().search_registered_models() == []


def test_a_weighted_metric_mix_scores_the_optimization(tracking, scripted):
    result = run_optimize(metric_weights={"classification": 0.5, "brevity": 0.5}, iterations=1)
    # the best prompt is right on every example and answers in one word: 0.5 * 1 + 0.5 * 1
    assert result.optimized_score == 1.0
    assert mlflow.get_run(result.run_id).data.params["promptomatix.metric_weights"] == "classification=0.5,brevity=0.5"


def test_few_shot_examples_from_the_raw_input_stay_out_of_validation(tracking, scripted):
    raw = ("[TASK] Classify the sentiment of a movie review\n[FEW_SHOT_EXAMPLES]\n"
           "Review: a good film indeed\nSentiment: positive\n\nReview: a bad film indeed\nSentiment: negative\n")
    result = run_optimize(raw_input=raw, iterations=1)
    valid = mlflow.artifacts.load_text(f"runs:/{result.run_id}/data/valid.jsonl")
    train = mlflow.artifacts.load_text(f"runs:/{result.run_id}/data/train.jsonl")
    assert "indeed" not in valid and train.count("indeed") == 2


def test_credentials_in_an_api_base_are_not_logged(tracking, scripted):
    result = run_optimize(api_base="https://user:s3cret@llm.example.test:8443/v1?api-key=s3cret", iterations=1)
    run = mlflow.get_run(result.run_id)
    logged = json.dumps(run.data.params) + mlflow.artifacts.load_text(f"runs:/{result.run_id}/config.yaml")
    assert "s3cret" not in logged and "https://llm.example.test:8443/v1" in logged


def test_a_mistyped_embedded_model_is_bad_input_before_any_run(tracking):
    with pytest.raises(promptomatix.ConfigError, match="Unknown embedded model 'gemma-3-27m'"):
        promptomatix.optimize(raw_input="Classify reviews", model="embedded/gemma-3-27m")
    assert mlflow.search_runs(output_format="list", search_all_experiments=True) == []


def test_an_experiment_option_files_the_run_there_without_changing_the_callers_experiment(tracking, scripted):
    before = mlflow.get_experiment_by_name("Default").experiment_id
    result = run_optimize(experiment="reviews", iterations=1)
    assert mlflow.get_experiment(result.experiment_id).name == "reviews"
    with mlflow.start_run() as later:  # the caller's own next run lands where it did before
        assert later.info.experiment_id == before


def test_optimizer_max_tokens_caps_every_optimizer_call_and_label_answers_are_short(tracking, scripted):
    result = run_optimize(optimizer_max_tokens=300, max_tokens=20)

    def kind(call):
        if input_request(call["prompt"], "Sentiment"):
            return "input"
        return next((k for k in ("Request:", "Improved instruction", "Sentiment:") if k in call["prompt"]), None)

    by_kind = {}
    for call in scripted.calls:
        by_kind.setdefault(kind(call), []).append(call["params"])
    assert {"Request:", "input", "Improved instruction", "Sentiment:"} <= by_kind.keys()
    for name in ("Request:", "input", "Improved instruction"):
        assert all(p["max_tokens"] <= 300 for p in by_kind[name]), name
    # a label answer asks for the few tokens a label needs, under the task model's cap
    assert {p["max_tokens"] for p in by_kind["Sentiment:"]} == {8}
    assert result.train_size + result.valid_size == 8


def test_synthetic_json_batches_shrink_to_fit_the_optimizer_cap(tracking, fake_llm):
    fake_llm.rules = [("Request:", {"description": "Summarize a review in a few words.", "task_type": "summarization",
                                    "input_fields": ["review"], "output_fields": ["summary"], "labels": []}),
                      ("new, varied and realistic examples", summaries), ("Improved instruction", {"instruction": BETTER})]
    result = run_optimize(raw_input="Summarize a movie review in a few words", optimizer_max_tokens=300)
    batches = [c["params"] for c in fake_llm.calls if "new, varied" in c["prompt"]]
    # two fields at up to ~92 tokens each: one example a batch fits in 300 tokens
    assert {p["response_format"]["json_schema"]["schema"]["properties"]["examples"]["minItems"]
            for p in batches} == {1}
    assert all(p["max_tokens"] <= 300 for p in batches) and len(batches) >= 8
    assert result.train_size + result.valid_size == 8


@pytest.fixture
def reviews(tmp_path):
    path = tmp_path / "reviews.jsonl"
    path.write_text("".join(json.dumps({"review": f"a {'good' if i % 2 else 'bad'} film {i}",
                                        "sentiment": "positive" if i % 2 else "negative"}) + "\n" for i in range(16)))
    return str(path)


def test_a_call_budget_shapes_the_search_and_one_too_small_for_it_stops_it(tracking, scripted, reviews):
    unlimited = run_optimize(register=False, iterations=3, candidates=4, train_data=reviews)
    assert mlflow.get_run(unlimited.run_id).data.tags["promptomatix.stopped_by"] == "search_complete"
    # the calls left after intake and the start's 8 validation examples pay for no race
    scripted.calls.clear()
    limited = run_optimize(iterations=3, candidates=4, train_data=reviews, max_calls=1 + 8 + 2)

    run = mlflow.get_run(limited.run_id)
    assert run.info.status == "FINISHED" and limited.model_version == "1"
    assert run.data.tags["promptomatix.stopped_by"] == "max_calls"
    assert run.data.params["promptomatix.max_calls"] == "11"
    assert run.data.metrics["total_calls"] == len(scripted.calls) <= 11
    assert limited.prompt == limited.initial_prompt  # the best so far: the start


def test_a_cost_budget_stops_the_search_mid_iteration_and_keeps_the_best_so_far(tracking, scripted, reviews):
    # each scripted call costs $0.001: intake, the start's 8 examples and 6 more calls
    result = run_optimize(iterations=3, candidates=4, train_data=reviews, max_cost=0.015)
    run = mlflow.get_run(result.run_id)
    assert run.info.status == "FINISHED" and result.model_version == "1"
    assert run.data.tags["promptomatix.stopped_by"] == "max_cost"
    assert run.data.metrics["total_cost"] <= 0.015 + 2 * 0.001 + 1e-9  # checked before a call: 2 in flight
    assert result.optimized_score >= result.initial_score


def test_a_budget_too_small_for_the_data_fails_naming_the_limit_and_registers_nothing(tracking, scripted):
    with pytest.raises(promptomatix.BudgetExhausted,
                       match="budget of 5 model calls is spent before the synthetic data was written"):
        run_optimize(max_calls=5)
    (run,) = mlflow.search_runs(output_format="list", search_all_experiments=True)
    assert run.info.status == "FAILED" and "budget of 5 model calls" in run.data.tags["promptomatix.error"]
    assert MlflowClient().search_registered_models() == []
    assert len(scripted.calls) == 5


def test_a_plan_counts_the_calls_and_makes_none(tracking, scripted, tmp_path):
    plan = promptomatix.plan(raw_input="Classify the sentiment of a movie review", model=FAKE_MODEL)
    text = str(plan)
    assert "writing 30 synthetic inputs" in text and "budget: 250 calls" in text
    assert plan.total == sum(calls for _, calls in plan.steps) > 0
    path = tmp_path / "reviews.jsonl"
    path.write_text("".join(json.dumps({"review": f"film {i}", "sentiment": "positive" if i % 2 else "negative"}) + "\n"
                            for i in range(40)))
    # (no held-out check: tests/test_check.py)
    with_data = promptomatix.plan(raw_input="Classify", model=FAKE_MODEL, train_data=str(path), max_calls=100,
                                  output_fields=["sentiment"], check_rows=0)
    # 20 validation rows of the 50/50 split, and 4 training rows held out to bring it towards 25
    # (16 kept, two demo sets' worth)
    assert "scoring the starting prompt on 24 examples" in str(with_data) and "budget: 100 calls" in str(with_data)
    # with calls to spare, the winner's calibration is read again on the 16 training rows left
    roomy = promptomatix.plan(raw_input="Classify", model=FAKE_MODEL, train_data=str(path), max_calls=1000,
                              output_fields=["sentiment"], check_rows=0)
    assert ("calibrating the winner on the training examples not among its demos", 16) in roomy.steps
    assert scripted.calls == []


def test_a_validation_set_too_small_to_choose_by_is_topped_up_from_training(tracking, scripted, tmp_path):
    rows = [{"review": f"a {'good' if i % 2 else 'bad'} film {i}", "sentiment": "positive" if i % 2 else "negative"}
            for i in range(44)]
    train, valid = tmp_path / "train.jsonl", tmp_path / "valid.jsonl"
    train.write_text("".join(json.dumps(r) + "\n" for r in rows[:40]))
    valid.write_text("".join(json.dumps(r) + "\n" for r in rows[40:]))
    options = dict(train_data=str(train), valid_data=str(valid), iterations=1, check_rows=0)  # no held-out check
    planned = promptomatix.plan(**{**dict(raw_input="Classify", model=FAKE_MODEL, output_fields=["sentiment"]),
                                   **options})
    assert "scoring the starting prompt on 25 examples" in str(planned)
    result = run_optimize(**options)
    assert (result.train_size, result.valid_size) == (19, 25)
    logged = [json.loads(line) for line in
              mlflow.artifacts.load_text(f"runs:/{result.run_id}/data/valid.jsonl").splitlines()]
    assert logged[:4] == rows[40:]  # the given rows first: a search narrowed by its budget scores them
    held = logged[4:]
    # the rows held out bring the labels level, and the labels take turns: the first rows a
    # race scores are never all of one label
    labels = [r["sentiment"] for r in logged]
    assert abs(labels.count("positive") - labels.count("negative")) <= 1
    assert all(a != b for a, b in zip(labels[:24], labels[1:24]))
    train_logged = [json.loads(line) for line in
                    mlflow.artifacts.load_text(f"runs:/{result.run_id}/data/train.jsonl").splitlines()]
    assert len(train_logged) == 19 and all(r in rows[:40] and r not in train_logged for r in held)
    assert mlflow.get_run(result.run_id).data.params["valid_from_train"] == "21"
    # a budget that pays for a search on fewer rows holds out fewer
    small = run_optimize(**options, max_calls=40)
    assert 4 < small.valid_size < 25


def test_the_starting_score_is_the_one_the_backend_returns(tracking, scripted):
    """The run reports the starting score from the backend's `Outcome`, not from what it
    observed at step 0; a backend returning anything else fails with a PluginError."""
    from promptomatix.backends.base import Backend, Outcome
    from promptomatix.errors import PluginError

    class Reports(Backend):
        def __init__(self, returns):
            self.returns = returns

        def optimize(self, task, callbacks):
            start = task.score(task.start)
            callbacks.on_candidate(0, start)
            callbacks.on_iteration_end(0, start, [])
            return self.returns(start)

    result = run_optimize(backend=Reports(lambda start: Outcome(start, 0.125)), num_demos=0)
    assert result.initial_score == 0.125
    assert mlflow.get_run(result.run_id).data.metrics["initial_score"] == 0.125
    assert MlflowClient().get_model_version(result.model_name, result.model_version).tags["initial_score"] == "0.1250"

    with pytest.raises(PluginError, match="returns an Outcome"):
        run_optimize(backend=Reports(lambda start: start), num_demos=0, register=False)


def test_each_backend_plans_its_own_search_and_a_plugin_without_a_plan_is_unknown(tracking, scripted, monkeypatch):
    """`--dry-run`'s search lines come from the backend (`Backend.plan`): the meta-prompt
    backend's race, DSPy's compile cut by the budget, and for a plugin that says nothing, an
    unknown count, not another backend's guess. Nothing is called."""
    from promptomatix.backends import BACKENDS
    from promptomatix.backends.base import Backend

    class Silent(Backend):
        def optimize(self, task, callbacks):  # pragma: no cover - never run by a plan
            raise AssertionError("a plan runs nothing")

    BACKENDS.names()  # the built-ins loaded, then the plugin for this test only (other tests list the backends)
    monkeypatch.setitem(BACKENDS._items, "silent-plan-test", Silent)
    options = dict(raw_input="Classify the sentiment of a movie review", model=FAKE_MODEL, max_calls=200)
    meta = promptomatix.plan(**options)
    dspy = promptomatix.plan(**options, backend="dspy")
    silent = promptomatix.plan(**options, backend="silent-plan-test")
    assert any(what.startswith("search: 2 iterations") for what, _ in meta.steps) and meta.known
    (search,) = [(what, calls) for what, calls in dspy.steps if what.startswith("search:")]
    assert search == ("search: DSPy's MIPROv2 (stopped by the budget)", 200 - sum(c for w, c in dspy.steps if w != search[0]))
    assert ("search: Silent (calls unknown; the budget bounds them)", None) in silent.steps and not silent.known
    assert "?" in str(silent) and "total of the known" in str(silent)
    assert scripted.calls == []
