"""The quality benchmark on generation sets, at a tiny size with the scripted fake LLM: a chat
summarization set (train.jsonl and test.jsonl) and a math set holding only test.jsonl, which the
benchmark splits itself. The scripted model writes the right answer only when the prompt shows
demos, so the yardstick's search has something to find and each score is known in advance."""

from __future__ import annotations

import json
import re

import pytest
from conftest import FAKE_MODEL

from benchmarks import quality

PEOPLE = [("Ann", "Bob"), ("Cleo", "Dan"), ("Eve", "Finn"), ("Gus", "Hana")]
PLACES = ["cafe", "park", "library", "station", "gym"]


def chat(i: int) -> dict:
    (a, b), hour, place = PEOPLE[i % 4], 1 + i % 11, PLACES[i % 5]
    return {"dialogue": f"{a}: shall we meet at {hour} pm at the {place}? {b}: yes, see you at the {place} then",
            "summary": f"{a} and {b} will meet at {hour} pm at the {place}.", "id": i}


def summary_of(prompt: str) -> str:
    """The scripted summarizer: the right summary of the last dialogue when the prompt carries
    demos (promptomatix's format and DSPy's text adapter write the same `Dialogue:` lines), a
    vague one without."""
    dialogue = prompt.rsplit("Dialogue:", 1)[-1]
    found = re.search(r"(\w+): shall we meet at (\d+) pm at the (\w+)\? (\w+):", dialogue)
    if not found:
        return "They talk."
    a, hour, place, b = found.groups()
    if prompt.count("Summary:") == 1:  # no demos
        return f"{a} and {b} talk."
    return f"{a} and {b} will meet at {hour} pm at the {place}."


def answer_of(prompt: str) -> str:
    numbers = [int(n) for n in re.findall(r"\d+", prompt.rsplit("Question:", 1)[-1])]
    return str(sum(numbers)) if prompt.count("Answer:") > 1 else "I do not know"


@pytest.fixture
def scripted(fake_llm):
    fake_llm.rules = [
        (lambda p: p.rstrip().endswith("Summary:"), lambda p, _: summary_of(p)),
        (lambda p: p.rstrip().endswith("Answer:"), lambda p, _: answer_of(p)),
    ]
    return fake_llm


@pytest.fixture
def chats(tmp_path):
    folder = tmp_path / "chats"
    folder.mkdir()
    rows = [chat(i) for i in range(26)]
    (folder / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:20]))
    (folder / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[20:]))
    return folder


@pytest.fixture
def sums(tmp_path):
    folder = tmp_path / "sums"
    folder.mkdir()
    rows = [{"question": f"Tom has {a} apples and gets {a + 3} more. How many apples does he have?",
             "reasoning": f"{a} + {a + 3} = {2 * a + 3}", "answer": str(2 * a + 3)} for a in range(1, 31)]
    (folder / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def test_generation_table_scores_every_method_within_the_budget(tracking, scripted, chats, capsys):
    import mlflow

    args = quality.parse_args(["--data", str(chats), "--input-field", "dialogue", "--output-field", "summary",
                               "--metric", "rouge_l", "--task-type", "summarization",
                               "--raw-input", "Summarize a chat conversation in one sentence",
                               "--budget", "40", "--val-rows", "4", "--train-rows", "8", "--test-limit", "5",
                               "--model", FAKE_MODEL])
    outcomes = quality.run(args)["chats"]
    table = capsys.readouterr().out

    assert [o.method for o in outcomes] == list(quality.GEN_METHODS)  # lead too: a summarization set
    for method in quality.GEN_METHODS:
        assert f"| {method} |" in table
    assert "test score [95% CI]" in table and "ref tok" in table
    by_method = {o.method: o for o in outcomes}
    assert all(o.calls <= 40 for o in outcomes)
    assert by_method["zero-shot"].calls == by_method["lead"].calls == 0  # not optimized

    # lead: the first n words of each dialogue, n the references' mean length (11 words here)
    lead = by_method["lead"]
    assert "first 11 words of the dialogue" in lead.note
    assert lead.predictions[0]["answer"] == " ".join(chat(20)["dialogue"].split()[:11])
    assert 0.5 < lead.estimate.value < 0.9
    # zero-shot: the vague answer the scripted model gives without demos, parsed from its format
    zero = by_method["zero-shot"]
    assert zero.predictions[0]["answer"] == "Ann and Bob talk."
    assert 0.2 < zero.estimate.value < 0.6
    assert zero.extra["test_calls"] == 5 and zero.extra["answer_tokens"] == pytest.approx(4 * 1.3)
    assert zero.extra["reference_tokens"] > zero.extra["answer_tokens"]
    # every demo set makes the scripted model exact: the search finds it, and so do the peers
    for method in ("random-search", "dspy-bfsrs-text", "dspy-mipro-text", "ours-metaprompt"):
        assert by_method[method].estimate.value == 1.0, (method, by_method[method].note)
    assert "random 4-demo sets" in by_method["random-search"].note
    for method in ("dspy-bfsrs-text", "dspy-mipro-text"):  # sized to the budget: nothing refused
        assert by_method[method].refused == 0, by_method[method].note
    assert "candidate programs" in by_method["dspy-bfsrs-text"].note
    assert "trials on minibatches" in by_method["dspy-mipro-text"].note
    for outcome in outcomes:
        if outcome.estimate is not None:
            e = outcome.estimate
            assert e.low <= e.value <= e.high and e.n == 5

    runs = mlflow.search_runs(experiment_names=["benchmarks"], output_format="list")
    assert sorted(r.data.tags["method"] for r in runs) == sorted(quality.GEN_METHODS)
    lead_run = next(r for r in runs if r.data.tags["method"] == "lead")
    assert lead_run.data.metrics["test_rouge_l"] == pytest.approx(lead.estimate.value)
    assert lead_run.data.metrics["score_low"] <= lead_run.data.metrics["test_score"]
    assert lead_run.data.params["metric"] == "rouge_l:rouge_l"


def test_a_set_with_only_test_rows_is_split_and_scored_by_the_final_number(tracking, scripted, sums, capsys):
    args = quality.parse_args(["--data", str(sums), "--input-field", "question", "--output-field", "answer",
                               "--metric", "numeric_match", "--task-type", "math",
                               "--methods", "zero-shot,lead,random-search,dspy-bfsrs-text",
                               "--budget", "20", "--val-rows", "4", "--train-rows", "6", "--test-limit", "300",
                               "--model", FAKE_MODEL])
    outcomes = quality.run(args)["sums"]
    table = capsys.readouterr().out

    by_method = {o.method: o for o in outcomes}
    assert "test.jsonl split with seed 0: 10 rows to optimize on, 20 to test" in table
    assert len(by_method["zero-shot"].predictions) == 20
    assert by_method["zero-shot"].estimate.value == 0.0  # "I do not know" has no number
    assert by_method["zero-shot"].estimate.method == "wilson"  # 0/1 rows
    assert by_method["random-search"].estimate.value == 1.0
    assert by_method["dspy-bfsrs-text"].estimate.value == 1.0
    assert all(o.calls <= 20 and o.refused == 0 for o in outcomes)
    # the split's test rows are not among the rows optimized on, whatever --seed says
    data = quality.load_generation(str(sums), quality.generation_task("sums", args), 4, 6, 300, seed=5)
    assert {r["question"] for r in data.test} == {r["question"] for r in by_method["zero-shot"].predictions}
    assert not {r["question"] for r in data.test} & {r["question"] for r in data.train + data.valid}


def test_known_sets_need_no_field_arguments():
    args = quality.parse_args(["--data", "samsum"])
    samsum = quality.generation_task("samsum", args)
    assert (samsum.input_field, samsum.output_field, samsum.metric, samsum.task_type) == \
        ("dialogue", "summary", "rouge_l", "summarization")
    gsm8k = quality.generation_task("gsm8k", args)
    assert (gsm8k.input_field, gsm8k.output_field, gsm8k.metric) == ("question", "answer", "numeric_match")
    assert quality.generation_task("sst2", args) is None  # classification stays classification
    assert quality.generation_task("mine", quality.parse_args(["--metric", "numeric_match", "--input-field", "q",
                                                               "--output-field", "a"])).score_key == "numeric_match"
    with pytest.raises(quality.BenchmarkError, match="--input-field and --output-field"):
        quality.generation_task("mine", quality.parse_args(["--metric", "rouge_l"]))
