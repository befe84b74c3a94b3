"""Synthetic classification data from the raw input alone: inputs written, labels read."""

from __future__ import annotations

import pytest

from conftest import FAKE_MODEL, SCORING_MODEL, sample_text, written_inputs
from promptomatix.config import ModelSettings
from promptomatix.data.selflabel import self_label, write_inputs
from promptomatix.errors import LLMError
from promptomatix.models.lm import LM
from promptomatix.models.usage import UsageMeter
from promptomatix.scoring import Metric
from promptomatix.scoring.evaluator import Evaluator
from promptomatix.task.prompt import Prompt
from promptomatix.task.spec import TaskSpec

SPEC = TaskSpec("Classify the sentiment of a movie review as positive or negative.", ("review",), ("sentiment",),
                "classification", ("positive", "negative"))
START = Prompt(SPEC.description, SPEC.input_fields, SPEC.output_fields, single_line=True, labels=SPEC.labels)


def writer(model=FAKE_MODEL):
    return LM(ModelSettings(model, temperature=0.7), UsageMeter())


def test_inputs_are_written_in_turn_for_each_label_and_repeats_are_dropped(fake_llm):
    texts = iter([sample_text("good", 0), sample_text("good", 0) + " again", "Classify the sentiment of a movie "
                  "review", "ok", sample_text("bad", 1), sample_text("good", 2),
                  sample_text("bad", 3)])
    fake_llm.rules = [written_inputs(lambda label, n: next(texts), "Sentiment")]

    inputs, asked, report = write_inputs(SPEC, writer(), 4, show_progress=False)

    assert [e["review"] for e in inputs] == [sample_text(w, n) for w, n in (("good", 0), ("bad", 1), ("good", 2),
                                                                            ("bad", 3))]
    assert asked == ["positive", "positive", "negative", "positive"]  # labels asked in turn, request by request
    assert (report.calls, report.duplicates, report.rejected) == (7, 2, 1)  # a repeat, the task echoed; "ok" is short
    prompts = [c["prompt"] for c in fake_llm.calls]
    assert prompts[0].startswith(SPEC.description) and prompts[0].endswith("Sentiment: positive\nReview:")
    assert prompts[1].endswith("Sentiment: negative\nReview:")


def test_an_input_naming_several_labels_is_dropped_and_markup_is_removed(fake_llm):
    # A base model echoes the task's label list, and wraps inputs in the markup of web pages.
    texts = iter(["Positive or negative? " + sample_text("good", 0), "<em>" + sample_text("good", 1) + "</em>",
                  "a positive " + sample_text("good", 2), sample_text("bad", 3), sample_text("bad", 4)])
    fake_llm.rules = [written_inputs(lambda label, n: next(texts), "Sentiment")]

    inputs, _, report = write_inputs(SPEC, writer(), 4, show_progress=False)

    assert [e["review"] for e in inputs] == [sample_text("good", 1), "a positive " + sample_text("good", 2),
                                             sample_text("bad", 3), sample_text("bad", 4)]
    assert report.rejected == 1  # one label named is a review's word; both is the label list


def test_the_users_own_examples_lead_the_pattern(fake_llm):
    fake_llm.rules = [written_inputs(lambda label, n: sample_text(label, n), "Sentiment")]
    seeds = [{"review": "an utter delight", "sentiment": "positive"}]
    write_inputs(SPEC, writer(), 4, seeds=seeds, show_progress=False)
    assert all("Sentiment: positive\nReview: an utter delight\n\n" in c["prompt"] for c in fake_llm.calls)


def test_too_few_usable_inputs_is_an_error_naming_the_counts(fake_llm):
    fake_llm.rules = [written_inputs(lambda label, n: "ok", "Sentiment")]
    with pytest.raises(LLMError, match="wrote only 0 usable inputs in 8 calls"):
        write_inputs(SPEC, writer(), 4, show_progress=False)


def review_score(bias: float):
    """A task model that reads the query's word (good/bad) but prefers `positive` by `bias`."""
    def score(prompt, option):
        query = prompt.rsplit("Review: ", 1)[-1]
        right = "positive" if "good" in query.split("\n")[0] else "negative"
        return (0.0 if option == right else -1.0) + (bias if option == "positive" else 0.0)
    return score


def test_labels_come_from_reading_the_inputs_not_from_what_was_asked(scoring):
    # What the writer was asked for is right half the time; the reader is biased to "positive".
    words = ["good", "bad"] * 10
    inputs = [{"review": sample_text(w, i)} for i, w in enumerate(words)]
    asked = ["positive"] * 20
    scoring.score = review_score(bias=1.5)
    evaluator = Evaluator(LM(ModelSettings(SCORING_MODEL), UsageMeter()), Metric("classification", "accuracy"),
                          show_progress=False)

    train, valid, report = self_label(SPEC, inputs, asked, START, evaluator, train_ratio=0.5, seed=0, teachers=2)

    # uncalibrated, the reader says "positive" to everything; calibrated over the batch it reads right
    for example in train + valid:
        assert example["sentiment"] == ("positive" if "good" in example["review"] else "negative")
    assert (len(train), len(valid)) == (10, 10)
    assert report.asked_agreement == 0.5 and report.agreement == 1.0 and report.teachers == 2
    assert report.per_label == {"positive": 10, "negative": 10}
    # each teacher is a few-shot prompt over training inputs, never asked about its own demos
    teachers = [c["prompt"] for c in scoring.calls if c["prompt"].count("Review: ") > 1]
    assert teachers
    valid_texts = {e["review"] for e in valid}
    for prompt in teachers:
        demos = prompt.split("\n\n")[1:-1]
        assert demos and not any(text in demo for demo in demos for text in valid_texts)
        query = prompt.split("\n\n")[-1]
        assert not any(query.split("\n")[0] in demo for demo in demos)


def test_a_reader_that_names_no_label_leaves_the_label_asked_for(fake_llm):
    fake_llm.rules = [("Review:", "hmm")]
    inputs = [{"review": sample_text("good", i)} for i in range(6)]
    asked = ["positive", "negative"] * 3
    evaluator = Evaluator(LM(ModelSettings(FAKE_MODEL), UsageMeter()), Metric("classification", "accuracy"),
                          show_progress=False)
    train, valid, report = self_label(SPEC, inputs, asked, START, evaluator, train_ratio=0.5, seed=0)
    by_text = {e["review"]: e["sentiment"] for e in train + valid}
    assert [by_text[e["review"]] for e in inputs] == asked
    assert report.asked_agreement == 1.0
