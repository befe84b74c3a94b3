"""Examples for optimization: the user's data (loaders) or the optimizer model's (synthetic)."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from typing import TypeVar

from promptomatix.task.spec import Example

T = TypeVar("T")


# Validation rows a search wants to choose between prompts by. On a handful of rows good prompts
# tie and one lucky row decides (benchmarks/README.md: 5 rows chose a prompt scoring 0.745 on the
# test set where 15 rows of the same data chose one scoring 0.876); 25 made the 250-call results.
CHOOSING_ROWS = 25


# A check on rows the search never saw (`check_count`): from this many of the user's rows on, a
# fifth of them (10 to 100) is held out from the search and scored once at the end, start and
# winner on the same rows. The winner is chosen on the validation rows, so its score there is
# biased upward; on fewer rows the check would cost the search more than it tells.
CHECK_FROM_ROWS = 40
CHECK_SHARE = 0.2
CHECK_MIN, CHECK_MAX = 10, 100


def check_count(rows: int, wanted: int | None = None) -> int:
    """Rows of the user's `rows` to hold out for the end-of-run check: `wanted` when given (0:
    none; never so many that fewer than four are left), else `CHECK_SHARE` of them within
    `CHECK_MIN`..`CHECK_MAX` from `CHECK_FROM_ROWS` rows on, and none below."""
    if wanted is not None:
        return max(0, min(wanted, rows - 4))
    if rows < CHECK_FROM_ROWS:
        return 0
    return min(CHECK_MAX, max(CHECK_MIN, round(rows * CHECK_SHARE)))


def check_split(examples: Sequence[Example], count: int, seed: int) -> tuple[list[Example], list[Example]]:
    """`examples` without `count` of them (a choice seeded by `seed`), and those `count`, each
    part in the order of `examples`."""
    chosen = set(random.Random(seed).sample(range(len(examples)), count)) if count > 0 else set()
    return ([e for i, e in enumerate(examples) if i not in chosen], [e for i, e in enumerate(examples) if i in chosen])


def held_out_count(valid_size: int, train_size: int, num_demos: int, wanted: int = CHOOSING_ROWS) -> int:
    """Training examples to move into a validation set of `valid_size` rows so that it has
    `wanted`, keeping at least two demo sets' worth (`2 * num_demos`, at least 8, at most 16)
    to draw demos from: a demo pool a few examples smaller costs less than choosing by luck (the
    demo sets shrink to half the pool, `backends.search.demo_counts`)."""
    keep = max(8, 2 * min(num_demos, 8))
    return max(0, min(wanted - valid_size, train_size - keep))


def hold_out(train: Sequence[Example], valid: Sequence[Example], count: int, seed: int,
             label_field: str | None = None) -> tuple[list[Example], list[Example]]:
    """`count` training examples (a choice seeded by `seed`) moved to the end of `valid`, so
    that a search narrowed to the first rows of validation scores the given ones first.

    With `label_field` (classification), each example moved is of the label validation has
    fewest of, while that label keeps at least half its training examples for demos: on a
    dozen rows a chance skew decides, and a prompt answering one label for everything scored
    8 of 16 where half the rows were of that label (and 0.276 on the test set)."""
    if count < 1:
        return list(train), list(valid)
    rng = random.Random(seed)
    order = rng.sample(range(len(train)), len(train))
    if label_field is None:
        moved = set(order[:count])
    else:
        in_valid = Counter(e.get(label_field) for e in valid)
        left = Counter(train[i].get(label_field) for i in order)
        floor = {label: (n + 1) // 2 for label, n in left.items()}
        moved = set()
        for _ in range(count):
            spare = [i for i in order if i not in moved and left[train[i].get(label_field)] > floor[train[i].get(label_field)]]
            pool = spare or [i for i in order if i not in moved]
            pick = min(pool, key=lambda i: in_valid[train[i].get(label_field)])  # the first such in `order`
            label = train[pick].get(label_field)
            moved.add(pick)
            in_valid[label] += 1
            left[label] -= 1
    return ([e for i, e in enumerate(train) if i not in moved],
            [*valid, *(e for i, e in enumerate(train) if i in moved)])


def interleaved(examples: Sequence[Example], label_field: str) -> list[Example]:
    """`examples` with the labels taking turns (in the order they first come; each label's
    examples in their order), so that the first rows of a race, and a search narrowed to the
    first rows, see the labels about equally: on 4 rows that are all of one label, a prompt
    answering that label for everything would win the first stage."""
    groups: dict[str | None, list[Example]] = {}
    for example in examples:
        groups.setdefault(example.get(label_field), []).append(example)
    turns = [list(reversed(group)) for group in groups.values()]
    out: list[Example] = []
    while len(out) < len(examples):
        for group in turns:
            if group:
                out.append(group.pop())
    return out


def split(examples: Sequence[T], train_ratio: float, seed: int) -> tuple[list[T], list[T]]:
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
