"""A task type `review_sentiment`: a review in, a sentiment out, scored by exact match.

Its fields are the defaults whenever the intake model proposes none; its hint tells the intake
model what the type means. Choose it with `task_type="review_sentiment"` / `--task-type`.
"""

from promptomatix.task.types import register_task_type, TaskType

REVIEW_SENTIMENT = TaskType(
    name="review_sentiment",
    metric="exact_match",          # a name in the metric registry (built in, or your own)
    score_key="exact_match",       # the key of that metric's result the optimizer maximizes
    input_fields=("review",),
    output_fields=("sentiment",),
    hint="say whether a product or film review is positive or negative",
)


def register(*, replace: bool = False) -> TaskType:
    return register_task_type(REVIEW_SENTIMENT, replace=replace)
