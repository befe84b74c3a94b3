"""Prompt: the stored template, rendering inputs, parsing completions, stop sequences."""

import pytest

from promptomatix.task.prompt import field_label, Prompt

SENTIMENT = Prompt(
    instruction="Classify the sentiment of the review.",
    input_fields=("review",),
    output_fields=("sentiment",),
    demos=({"review": "A gripping, funny film", "sentiment": "positive"},
           {"review": "Dull and far too long", "sentiment": "negative"}),
    single_line=True,
)
QA = Prompt(instruction="Answer from the context.", input_fields=("context", "question"),
            output_fields=("answer",))


def test_field_label():
    assert field_label("user_question") == "User question"


def test_template_has_instruction_demos_and_placeholders():
    assert SENTIMENT.template == (
        "Classify the sentiment of the review.\n\n"
        "Review: A gripping, funny film\nSentiment: positive\n\n"
        "Review: Dull and far too long\nSentiment: negative\n\n"
        "Review: {{review}}\nSentiment:"
    )


def test_template_without_instruction_or_demos():
    assert QA.with_(instruction="  ").template == "Context: {{context}}\nQuestion: {{question}}\nAnswer:"


def test_template_demo_values_keep_no_blank_lines():
    prompt = QA.with_(demos=({"context": "Line one.\n\n\nLine two.", "question": "Q?", "answer": "A"},))
    demo_block = prompt.template.split("\n\n")[1]
    assert demo_block == "Context: Line one.\nLine two.\nQuestion: Q?\nAnswer: A"


def test_render_fills_inputs():
    text = QA.render({"context": "The tower is in Paris.", "question": "Where is the tower?"})
    assert text == ("Answer from the context.\n\n"
                    "Context: The tower is in Paris.\nQuestion: Where is the tower?\nAnswer:")
    assert "{{" not in text


def test_render_keeps_blank_lines_out_of_values():
    text = QA.render({"context": "Para one.\n\n  \nPara two.", "question": "  Which?  "})
    assert text.endswith("Context: Para one.\nPara two.\nQuestion: Which?\nAnswer:")
    assert "\n\n" not in text.split("Answer from the context.\n\n", 1)[1]


def test_render_leaves_braces_inside_values_alone():
    text = QA.render({"context": "Jinja uses {{question}} for variables.", "question": "What does it use?"})
    assert "Context: Jinja uses {{question}} for variables." in text


@pytest.mark.parametrize(
    "completion, expected",
    [
        (" positive", "positive"),
        (" positive\nReview: another review\nSentiment: negative", "positive"),
        ("\nnegative\nbecause it is dull", "negative"),
    ],
)
def test_parse_single_line_takes_first_line(completion, expected):
    assert SENTIMENT.parse(completion) == {"sentiment": expected}


def test_parse_two_output_fields():
    prompt = Prompt("Classify.", ("review",), ("sentiment", "confidence"))
    assert prompt.parse("positive\nConfidence: high") == {"sentiment": "positive", "confidence": "high"}


def test_parse_multi_line_output_keeps_lines():
    assert QA.parse(" Paris,\nin France\n") == {"answer": "Paris,\nin France"}


def test_parse_missing_second_field_is_empty():
    prompt = Prompt("Classify.", ("review",), ("sentiment", "confidence"))
    assert prompt.parse("negative") == {"sentiment": "negative", "confidence": ""}


def test_stop_sequences():
    assert SENTIMENT.stop == ["\n"]
    assert QA.stop == ["\n\n", "\nContext:"]
