"""Demo plugins: one of each kind, declared as entry points in ../pyproject.toml."""

import json
import os

import click
import litellm

from promptomatix.backends.dspy.optimizers import Recipe
from promptomatix.data.steps import Rejected
from promptomatix.run.callbacks import Callback
from promptomatix.task.types import TaskType

INTAKE = {"description": "Say whether a text is pos or neg.", "task_type": "polarity",
          "input_fields": ["text"], "output_fields": ["label"], "labels": ["pos", "neg"]}


class Canned(litellm.CustomLLM):
    """A model that knows this one task: intake, rewrites and answers, all canned."""

    def completion(self, model, messages, *args, optional_params=None, **kwargs):
        prompt = "\n".join(str(m.get("content", "")) for m in messages)
        schema = (optional_params or {}).get("response_format")
        if schema:
            wanted = schema["json_schema"]["schema"]["properties"]
            text = json.dumps({"instruction": "Answer pos or neg for the text."} if "instruction" in wanted else INTAKE)
        else:
            text = "pos" if "good" in prompt.rsplit("Text:", 1)[-1] else "neg"
        response = litellm.ModelResponse(model=model)
        response.choices[0].message.content = text
        response.usage = litellm.Usage(prompt_tokens=len(prompt.split()), completion_tokens=1,
                                       total_tokens=len(prompt.split()) + 1)
        return response


def read_words(location):
    for i in range(int(location)):
        yield {"text": f"a {'good' if i % 2 else 'bad'} day number {i}", "label": "pos" if i % 2 else "neg"}
    yield {"text": "an ugly one", "label": "neg"}


def no_ugly(example, spec):
    if "ugly" in example["text"]:
        raise Rejected("ugly")
    return example


def first_word(predictions, references):
    scores = [float(p.split()[:1] == r.split()[:1]) for p, r in zip(predictions, references)]
    return {"first_word": sum(scores) / len(scores), "per_example": scores}


class MarkerHook(Callback):
    def on_optimization_end(self, result):
        with open(os.environ["PMX_MARKER"], "w") as handle:
            handle.write(f"{result.run_id} {result.optimized_score}")


@click.command()
def hello():
    """Say hello from a plugin."""
    click.echo("hello from pmx-demo-plugins")


LABELED = Recipe(lambda student, setup: student, lambda program: [[program]])
POLARITY = TaskType("polarity", "classification", "accuracy", ("text",), ("label",), "pos or neg")
