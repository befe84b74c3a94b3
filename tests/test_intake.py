"""Intake: markers, few-shot examples, and the task spec read by the (fake) intake model."""

import json

import pytest

from promptomatix.config import ModelSettings
from promptomatix.errors import ConfigError, LLMError
from promptomatix.intake import extract_task_spec, parse_examples, parse_markers, starting_instruction
from promptomatix.models.lm import LM
from promptomatix.models.usage import UsageMeter
from promptomatix.task.types import TASK_TYPES

try:
    from conftest import FAKE_MODEL
except ImportError:  # pragma: no cover
    FAKE_MODEL = "scripted/fake"

INTAKE = "Request:"  # in every intake prompt
SENTIMENT = {
    "description": "Classify the sentiment of a movie review.",
    "task_type": "classification",
    "input_fields": ["review"],
    "output_fields": ["sentiment"],
    "labels": ["positive", "negative", "neutral"],
}


@pytest.fixture
def meter():
    return UsageMeter()


@pytest.fixture
def lm(fake_llm, meter):
    return LM(ModelSettings(model=FAKE_MODEL), meter, backoff=0)


def answer(**changes):
    return json.dumps({**SENTIMENT, **changes})


# --- markers and examples -------------------------------------------------------------------

def test_parse_markers_all_seven_and_preface():
    raw = (
        "Some preface.\n"
        "[TASK] Classify movie reviews.\n"
        "[FEW_SHOT_EXAMPLES]\nReview: good\nSentiment: positive\n"
        "[CONTEXT]: Reviews come from a film site.\n"
        "[QUESTION] Is it positive?\n"
        "[INSTRUCTIONS] Read the whole review.\n"
        "[RULES]\n- one word only\n- lowercase\n"
        "[OUTPUT_FORMAT] A single label."
    )
    sections = parse_markers(raw)
    assert sections == {
        "TASK": "Some preface.\nClassify movie reviews.",
        "FEW_SHOT_EXAMPLES": "Review: good\nSentiment: positive",
        "CONTEXT": "Reviews come from a film site.",
        "QUESTION": "Is it positive?",
        "INSTRUCTIONS": "Read the whole review.",
        "RULES": "- one word only\n- lowercase",
        "OUTPUT_FORMAT": "A single label.",
    }


def test_parse_markers_plain_text_is_the_task():
    assert parse_markers("  Translate English to French.  ") == {"TASK": "Translate English to French."}


def test_parse_markers_only_at_line_start():
    sections = parse_markers("Explain what [RULES] means in a board game.")
    assert sections == {"TASK": "Explain what [RULES] means in a board game."}


def test_parse_examples_blank_line_separated():
    text = "Review: A gripping, funny film\nSentiment: positive\n\nReview: Dull: far too long\nSentiment: negative"
    assert parse_examples(text) == [
        {"review": "A gripping, funny film", "sentiment": "positive"},
        {"review": "Dull: far too long", "sentiment": "negative"},
    ]


def test_parse_examples_repeated_first_field_starts_new_example():
    text = "Input Text: one\nLabel: a\nInput Text: two\nLabel: b"
    assert parse_examples(text) == [{"input_text": "one", "label": "a"}, {"input_text": "two", "label": "b"}]


def test_parse_examples_empty():
    assert parse_examples("") == []


def test_starting_instruction_includes_rules_and_format():
    sections = {"TASK": "Classify reviews.", "INSTRUCTIONS": "Read carefully.", "RULES": "- one word",
                "OUTPUT_FORMAT": "lowercase label", "CONTEXT": "not part of it"}
    assert starting_instruction(sections) == (
        "Classify reviews.\n\nInstructions:\nRead carefully.\n\nRules:\n- one word\n\nOutput format:\nlowercase label"
    )


# --- extract_task_spec ------------------------------------------------------------------------

def test_extract_task_spec_reads_model_answer(fake_llm, lm):
    fake_llm.rules = [(INTAKE, answer(labels=["positive", "negative"]))]
    spec = extract_task_spec("Classify the sentiment of a movie review.", lm)
    assert spec.description == "Classify the sentiment of a movie review."
    assert spec.task_type == "classification"
    assert spec.input_fields == ("review",)
    assert spec.output_fields == ("sentiment",)
    assert spec.labels == ("positive", "negative")
    assert spec.instructions == "Classify the sentiment of a movie review."
    assert "Request: Classify the sentiment of a movie review." in fake_llm.calls[-1]["prompt"]


def test_schema_restricts_task_type_to_registered_types(fake_llm, lm):
    fake_llm.rules = [(INTAKE, answer())]
    extract_task_spec("Handle reviews.", lm)  # no word of the request settles the type: the model may pick any
    schema = fake_llm.calls[-1]["params"]["response_format"]["json_schema"]["schema"]
    assert schema["properties"]["task_type"]["enum"] == TASK_TYPES.names()
    assert "classification" in schema["properties"]["task_type"]["enum"]


def test_overrides_win_over_the_model(fake_llm, lm):
    fake_llm.rules = [(INTAKE, answer())]
    spec = extract_task_spec("Summarise movie reviews.", lm, task_type="summarization",
                             input_fields=["review_text"], output_fields=["summary"])
    assert spec.task_type == "summarization"
    assert spec.input_fields == ("review_text",)
    assert spec.output_fields == ("summary",)
    assert spec.labels == ()  # labels only for classification
    schema = fake_llm.calls[-1]["params"]["response_format"]["json_schema"]["schema"]
    assert schema["properties"]["task_type"]["enum"] == ["summarization"]


def test_labels_limited_to_those_the_request_names(fake_llm, lm):
    fake_llm.rules = [(INTAKE, answer())]  # proposes positive, negative, neutral
    spec = extract_task_spec("Classify the sentiment of a movie review as positive or negative.", lm)
    assert spec.labels == ("positive", "negative")


def test_labels_kept_when_request_names_none(fake_llm, lm):
    fake_llm.rules = [(INTAKE, answer())]
    spec = extract_task_spec("Classify the sentiment of a movie review.", lm)
    assert spec.labels == ("positive", "negative", "neutral")


def test_labels_argument_replaces_model_labels(fake_llm, lm):
    fake_llm.rules = [(INTAKE, answer())]
    spec = extract_task_spec("Classify the sentiment of a movie review.", lm, labels=["pos", "neg"])
    assert spec.labels == ("pos", "neg")


def test_few_shot_examples_become_sample_examples(fake_llm, lm):
    fake_llm.rules = [(INTAKE, answer(labels=["positive", "negative"]))]
    raw = ("Classify the sentiment of a movie review.\n"
           "[FEW_SHOT_EXAMPLES]\n"
           "Review: A gripping, funny film\nSentiment: positive\n\n"
           "Review: Dull and far too long\nSentiment: negative\n")
    spec = extract_task_spec(raw, lm)
    assert spec.sample_examples == (
        {"review": "A gripping, funny film", "sentiment": "positive"},
        {"review": "Dull and far too long", "sentiment": "negative"},
    )
    assert "A gripping" not in spec.instructions


def test_few_shot_input_output_mapped_onto_single_fields(fake_llm, lm):
    fake_llm.rules = [(INTAKE, answer())]
    raw = "Classify the sentiment of movie reviews.\n[FEW_SHOT_EXAMPLES]\nInput: Loved it\nOutput: positive\n\nColour: red\n"
    spec = extract_task_spec(raw, lm)
    assert spec.sample_examples == ({"review": "Loved it", "sentiment": "positive"},)  # unmatched one skipped


@pytest.mark.parametrize(
    "raw, fields",
    [
        ("[TASK] Answer the question about the passage.\n[CONTEXT] The tower is in Paris.\n"
         "[QUESTION] Where is the tower?", ("context", "question")),
        ("[TASK] Answer trivia questions.\n[QUESTION] Who wrote Hamlet?", ("question",)),
    ],
)
def test_question_and_context_markers_give_input_fields(fake_llm, lm, raw, fields):
    fake_llm.rules = [(INTAKE, answer(task_type="qa", input_fields=["passage", "query"],
                                      output_fields=["answer"], labels=[]))]
    spec = extract_task_spec(raw, lm)
    assert spec.input_fields == fields
    assert spec.output_fields == ("answer",)
    assert "(The request includes a question:" in fake_llm.calls[-1]["prompt"]


def test_unusable_fields_fall_back_to_task_type_defaults(fake_llm, lm):
    fake_llm.rules = [(INTAKE, answer(input_fields=["text"], output_fields=["text"]))]
    spec = extract_task_spec("Classify reviews.", lm)
    assert spec.input_fields == ("text",)
    assert spec.output_fields == ("label",)


def test_raw_input_without_task_text_is_rejected(fake_llm, lm):
    with pytest.raises(ConfigError, match="no task text"):
        extract_task_spec("[CONTEXT] only some context", lm)
    assert fake_llm.calls == []


def test_unparseable_answer_is_retried_then_raises(fake_llm, lm, meter):
    fake_llm.rules = [(INTAKE, "not json")]
    with pytest.raises(LLMError, match="no valid JSON after 3 attempts"):
        extract_task_spec("Classify reviews.", lm)
    assert len(fake_llm.calls) == 3
    assert meter.snapshot().parse_failures == 3
    assert meter.snapshot().calls == 3


def test_one_bad_answer_then_good_one_succeeds(fake_llm, lm, meter):
    answers = iter(["not json", answer()])
    fake_llm.rules = [(INTAKE, lambda prompt, params: next(answers))]
    spec = extract_task_spec("Classify the sentiment of reviews.", lm)
    assert spec.output_fields == ("sentiment",)
    assert len(fake_llm.calls) == 2
    assert meter.snapshot().parse_failures == 1


def test_answer_missing_required_key_counts_as_parse_failure(fake_llm, lm, meter):
    incomplete = {k: v for k, v in SENTIMENT.items() if k != "task_type"}
    answers = iter([json.dumps(incomplete), answer()])
    fake_llm.rules = [(INTAKE, lambda prompt, params: next(answers))]
    assert extract_task_spec("Classify reviews.", lm).task_type == "classification"
    assert meter.snapshot().parse_failures == 1
