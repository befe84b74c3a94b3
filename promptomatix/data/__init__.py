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
