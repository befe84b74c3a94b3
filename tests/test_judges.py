"""MLflow's scorers and judges as metrics (`--metric mlflow:Correctness=1`, promptomatix/scoring/judges.py):
the real MLflow judge code path, its judge model the scripted LiteLLM provider (MLflow calls
providers it does not know natively through LiteLLM, so `scripted/fake` reaches the fake)."""

from __future__ import annotations

import json

import mlflow
import promptomatix
import pytest
from conftest import FAKE_MODEL
from mlflow import MlflowClient

from promptomatix.errors import ConfigError, LLMError
from promptomatix.scoring.judges import judge_uri, scorer_names, ScorerMetric
from promptomatix.scoring import (METRICS, PER_EXAMPLE, Metric, build_metric, check_metric_spec, metric_from_weights,
                                  metric_shape)

HONEST = "Summarize the text CAREFULLY in a few words."


def verdict(result: str):
    return json.dumps({"rationale": "Let's think step by step: checked.", "result": result})


def judge_says_cat(prompt: str, params: dict) -> str:
    """The judge: the answer "a cat sat" is correct, any other is not (MLflow's Correctness prompt
    asks whether the reference, the claim, is supported by the question and the answer, the document)."""
    return verdict("yes" if "- a cat sat</document>" in prompt else "no")


def _summaries(tmp_path, rows: int = 12) -> str:
    path = tmp_path / "texts.jsonl"
    with path.open("w") as f:
        for i in range(rows):
            f.write(json.dumps({"text": f"story {i}: a cat sat on a mat in the sun all day long",
                                "summary": f"cat {i} sat on a mat"}) + "\n")
    return str(path)


def _optimize(fake_llm, tmp_path, judge, **options):
    def task(prompt: str, params: dict) -> str:
        return "a cat sat" if HONEST in prompt else "a dog ran"

    fake_llm.rules = [
        ("<claim>", judge),  # MLflow's Correctness prompt
        ("Request:", {"description": "Summarize a short story.", "task_type": "summarization",
                      "input_fields": ["text"], "output_fields": ["summary"], "labels": []}),
        ("Improved instruction", {"instruction": HONEST}),
        ("Summary:", task),
    ]
    return promptomatix.optimize(**{**dict(
        raw_input="Summarize a short story", model=FAKE_MODEL, train_data=_summaries(tmp_path),
        task_type="summarization", input_fields="text", output_fields="summary", iterations=1, candidates=1,
        num_threads=1, show_progress=False, register=False, metric_weights={"mlflow:Correctness": 1.0}), **options})


def test_a_run_scored_by_mlflows_correctness_judge(tracking, fake_llm, tmp_path):
    result = _optimize(fake_llm, tmp_path, judge_says_cat)

    assert HONEST in result.prompt
    assert (result.initial_score, result.optimized_score) == (0.0, 1.0)  # the judge's verdicts, not ROUGE
    judged = [c["prompt"] for c in fake_llm.calls if "<claim>" in c["prompt"]]
    assert judged and any("cat 3 sat on a mat" in p for p in judged)  # the reference reached the judge
    assert any("story 3: a cat sat" in p for p in judged)  # and the input
    # one verdict per distinct (example, answer): a repeated answer is not judged again
    assert len(judged) == len(set(judged))
    run = MlflowClient().get_run(result.run_id)
    assert run.info.status == "FINISHED"


def test_the_judge_model_is_its_own_option(tracking, fake_llm, tmp_path, monkeypatch):
    models = []
    answer = fake_llm.completion

    def completion(model, messages, *args, **kwargs):
        models.append((model, "<claim>" in str(messages)))
        return answer(model, messages, *args, **kwargs)

    monkeypatch.setattr(fake_llm, "completion", completion)
    result = _optimize(fake_llm, tmp_path, judge_says_cat, judge_model="scripted/judge")
    assert result.optimized_score == 1.0
    assert {model for model, judging in models if judging} == {"judge"}  # scripted/judge, for the judge only
    assert {model for model, judging in models if not judging} == {"fake"}
    assert MlflowClient().get_run(result.run_id).data.params["promptomatix.judge_model"] == "scripted/judge"


def test_a_failing_judge_fails_the_run_never_a_zero(tracking, fake_llm, tmp_path):
    with pytest.raises(LLMError, match=r"judge mlflow:Correctness \(model scripted:/fake\) failed: .*parse"):
        _optimize(fake_llm, tmp_path, "I think it is fine")  # not the JSON verdict MLflow asks for
    runs = mlflow.search_runs(search_all_experiments=True, output_format="list")
    assert [r.info.status for r in runs] == ["FAILED"]


def test_an_unknown_scorer_is_one_config_error_naming_the_known_ones(tracking, fake_llm, tmp_path):
    with pytest.raises(ConfigError, match=r"^unknown scorer mlflow:Correctnes; choose one of: .*mlflow:Correctness"):
        check_metric_spec("mlflow:Correctnes")
    with pytest.raises(ConfigError, match="metric 'mlflow' without a scorer"):
        check_metric_spec("mlflow")
    with pytest.raises(ConfigError, match="unknown scorer mlflow:Nope"):
        _optimize(fake_llm, tmp_path, judge_says_cat, metric_weights={"mlflow:Nope": 1.0})
    check_metric_spec("mlflow:Safety")
    check_metric_spec("rouge_l")


def test_the_scorers_by_name_are_those_of_one_answer():
    names = scorer_names()
    assert {"Correctness", "RelevanceToQuery", "Safety", "Completeness", "Equivalence"} <= set(names)
    # a trace's, a conversation's, or one needing more than a model is not nameable
    assert not {"RetrievalGroundedness", "ToolCallCorrectness", "UserFrustration", "Guidelines"} & set(names)


def test_judge_model_names_from_litellm_to_mlflow():
    assert judge_uri("openai/gpt-4o-mini") == "openai:/gpt-4o-mini"
    assert judge_uri("gpt-4o-mini") == "openai:/gpt-4o-mini"
    assert judge_uri("ollama/llama3:8b") == "ollama:/llama3:8b"
    assert judge_uri("anthropic:/claude-sonnet-4") == "anthropic:/claude-sonnet-4"
    with pytest.raises(ConfigError, match="name it provider/model"):
        judge_uri("no-such-model")


def test_the_metric_records_and_rebuilds_as_mlflow_colon_scorer(fake_llm):
    fake_llm.rules = [(lambda p: True, judge_says_cat)]
    metric = build_metric("rouge_l", "rouge_l", {"mlflow:Correctness": 1.0}, judge_model=FAKE_MODEL)
    assert metric.weights == {"mlflow:Correctness": 1.0}
    again = metric_from_weights(metric.weights, judge_model=FAKE_MODEL)
    scores = again.score_records([{"summary": "a cat sat"}, {"summary": "a dog"}],
                                 [{"text": "t", "summary": "s"}, {"text": "t", "summary": "s"}], ["summary"])
    assert scores.per_example == [1.0, 0.0]


def test_a_scorer_gets_only_what_it_takes_and_an_unclear_verdict_is_an_error(fake_llm):
    safety = Metric("mlflow", "Safety", {"judge_model": FAKE_MODEL})  # Safety reads the output only
    fake_llm.rules = [(lambda p: True, verdict("yes"))]
    assert safety.score_records([{"a": "fine"}], [{"q": "x", "a": "y"}], ["a"]).score == 1.0
    assert "fine" in fake_llm.calls[-1]["prompt"] and "<claim>" not in fake_llm.calls[-1]["prompt"]
    fake_llm.rules = [(lambda p: True, verdict("maybe"))]
    with pytest.raises(LLMError, match="judge mlflow:Safety .* gave 'unknown', not yes/no"):
        Metric("mlflow", "Safety", {"judge_model": FAKE_MODEL}).score_records([{"a": "x"}], [{"a": "y"}], ["a"])


def test_a_registered_make_judge_judge_is_a_metric(fake_llm, monkeypatch):
    from mlflow.genai.judges import make_judge
    from mlflow.genai.scorers import Guidelines

    polite = make_judge(name="polite", instructions="Is {{ outputs }} a polite answer to {{ inputs }}?",
                        model=judge_uri(FAKE_MODEL), feedback_value_type=bool)
    assert metric_shape("polite", polite) == PER_EXAMPLE  # what register_metric checks
    monkeypatch.setitem(METRICS._items, "polite", polite)
    monkeypatch.setitem(METRICS._items, "kind", Guidelines(guidelines=["The answer is kind."]))
    fake_llm.rules = [("please", json.dumps({"rationale": "polite", "result": True})),
                      (lambda p: True, json.dumps({"rationale": "rude", "result": False}))]
    metric = build_metric("rouge_l", "rouge_l", {"polite": 1.0})
    scores = metric.score_records([{"reply": "yes please"}, {"reply": "go away"}],
                                  [{"ask": "help?", "reply": "r"}, {"ask": "help?", "reply": "r"}], ["reply"])
    assert scores.per_example == [1.0, 0.0]
    fake_llm.rules = [(lambda p: True, verdict("yes"))]
    kind = Metric("kind", "kind", {"judge_model": FAKE_MODEL})  # a built-in naming no model gets the run's
    assert isinstance(kind._compute, ScorerMetric) and kind._compute.model == "scripted:/fake"
    assert kind.score_records([{"reply": "hi"}], [{"ask": "a", "reply": "b"}], ["reply"]).score == 1.0


def test_evaluate_judges_a_version_with_the_judge_its_optimization_had(tracking, fake_llm, tmp_path, monkeypatch):
    """`promptomatix evaluate` of a version scored by an MLflow judge asks the same judge model
    as its optimization did (`--judge-model`), not MLflow's default judge."""
    from promptomatix.lifecycle import evaluate

    models = []
    answer = fake_llm.completion

    def completion(model, messages, *args, **kwargs):
        models.append((model, "<claim>" in str(messages)))
        return answer(model, messages, *args, **kwargs)

    monkeypatch.setattr(fake_llm, "completion", completion)
    result = _optimize(fake_llm, tmp_path, judge_says_cat, judge_model="scripted/judge", register=True,
                       name="stories")
    models.clear()
    report = evaluate(f"stories@{result.model_version}", _summaries(tmp_path), show_progress=False)
    assert report.score == 1.0
    assert {model for model, judging in models if judging} == {"judge"}
