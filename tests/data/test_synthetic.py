"""Synthetic examples from the (fake) optimizer model: batching, checks, balance, de-duplication."""

import dataclasses
import json
from collections import Counter

import pytest

from promptomatix.config import ModelSettings, OPTIMIZER_MAX_TOKENS
from promptomatix.data.synthetic import generate_examples
from promptomatix.errors import LLMError
from promptomatix.models.lm import LM
from promptomatix.models.usage import UsageMeter
from promptomatix.task.spec import TaskSpec

try:
    from conftest import FAKE_MODEL
except ImportError:  # pragma: no cover
    FAKE_MODEL = "scripted/fake"

SYNTHETIC = "Examples so far"  # in every synthetic prompt

SENTIMENT = TaskSpec(
    description="Classify the sentiment of a movie review.",
    input_fields=("review",),
    output_fields=("sentiment",),
    task_type="classification",
    labels=("positive", "negative"),
    instructions="Classify the sentiment of a movie review as positive or negative.",
)
SUMMARY = TaskSpec(
    description="Summarise a news article in one sentence.",
    input_fields=("article",),
    output_fields=("summary",),
    task_type="summarization",
)


@pytest.fixture
def lm(fake_llm):
    return LM(ModelSettings(model=FAKE_MODEL, max_tokens=OPTIMIZER_MAX_TOKENS), UsageMeter(), backoff=0)


def schemas(fake_llm):
    return [c["params"]["response_format"]["json_schema"]["schema"] for c in fake_llm.calls]


def scripted(*batches):
    """A fake answer giving these batches in turn (the last one repeats)."""
    queue = list(batches)

    def answer(prompt, params):
        batch = queue.pop(0) if len(queue) > 1 else queue[0]
        return json.dumps({"examples": batch})

    return answer


def review(text, label="positive"):
    return {"review": text, "sentiment": label}


def test_exact_count_in_batches_with_all_fields(fake_llm, lm):
    examples, report = generate_examples(SUMMARY, lm, 5, batch_size=2, show_progress=False)
    assert len(examples) == 5
    assert all(set(e) == {"article", "summary"} and all(e.values()) for e in examples)
    assert len(fake_llm.calls) == 3
    assert [s["properties"]["examples"]["minItems"] for s in schemas(fake_llm)] == [2, 2, 1]
    assert (report.requested, report.accepted, report.batches) == (5, 5, 3)
    assert (report.rejected, report.duplicates) == (0, 0)


def test_schema_requires_the_task_fields(fake_llm, lm):
    generate_examples(SUMMARY, lm, 2, batch_size=2, show_progress=False)
    item = schemas(fake_llm)[0]["properties"]["examples"]["items"]
    assert item["required"] == ["article", "summary"]
    assert "enum" not in item["properties"]["summary"]


def test_classification_batches_take_turns_over_labels(fake_llm, lm):
    examples, _ = generate_examples(SENTIMENT, lm, 7, batch_size=2, show_progress=False)
    enums = [s["properties"]["examples"]["items"]["properties"]["sentiment"]["enum"] for s in schemas(fake_llm)]
    assert enums == [["positive"], ["negative"], ["positive"], ["negative"]]
    assert Counter(e["sentiment"] for e in examples) == {"positive": 4, "negative": 3}
    prompts = [c["prompt"] for c in fake_llm.calls]
    assert "every example has sentiment = positive" in prompts[0]
    assert "every example has sentiment = negative" in prompts[1]


def test_duplicate_inputs_dropped_and_counted(fake_llm, lm):
    fake_llm.rules = [(SYNTHETIC, scripted(
        [review("Great film"), review("great   FILM", "negative")],
        [review("Great film"), review("Boring plot", "negative")],
        [review("Lovely cast"), review("Weak ending", "negative")],
    ))]
    examples, report = generate_examples(SENTIMENT, lm, 4, batch_size=2, show_progress=False)
    assert [e["review"] for e in examples] == ["Great film", "Boring plot", "Lovely cast", "Weak ending"]
    assert report.duplicates == 2
    assert report.batches == 3


@pytest.mark.parametrize(
    "bad",
    [
        review(""),
        review("   "),
        review("Fine film", ""),
        review("Fine film", "neutral"),
        {"review": "Fine film"},
        "just a string",
    ],
)
def test_invalid_examples_rejected_and_counted(fake_llm, lm, bad):
    fake_llm.rules = [(SYNTHETIC, scripted(
        [bad, review("Great film")],
        [review("Boring plot", "negative"), review("Dull", "negative")],
    ))]
    examples, report = generate_examples(SENTIMENT, lm, 3, batch_size=2, show_progress=False)
    assert examples == [review("Great film"), review("Boring plot", "negative"), review("Dull", "negative")]
    assert report.rejected == 1
    assert report.duplicates == 0


def test_sample_examples_kept_first(fake_llm, lm):
    samples = (review("A gripping, funny film"), review("Dull and far too long", "negative"))
    spec = dataclasses.replace(SENTIMENT, sample_examples=tuple(samples))
    fake_llm.rules = [(SYNTHETIC, scripted([review("a gripping, funny film"), review("Lovely cast")],
                                           [review("Weak ending", "negative")]))]
    examples, report = generate_examples(spec, lm, 4, batch_size=2, show_progress=False)
    assert examples[:2] == list(samples)
    assert examples[2:] == [review("Lovely cast"), review("Weak ending", "negative")]
    assert report.duplicates == 1  # the model repeated a sample
    assert "A gripping, funny film" in fake_llm.calls[0]["prompt"]  # shown as "examples so far"


def test_only_duplicates_stops_after_three_batches_that_add_nothing_and_raises(fake_llm, lm):
    fake_llm.rules = [(SYNTHETIC, scripted([review("Great film"), review("Great film")]))]
    with pytest.raises(LLMError, match="only 1 usable examples in 4 batches"):
        generate_examples(SENTIMENT, lm, 4, batch_size=2, show_progress=False)
    assert len(fake_llm.calls) == 4  # one batch with a new example, then three that add nothing


def test_explicit_max_batches(fake_llm, lm):
    fake_llm.rules = [(SYNTHETIC, scripted([review("Great film")]))]
    with pytest.raises(LLMError):
        generate_examples(SENTIMENT, lm, 10, batch_size=5, max_batches=2, show_progress=False)
    assert len(fake_llm.calls) == 2


def test_fewer_than_requested_but_usable_is_returned(fake_llm, lm):
    fake_llm.rules = [(SYNTHETIC, scripted([review("Great film"), review("Boring", "negative")]))]
    examples, report = generate_examples(SENTIMENT, lm, 5, batch_size=2, max_batches=3, show_progress=False)
    assert len(examples) == 2
    assert (report.requested, report.accepted, report.duplicates) == (5, 2, 4)


def test_unparseable_batches_raise_llm_error(fake_llm, lm):
    fake_llm.rules = [(SYNTHETIC, "no JSON here")]
    with pytest.raises(LLMError, match="only 0 usable examples in 3 batches .*3 unparseable"):
        generate_examples(SENTIMENT, lm, 4, batch_size=2, show_progress=False)


def test_an_unparseable_batch_is_counted_and_the_examples_so_far_are_kept(fake_llm, lm):
    answers = iter(["no JSON", "no JSON", "no JSON"])  # the first batch fails all three attempts

    def batch(prompt, params):
        failing = next(answers, None)
        if failing:
            return failing
        n = params["response_format"]["json_schema"]["schema"]["properties"]["examples"]["minItems"]
        label = params["response_format"]["json_schema"]["schema"]["properties"]["examples"]["items"][
            "properties"]["sentiment"]["enum"][0]
        return json.dumps({"examples": [{"review": f"{label} film {len(fake_llm.calls)}-{i}", "sentiment": label}
                                        for i in range(n)]})

    fake_llm.rules = [(SYNTHETIC, batch)]
    examples, report = generate_examples(SENTIMENT, lm, 4, batch_size=2, show_progress=False)
    assert len(examples) == 4 and report.failed_batches == 1
    assert lm.meter.snapshot().parse_failures == 3


def test_batch_with_null_examples_is_skipped(fake_llm, lm):
    answers = iter([json.dumps({"examples": None})])
    fake_llm.rules = [(SYNTHETIC, lambda prompt, params: next(answers, json.dumps(
        {"examples": [review("Great film"), review("Boring", "negative")]})))]
    examples, _ = generate_examples(SENTIMENT, lm, 2, batch_size=2, show_progress=False)
    assert len(examples) == 2


@pytest.mark.parametrize("show", [True, False])
def test_progress_can_be_disabled(fake_llm, lm, capsys, show):
    generate_examples(SUMMARY, lm, 2, batch_size=2, show_progress=show)
    assert ("generating examples" in capsys.readouterr().err) is show



def test_free_text_examples_answering_with_their_input_are_rejected_and_counted(fake_llm, lm):
    article = "The council voted on Tuesday to close the old bridge for repairs until spring."
    fake_llm.rules = [(SYNTHETIC, scripted(
        [{"article": article, "summary": article},  # the input returned as its own summary
         {"article": "Rain is expected all week in the north.", "summary": "Rainy week ahead."}],
        [{"article": "Shares fell sharply after the report.", "summary": "Shares fell."},
         {"article": "A new park opens downtown.", "summary": "Park opens."}],
    ))]
    examples, report = generate_examples(SUMMARY, lm, 3, batch_size=2, show_progress=False)
    assert article not in [e["article"] for e in examples] and len(examples) == 3
    assert (report.copies, report.rejected) == (1, 1)


def test_a_rewrite_close_to_its_input_is_kept_and_only_an_unchanged_one_rejected(fake_llm, lm):
    rewrite = TaskSpec(description="Correct the spelling of a sentence.", input_fields=("text",),
                       output_fields=("rewrite",), task_type="rewriting")
    fake_llm.rules = [(SYNTHETIC, scripted(
        [{"text": "The cat sat on teh mat by the door.", "rewrite": "The cat sat on the mat by the door."},
         {"text": "I has a dog.", "rewrite": "I has a dog."}],
        [{"text": "She go home.", "rewrite": "She goes home."}],
    ))]
    examples, report = generate_examples(rewrite, lm, 2, batch_size=2, show_progress=False)
    assert [e["text"] for e in examples] == ["The cat sat on teh mat by the door.", "She go home."]
    assert report.copies == 1


def test_free_text_references_that_echo_the_task_or_loop_are_rejected_and_the_dropped_share_counted(fake_llm, lm):
    # What the embedded model writes when asked for summaries it cannot write: the task said
    # back, one summary for every input, and a phrase said over and over.
    fake_llm.rules = [(SYNTHETIC, scripted(
        [{"article": "The council voted to close the old bridge.", "summary": "The bridge will close."},
         {"article": "Shares fell sharply after the report.", "summary": "Summarise a news article in one sentence."},
         {"article": "A new park opens downtown this week.", "summary": "The bridge will close."},
         {"article": "I have to study for the test.",
          "summary": "I have to study hard and I have to study hard and I have to study hard"}],
        [{"article": "Rain is expected all week in the north.", "summary": "Rainy week ahead."}],
    ))]
    examples, report = generate_examples(SUMMARY, lm, 2, batch_size=4, show_progress=False)
    assert [e["summary"] for e in examples] == ["The bridge will close.", "Rainy week ahead."]
    assert (report.echoes, report.loops, report.rejected) == (2, 1, 3)
    assert report.dropped_share == pytest.approx(3 / 5)
