"""A data step `min_words`: rejects examples whose inputs are too short to judge.

Register it and choose it with `data_steps=["strip", "min_words"]` / `--data-step min_words`.
It runs on the user's data and on synthetic examples alike; what it rejects is counted in the
run's `data_rejected.min_words` metric and listed, with the reason, in `data_rejections.json`.
"""

from promptomatix.data.steps import register_data_step, Rejected

NAME = "min_words"
MIN_WORDS = 3


def min_words(example, spec):
    for field in spec.input_fields:
        words = len(example[field].split())
        if words < MIN_WORDS:
            raise Rejected(f"{field} has {words} words; at least {MIN_WORDS} are needed")
    return example


def register(*, replace: bool = False):
    return register_data_step(NAME, min_words, replace=replace)
