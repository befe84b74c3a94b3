"""A prompt: an instruction plus few-shot demos, in a plain text-completion format.

    <instruction>

    Review: a gripping, funny film
    Sentiment: positive

    Review: {{review}}
    Sentiment:

The format suits base models (they continue the pattern) and chat models alike. `template`
is the text stored in the Prompt Registry, with `{{field}}` placeholders for the inputs.

A classification prompt has `labels`: its answer is one of them (see `LM.choose`), and
`calibration` holds the per-label offsets subtracted from the model's label scores before the
best label is taken (`scoring.labels.batch_calibration`, or `scoring.labels.fitted_calibration` for the
winner on the user's rows); both travel with the registered version.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from promptomatix.task.spec import Example


_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")


def field_label(name: str) -> str:
    return name.replace("_", " ").strip().capitalize()


def _one_paragraph(value: str) -> str:
    # A blank line ends an example in this format, so values keep single line breaks only.
    return re.sub(r"\n\s*\n+", "\n", str(value).strip())


@dataclass(frozen=True)
class Prompt:
    instruction: str
    input_fields: tuple[str, ...]
    output_fields: tuple[str, ...]
    demos: tuple[Example, ...] = ()
    single_line: bool = False
    labels: tuple[str, ...] = ()
    calibration: tuple[float, ...] = ()
    # Tokens a free-text answer may take (`freetext.answer_tokens`); 0: the model's own cap.
    answer_tokens: int = 0

    def __post_init__(self):
        if self.labels and len(self.output_fields) != 1:
            raise ValueError("a prompt with labels has exactly one output field")
        if self.calibration and len(self.calibration) != len(self.labels):
            raise ValueError("calibration needs one offset per label")

    def with_(self, **changes) -> Prompt:
        return replace(self, **changes)

    @property
    def template(self) -> str:
        blocks = [self.instruction.strip()] if self.instruction.strip() else []
        for demo in self.demos:
            blocks.append("\n".join(f"{field_label(f)}: {_one_paragraph(demo[f])}" for f in self.fields))
        query = [f"{field_label(f)}: {{{{{f}}}}}" for f in self.input_fields]
        blocks.append("\n".join(query + [f"{field_label(self.output_fields[0])}:"]))
        return "\n\n".join(blocks)

    @property
    def fields(self) -> tuple[str, ...]:
        return self.input_fields + self.output_fields

    @property
    def stop(self) -> list[str]:
        first_input = f"\n{field_label(self.input_fields[0])}:"
        return ["\n"] if self.single_line else ["\n\n", first_input]

    def render(self, inputs: Example) -> str:
        """The template with each `{{field}}` filled in one pass (a value that itself contains
        `{{other}}` stays as written)."""
        values = {name: _one_paragraph(inputs[name]) for name in self.input_fields}
        return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), self.template)

    def parse(self, completion: str) -> Example:
        """Read the output fields back from the model's continuation of `render(...)`."""
        labels = {field_label(f).lower(): f for f in self.output_fields[1:]}
        values: dict[str, list[str]] = {f: [] for f in self.output_fields}
        current = self.output_fields[0]
        lines = completion.strip("\n").split("\n")
        if self.single_line:
            lines = lines[:1]
        for line in lines:
            head, sep, rest = line.partition(":")
            if sep and head.strip().lower() in labels:
                current = labels[head.strip().lower()]
                line = rest
            values[current].append(line)
        return {f: "\n".join(v).strip() for f, v in values.items()}
