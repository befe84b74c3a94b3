"""The benchmarks at a tiny size: the quality one with the scripted fake LLM, the throughput one
against its stub endpoint. They check what a reader of the tables relies on: every method has a
row, no method used more LLM calls than the budget, and the throughput numbers add up."""

from __future__ import annotations

import json

import litellm
import pytest
from conftest import FAKE_MODEL

from benchmarks import quality, throughput
from benchmarks.common import CallCounter, accuracy, is_correct
from benchmarks.stub import StubServer


def label_of(prompt: str) -> str:
    """The right label for the last query in a prompt (plain `Text:` format or DSPy's chat one)."""
    tail = min(prompt.rsplit("Text:", 1)[-1], prompt.rsplit("[[ ## text ## ]]", 1)[-1], key=len)
    return "positive" if "good" in tail.strip().split("\n", 1)[0] else "negative"


@pytest.fixture
def scripted_task(fake_llm):
    fake_llm.rules = [
        ("[[ ## label ## ]]", lambda p, _: f"[[ ## label ## ]]\n{label_of(p)}\n\n[[ ## completed ## ]]"),
        ("Label:", lambda p, _: label_of(p)),
    ]
    return fake_llm


@pytest.fixture
def data_dir(tmp_path):
    words = ("good", "dull", "good and bright", "slow")
    rows = [{"review": f"film {i} was {words[i % 4]}", "stars": "positive" if "good" in words[i % 4] else "negative"}
            for i in range(40)]
    folder = tmp_path / "tiny"
    folder.mkdir()
    (folder / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:30]))
    (folder / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[30:]))
    return folder


def test_scorer_reads_the_first_word_ignoring_case_and_punctuation():
    assert is_correct("  Positive. The review is", "positive")
    assert not is_correct("The answer: positive", "positive")
    assert accuracy(["World", "sports!", ""], ["World", "Sports", "Tech"]) == pytest.approx(2 / 3)


def test_call_counter_refuses_calls_past_the_budget(fake_llm):
    from benchmarks.common import provider_handler

    fake_llm.rules = [("", "positive")]
    with CallCounter(provider_handler("scripted")) as counter:
        budget = counter.start(3)
        answers = [litellm.completion(model=FAKE_MODEL, messages=[{"role": "user", "content": f"q{i}"}])
                   .choices[0].message.content for i in range(5)]
    assert answers == ["positive"] * 3 + ["", ""]
    assert (budget.calls, budget.refused) == (3, 2)
    assert len(fake_llm.calls) == 3  # refused calls never reach the model


def test_quality_table_has_every_method_and_each_keeps_to_the_budget(tracking, scripted_task, data_dir, capsys):
    import mlflow

    args = quality.parse_args(["--data", str(data_dir), "--text-field", "review", "--label-field", "stars",
                               "--budget", "15", "--valid-size", "4", "--train-size", "8", "--test-limit", "6",
                               "--model", FAKE_MODEL])
    outcomes = quality.run(args)["tiny"]
    table = capsys.readouterr().out

    assert [o.method for o in outcomes] == list(quality.METHODS)
    for method in quality.METHODS:
        assert f"| {method} |" in table
    assert all(o.calls <= 15 for o in outcomes)
    # plain DSPy's MIPROv2 asks for more than 15 calls: it was stopped there, not let through
    assert by_method_calls(outcomes)["dspy-mipro-light"] == (15, True)
    assert outcomes[0].calls == 0  # the zero-shot prompt is not optimized
    by_method = {o.method: o for o in outcomes}
    # the scripted task model answers correctly when asked in the task's format
    assert by_method["ours-metaprompt"].accuracy == 1.0
    assert by_method["ours-dspy-bootstrap"].accuracy == 1.0
    runs = mlflow.search_runs(experiment_names=["benchmarks"], output_format="list")
    assert sorted(r.data.tags["method"] for r in runs) == sorted(quality.METHODS)
    assert all(r.data.metrics["llm_calls"] <= 15 for r in runs)


def by_method_calls(outcomes):
    return {o.method: (o.calls, o.refused > 0) for o in outcomes}


def test_quality_says_which_data_is_missing(tmp_path):
    with pytest.raises(quality.BenchmarkError, match="train.jsonl and test.jsonl"):
        quality.resolve_data(str(tmp_path / "nowhere"))


def test_throughput_reports_wall_time_against_the_limit(tracking, capsys):
    latency = 0.02
    args = throughput.parse_args(["--latency", str(latency), "--concurrency", "1,4", "--iterations", "1",
                                  "--candidates", "2", "--train-size", "6", "--valid-size", "8", "--no-register"])
    rows = throughput.run(args)
    table = capsys.readouterr().out

    assert [r["concurrency"] for r in rows] == [1, 4]
    # the same job at any concurrency: the same calls
    assert rows[0]["calls"] == rows[1]["calls"]
    for row in rows:
        # intake and the start on the validation set, then racing: candidates meet a minibatch
        # first, so two of them never cost a rewrite each plus the whole validation set
        assert 1 + 8 < row["calls"] < 1 + 8 + 2 * (1 + 8)
        # an identical re-run never costs more; with promptomatix's answer cache it costs less
        assert 0 <= row["rerun_calls"] <= row["calls"]
        assert row["limit"] == pytest.approx(row["calls"] * latency / row["concurrency"], abs=0.01)
        assert row["wall"] >= row["limit"] * 0.9  # nothing beats the latency bound
    assert "| as is | 4 |" in table


def test_stub_answers_schemas_and_labels():
    with StubServer(latency=0.0) as stub:
        schema = {"type": "object", "properties": {"instruction": {"type": "string", "minLength": 30}},
                  "required": ["instruction"]}
        structured = litellm.completion(model="openai/stub", api_base=stub.url, api_key="stub",
                                        messages=[{"role": "user", "content": "rewrite"}],
                                        response_format={"type": "json_schema",
                                                         "json_schema": {"name": "a", "schema": schema}})
        label = litellm.completion(model="openai/stub", api_base=stub.url, api_key="stub",
                                   messages=[{"role": "user", "content": "Text: a good film\nLabel:"}])
        assert stub.requests == 2
    assert len(json.loads(structured.choices[0].message.content)["instruction"]) >= 30
    assert label.choices[0].message.content == "positive"


def test_batch_scoring_reports_rows_per_second_against_the_latency_limit(tracking, capsys):
    from benchmarks import batch

    latency = 0.02
    args = batch.parse_args(["--rows", "60", "--latency", str(latency), "--batch-size", "16",
                             "--concurrency", "1,6", "--spark-concurrency", ""])
    rows = batch.run(args)

    assert [(r["engine"], r["concurrency"]) for r in rows] == [("local", 1), ("local", 6)]
    for row in rows:
        assert row["rows"] == row["calls"] == 60  # one call per row
        assert row["limit"] == pytest.approx(60 * latency / row["concurrency"], abs=0.01)
        assert row["wall"] >= row["limit"]  # the latency limit is a floor
        assert row["rows_per_s"] == pytest.approx(60 / row["wall"], rel=0.05)
    assert rows[1]["wall"] < rows[0]["wall"]  # concurrency pays
    assert "### batch scoring: 60 rows" in capsys.readouterr().out
