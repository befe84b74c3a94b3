"""Task types: what fields a task has by default and which metric scores it."""

from __future__ import annotations

from dataclasses import dataclass

from promptomatix.plugins import Registry


@dataclass(frozen=True)
class TaskType:
    """A kind of task. `metric` names an entry of the metric registry and `score_key` the key of
    its result that the optimizer maximizes; `hint` tells the intake model what the type means.
    `eval_metrics` (`name` or `name:key` each) are the final evaluation's metrics, reported on
    the run and used by `promptomatix evaluate`; empty, the final evaluation uses `metric`."""

    name: str
    metric: str
    score_key: str
    input_fields: tuple[str, ...]
    output_fields: tuple[str, ...]
    hint: str
    eval_metrics: tuple[str, ...] = ()


def _builtins(registry: Registry[TaskType]) -> None:
    for task in (
        TaskType("classification", "classification", "accuracy", ("text",), ("label",),
                 "assign one label from a fixed set"),
        TaskType("qa", "token_f1", "token_f1", ("context", "question"), ("answer",),
                 "answer a question, often from a context"),
        TaskType("summarization", "rouge_l", "rouge_l", ("text",), ("summary",),
                 "shorten a text to its main points"),
        TaskType("translation", "chrf", "chrf", ("text",), ("translation",),
                 "render a text in another language"),
        TaskType("generation", "rouge_l", "rouge_l", ("prompt",), ("response",),
                 "write free text from an instruction"),
        # SARI judges the rewrite against its source too: ROUGE-L alone pays for copying the input.
        TaskType("rewriting", "sari", "sari", ("text",), ("rewrite",),
                 "rewrite a text in other words (simplify, paraphrase, formalize, correct)",
                 ("sari", "rouge_l")),
        TaskType("code_generation", "chrf", "chrf", ("instruction",), ("code",),
                 "write program code"),
        TaskType("information_extraction", "token_f1", "token_f1", ("text",), ("extracted",),
                 "pull named facts or entities out of a text"),
        TaskType("math", "numeric_match", "numeric_match", ("question",), ("answer",),
                 "solve a math problem with a numeric answer"),
    ):
        registry.register(task.name, task)


TASK_TYPES: Registry[TaskType] = Registry("task_types", _builtins)


def register_task_type(task: TaskType, *, replace: bool = False) -> TaskType:
    return TASK_TYPES.register(task.name, task, replace=replace)


def get_task_type(name: str) -> TaskType:
    return TASK_TYPES.get(name)
