"""`promptomatix critique NAME@REF` and `promptomatix.critique`: run a version on
examples, ask the (scripted) critic model for JSON critiques, store them as machine-made
feedback, and log the whole exchange as an MLflow run linked to the version."""

from __future__ import annotations

import json

import litellm
import mlflow
import pytest
from conftest import fill_schema, one_error_line
from mlflow import MlflowClient
from feedback_fixtures import SCRIPT, invoke, prompt_of, rows, store_state, tag_rows, write_jsonl

from promptomatix.errors import ConfigError, DataError, LLMError, RegistryError
from promptomatix.lifecycle.critiques import critique
from promptomatix.lifecycle.feedback import feedback_summary, list_feedback

CRITIC_CUE = "Critiques as JSON"  # the last line of the critic's question
ANSWER = {"critiques": [
    {"span": "QUALITY=2", "comment": "An internal marker the model cannot use: remove it.", "type": "content",
     "priority": "critical"},
    {"span": "Say positive or negative", "comment": "Name the labels the model should answer with.",
     "type": "Format", "priority": "HIGH"},  # not in the prompt: a comment on the whole prompt
    {"span": " 'Sentiment:' ", "comment": "Ask for a single lower-case word after this cue.", "type": "tone",
     "priority": "urgent"},  # quoted; an off-list type and priority (a model ignoring the schema)
]}


def critics(fake_llm, answer) -> None:
    """The critic answers first (its question quotes the prompt, which the task rule matches)."""
    fake_llm.rules = [(CRITIC_CUE, answer), *SCRIPT]


def critic_calls(fake_llm) -> list[dict]:
    return [c for c in fake_llm.calls if CRITIC_CUE in c["prompt"]]


def critique_runs() -> list:
    return [r for r in mlflow.search_runs(output_format="list", search_all_experiments=True)
            if "promptomatix.critiqued_model" in r.data.tags]


def test_critique_stores_machine_feedback_and_logs_a_run_linked_to_the_version(reviews, fake_llm):
    critics(fake_llm, ANSWER)
    before = {r.info.run_id for r in critique_runs()}
    items = critique("reviews@1")  # the validation examples the version's run logged
    prompt = prompt_of(1)

    # three machine-made comments: a found span, the whole prompt, a quoted span found once stripped
    assert [(i.start, i.end, i.text) for i in items] == [
        (prompt.index("QUALITY=2"), prompt.index("QUALITY=2") + 9, "QUALITY=2"), (0, len(prompt), prompt),
        (prompt.index("Sentiment:"), len(prompt), "Sentiment:")]
    assert [(i.type, i.priority) for i in items] == [("content", "critical"), ("format", "high"), ("general", "medium")]
    assert all(i.machine and i.author == "critique:scripted/fake" and not i.resolved for i in items)
    assert items[0].comment == "An internal marker the model cannot use: remove it."
    assert list_feedback("reviews@1", machine=True) == items  # stored: read back from the version
    assert set(tag_rows(reviews["db"])) == {i.id for i in items}
    assert feedback_summary("reviews")["by_origin"] == {"human": 0, "machine": 3}
    version = MlflowClient().get_model_version("reviews", "1")
    artifact = json.loads(mlflow.artifacts.load_text(f"runs:/{version.run_id}/feedback/{items[1].id}.json"))
    assert artifact == items[1].to_dict()

    # the critic saw the prompt and how it did on each of the 4 validation examples, and was
    # held to a schema with enums and a minimum number of critiques
    (call,) = critic_calls(fake_llm)
    assert prompt in call["prompt"]
    assert "- review: a good film 0 | expected: positive | got: positive (right)" in call["prompt"]
    assert "- review: a good film 2 | expected: positive | got: negative (wrong)" in call["prompt"]
    schema = call["params"]["response_format"]["json_schema"]["schema"]
    critique_items = schema["properties"]["critiques"]
    assert critique_items["minItems"] == 1 and critique_items["items"]["properties"]["type"]["enum"] == [
        "general", "format", "content", "style"]
    assert critique_items["items"]["properties"]["priority"]["enum"] == ["low", "medium", "high", "critical"]

    # one new run, next to the optimization run, linked both ways, holding the whole exchange
    (run,) = [r for r in critique_runs() if r.info.run_id not in before]
    client = MlflowClient()
    assert run.info.status == "FINISHED"
    assert run.info.experiment_id == client.get_run(version.run_id).info.experiment_id
    assert run.data.tags["promptomatix.critiqued_model"] == "models:/reviews/1"
    assert run.data.tags["promptomatix.critic_model"] == "scripted/fake"
    assert version.tags["critique_run_id"] == run.info.run_id
    assert run.data.metrics["critiques"] == 3 and run.data.metrics["critique_example_score"] == 0.5
    base = f"runs:/{run.info.run_id}/critique"
    examples = mlflow.artifacts.load_text(f"{base}/examples.jsonl").splitlines()
    assert [json.loads(line) for line in examples] == rows(0)
    predictions = json.loads(mlflow.artifacts.load_text(f"{base}/predictions.json"))
    assert [(p["review"], p["predicted_sentiment"], p["score"]) for p in predictions] == [
        ("a good film 0", "positive", 1.0), ("a bad film 1", "negative", 1.0),
        ("a good film 2", "negative", 0.0), ("a bad film 3", "positive", 0.0)]
    assert json.loads(mlflow.artifacts.load_text(f"{base}/answer.json")) == ANSWER
    assert mlflow.artifacts.load_text(f"{base}/question.txt") == call["prompt"]
    logged = json.loads(mlflow.artifacts.load_text(f"{base}/feedback.json"))
    assert [entry["id"] for entry in logged] == [i.id for i in items]


def test_cli_critique_with_a_data_file_another_critic_and_fewer_examples(reviews, fake_llm, tmp_path):
    critics(fake_llm, {"critiques": [{"span": "QUALITY=4", "comment": "Remove the marker, it confuses.",
                                      "type": "content", "priority": "high"}]})
    data = write_jsonl(tmp_path / "more.jsonl", rows(10, count=6))
    result = invoke("critique", "reviews@champion", "--data", data, "--model", "scripted/critic",
                    "--max-examples", "2")
    assert result.exit_code == 0, result.output
    (item,) = list_feedback("reviews@2")
    at = prompt_of(2).index("QUALITY=4")
    assert result.stdout.splitlines() == [
        f"{item.id}  [{at}:{at + 9}] content/high: Remove the marker, it confuses.",
        "stored 1 critiques on models:/reviews/2 (author critique:scripted/critic)"]
    (call,) = critic_calls(fake_llm)
    assert "a good film 10 " in call["prompt"] and "a bad film 11 " in call["prompt"]
    assert "film 12" not in call["prompt"]  # --max-examples 2
    run = MlflowClient().get_run(MlflowClient().get_model_version("reviews", "2").tags["critique_run_id"])
    assert run.data.params["promptomatix.critique.size"] == "2"
    assert run.data.params["promptomatix.critique.data"] == data


def test_a_critic_left_to_the_schema_alone_still_gives_stored_comments(reviews, fake_llm):
    # the critic's answer is whatever fits the schema (spans that are not in the prompt)
    critics(fake_llm, lambda prompt, params: fill_schema(params["response_format"]["json_schema"]["schema"], 3))
    items = critique("reviews@1", max_examples=1)
    assert items and all((i.start, i.end) == (0, len(prompt_of(1))) for i in items)
    assert all(i.type in {"general", "format", "content", "style"} and len(i.comment) >= 15 for i in items)
    assert [i.id for i in list_feedback("reviews", machine=True)] == [i.id for i in items]


@pytest.mark.parametrize("failure", [
    litellm.AuthenticationError(message="invalid key", llm_provider="scripted", model="fake"),
    "I think the prompt is fine.",  # not JSON, three times over
    {"critiques": [{"span": "x", "comment": "", "type": "style", "priority": "low"}]},  # nothing usable
])
def test_a_failing_critic_fails_the_run_and_stores_nothing(reviews, fake_llm, failure):
    critics(fake_llm, failure)
    before = MlflowClient().get_model_version("reviews", "1").tags
    with pytest.raises(LLMError):
        critique("reviews@1", max_examples=2)
    assert MlflowClient().get_model_version("reviews", "1").tags == before  # no feedback, no link
    assert list_feedback("reviews") == []
    (run,) = [r for r in critique_runs() if r.info.status != "FINISHED"]
    assert run.info.status == "FAILED" and run.data.tags["promptomatix.error"]
    MlflowClient().delete_run(run.info.run_id)  # (so the next case finds only its own)


def test_bad_input_is_refused_before_any_run(reviews, fake_llm, tmp_path):
    critics(fake_llm, ANSWER)
    before = store_state()
    missing_field = tmp_path / "bad.jsonl"
    missing_field.write_text('{"review": "a good film"}\n')
    one_error_line(invoke("critique", "reviews@9"), "model 'reviews' has no version 9")
    one_error_line(invoke("critique", "reviews@1", "--data", str(missing_field)), "example 1 lacks field 'sentiment'")
    one_error_line(invoke("critique", "reviews@1", "--data", str(tmp_path / "none.jsonl")), "none.jsonl: no such file")
    one_error_line(invoke("critique", "reviews@1", "--model", "nosuchprovider/x"), "unknown model provider")
    with pytest.raises(ConfigError, match="max examples must be at least 1"):
        critique("reviews@1", max_examples=0)
    with pytest.raises(RegistryError, match="no registered model named 'nobody'"):
        critique("nobody@1")
    with pytest.raises(DataError, match="no examples in the data"):
        critique("reviews@1", [])
    assert store_state() == before
    assert critic_calls(fake_llm) == []


def test_a_failure_quoting_a_key_leaves_it_redacted_on_the_run(reviews, fake_llm, monkeypatch):
    # Not every failure comes through the model layer (which redacts its own errors): the run's
    # error tag is redacted where it is written.
    secret = "sk-critique-" + "k" * 24
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    critics(fake_llm, ANSWER)

    def leak(*args, **kwargs):
        raise RuntimeError(f"provider said: invalid key {secret}")

    monkeypatch.setattr("promptomatix.lifecycle.critiques.build_question", leak)
    with pytest.raises(RuntimeError):
        critique("reviews@1", max_examples=2)
    (run,) = [r for r in critique_runs() if r.info.status != "FINISHED"]
    assert run.data.tags["promptomatix.error"] == "RuntimeError: provider said: invalid key ***"
