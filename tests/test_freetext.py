"""Free-text answers: a cap fitted to the task's answers, and answers that copy their input,
are empty or echo the prompt counted, given no credit in the search and never registered."""

from __future__ import annotations

import json

import mlflow
import promptomatix
from conftest import FAKE_MODEL
from mlflow import MlflowClient

from promptomatix.scoring.freetext import answer_tokens, copied, degenerate, uncredited
from promptomatix.task.prompt import Prompt
from promptomatix.tracking import record

SUMMARY = Prompt("Summarize the text.", ("text",), ("summary",))
HONEST = "Summarize the text CAREFULLY in a few words."


def test_the_answer_cap_follows_the_references_lengths_not_the_models_cap():
    short = [{"text": "x", "summary": "a" * 40} for _ in range(9)] + [{"text": "x", "summary": "a" * 400}]
    long = [{"text": "x", "summary": "a" * 400} for _ in range(10)]
    assert answer_tokens(SUMMARY, short) == 18  # the 90th percentile, 40 chars, not the one outlier
    assert answer_tokens(SUMMARY, long) == 172
    assert answer_tokens(SUMMARY, []) == 0
    assert answer_tokens(Prompt("Label it.", ("text",), ("label",), labels=("a", "b")), short) == 0


def test_an_answer_copying_its_input_counts_only_where_the_reference_does_not():
    rows = [{"text": "The cat sat on the mat in the sun today.", "summary": "A cat sat."},
            {"text": "Fix the spelling: teh cat.", "summary": "Fix the spelling: teh cat."},
            {"text": "A long story about a dog.", "summary": "A dog story."},
            {"text": "Another text.", "summary": "Text."},
            {"text": "Say hello.", "summary": "Hello."}]
    answers = [{"summary": "the cat sat on the mat in the sun today"},  # copied (case, punctuation aside)
               {"summary": "Fix the spelling: teh cat."},  # the reference copies too: the task
               {"summary": "A dog."},
               {"summary": ""},
               {"summary": "Text: Say hello."}]  # a new example started: the prompt echoed
    assert copied(SUMMARY, rows, answers) == (True, False, False, False, False)
    found = degenerate(SUMMARY, rows, answers)
    assert (found.copies, found.empty, found.echoes, found.mostly_copies) == (1, 1, 1, False)
    assert found.describe() == "of 5 answers, 1 copy their input, 1 are empty, 1 echo the prompt"


def test_an_answer_parroting_a_demos_answer_echoes_the_prompt_and_earns_no_credit():
    demo = {"dialogue": "Bella: what's the plan? James: we play Isle of Skye on Sunday at 2 PM",
            "summary": "Bella and James are meeting to play Isle of Skye on Sunday at 2 pm."}
    prompt = SUMMARY.with_(input_fields=("dialogue",), demos=(demo,))
    rows = [{"dialogue": "Lenny: which trousers? Bob: the grey ones", "summary": "Bob helps Lenny pick trousers."},
            {"dialogue": "Tom: see you on Sunday at 2 pm at the park?", "summary": "Tom and Ann meet on Sunday."},
            {"dialogue": "Ann: fancy a game? Tom: sure, Isle of Skye on Sunday at 2 pm", "summary": "They play."}]
    answers = [{"summary": "Lenny and Bob are meeting to play Isle of Skye on Sunday at 2 pm."},  # a demo's, names swapped
               {"summary": "Tom and Ann are meeting on Sunday at 2 pm at the park."},  # short common runs only
               {"summary": "Ann and Tom play Isle of Skye on Sunday at 2 pm."}]  # the words are the input's own
    assert uncredited(prompt, rows, answers) == (True, False, False)
    assert degenerate(prompt, rows, answers).echoes == 1
    assert uncredited(prompt.with_(demos=()), rows, answers) == (False, False, False)


def _summaries(tmp_path, rows: int = 24) -> str:
    path = tmp_path / "texts.jsonl"
    with path.open("w") as f:
        for i in range(rows):
            text = f"the story number {i} tells of a cat that sat on a mat in the sun all day long"
            f.write(json.dumps({"text": text, "summary": f"cat {i} sat on a mat in the sun all day"}) + "\n")
    return str(path)


def _optimize(fake_llm, tmp_path, honest: str | None):
    def task(prompt: str, params: dict) -> str:
        query = prompt.rsplit("Text:", 1)[-1].split("\nSummary:")[0].strip()
        if honest and honest in prompt:
            return "a cat sat"  # short, a poor ROUGE-L, but an answer
        return query  # the input returned: ROUGE-L rewards it against these references

    fake_llm.rules = [
        ("Request:", {"description": "Summarize a short story.", "task_type": "summarization",
                      "input_fields": ["text"], "output_fields": ["summary"], "labels": []}),
        ("Improved instruction", {"instruction": honest or "Summarize the text, keeping every word of it."}),
        ("Summary:", task),
    ]
    return promptomatix.optimize(raw_input="Summarize a short story", model=FAKE_MODEL, train_data=_summaries(tmp_path),
                                 task_type="summarization", input_fields="text", output_fields="summary",
                                 iterations=2, candidates=2, num_threads=1, show_progress=False)


def test_a_prompt_that_copies_its_input_does_not_win_and_calls_are_capped(tracking, fake_llm, tmp_path):
    result = _optimize(fake_llm, tmp_path, HONEST)

    assert HONEST in result.prompt
    assert result.optimized_score < result.initial_score  # the copying start scored higher, and lost
    run = MlflowClient().get_run(result.run_id)
    assert run.data.metrics["answers_copying_input"] == 0 and result.model_version == "1"
    assert run.data.metrics["reference_words_mean"] == 11.0
    # every task call asks for about what a reference takes, not the model's 256 tokens
    caps = {c["params"]["max_tokens"] for c in fake_llm.calls if c["prompt"].rstrip().endswith("Summary:")}
    assert caps == {int(run.data.params["answer_tokens"])} and max(caps) < 30


def test_a_winner_that_mostly_copies_its_input_is_not_registered(tracking, fake_llm, tmp_path):
    result = _optimize(fake_llm, tmp_path, None)

    assert result.model_version is None
    run = MlflowClient().get_run(result.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags[record.NOT_REGISTERED].startswith("not registered: the best prompt found copies its input")
    assert run.data.metrics["answers_copying_input"] == result.valid_size
    assert "copy their input" in mlflow.get_run(result.run_id).data.tags["mlflow.note.content"]
    assert not MlflowClient().search_registered_models()
