"""Examples for optimization: the user's data (loaders) or the optimizer model's (synthetic)."""

from __future__ import annotations

import random
from collections.abc import Sequence

from promptomatix.spec import Example


def split(examples: Sequence[Example], train_ratio: float, seed: int) -> tuple[list[Example], list[Example]]:
    """Shuffle with `seed` and split; both parts get at least one example."""
    if len(examples) < 2:
        raise ValueError("need at least two examples to split into train and validation")
    shuffled = list(examples)
    random.Random(seed).shuffle(shuffled)
    cut = min(max(1, round(len(shuffled) * train_ratio)), len(shuffled) - 1)
    return shuffled[:cut], shuffled[cut:]


# At most this many of the user's examples are used (train and validation together; and as many
# of --valid-data): every candidate prompt is scored on the validation part, so 50,000 rows would
# cost 25,000 model calls a candidate and hold them all in memory. A seeded random sample is
# used instead, and the run records it (`sample`).
SAMPLE_LIMIT = 1000


def sample(examples: Sequence[Example], seed: int, limit: int = SAMPLE_LIMIT) -> list[Example]:
    """`examples`, or a random sample of `limit` of them (drawn with `seed`, kept in file order)
    when there are more."""
    if len(examples) <= limit:
        return list(examples)
    chosen = sorted(random.Random(seed).sample(range(len(examples)), limit))
    return [examples[i] for i in chosen]
