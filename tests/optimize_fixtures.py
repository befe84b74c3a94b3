"""The scripted LLM of the optimization tests (test_api.py and the modules that run
`run_optimize`), a pytest plugin (conftest.py's `pytest_plugins`): tests ask for `scripted` by
name instead of importing it.
"""

from __future__ import annotations

import json

import pytest
from conftest import sample_text, written_inputs

INTAKE = {"description": "Classify the sentiment of a movie review.", "task_type": "classification",
          "input_fields": ["review"], "output_fields": ["sentiment"], "labels": ["positive", "negative"]}
BETTER = "Read the review CAREFULLY and answer positive or negative."


def answer_task(prompt: str, params: dict) -> str:
    """The task model: right only when the prompt says CAREFULLY (and the review is known)."""
    query = prompt.rsplit("Review:", 1)[-1]
    if "CAREFULLY" not in prompt:
        return "maybe"
    return "positive" if "good" in query else "negative"


def synthetic(prompt: str, params: dict) -> str:
    schema = params["response_format"]["json_schema"]["schema"]
    n = schema["properties"]["examples"]["minItems"]
    label = schema["properties"]["examples"]["items"]["properties"]["sentiment"]["enum"][0]
    word = "good" if label == "positive" else "bad"
    start = synthetic.counter
    synthetic.counter += n
    return json.dumps({"examples": [{"review": f"a {word} film number {start + i}", "sentiment": label}
                                    for i in range(n)]})


def written(label: str, number: int) -> str:
    return sample_text("good" if label == "positive" else "bad", number)


@pytest.fixture
def scripted(fake_llm):
    synthetic.counter = 0
    fake_llm.rules = [
        ("Request:", INTAKE),
        ("new, varied and realistic examples", synthetic),
        written_inputs(written, "Sentiment"),
        ("Improved instruction", {"instruction": BETTER}),
        ("Sentiment:", answer_task),
    ]
    return fake_llm
