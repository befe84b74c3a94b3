"""The task spec that intake produces and everything after it reads."""

from __future__ import annotations

from dataclasses import dataclass, field

Example = dict[str, str]


@dataclass(frozen=True)
class TaskSpec:
    """What the task is: a description (the starting instruction), its fields, its type, the
    label set for classification, and any examples the user wrote into the raw input."""

    description: str
    input_fields: tuple[str, ...]
    output_fields: tuple[str, ...]
    task_type: str
    labels: tuple[str, ...] = ()
    sample_examples: tuple[Example, ...] = field(default=())
    instructions: str = ""

    @property
    def fields(self) -> tuple[str, ...]:
        return self.input_fields + self.output_fields
