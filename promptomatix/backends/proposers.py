"""The ways the meta-prompt search makes new prompts from the incumbent, and each one's share of
a round.

A round of `size` new prompts is shared out by `share` (a `Mix`), then each proposer makes its
count, in this order (the order draws from the search's random generator, so a seed gives one
search):

- `fewer_demos`: the incumbent with the smallest demo count of the ladder (`search.demo_counts`);
  a model that needs fewer wins with the fewer, the length penalty breaking a tie;
- `new_demo_sets`: new demo sets of the full size, from the typical pool first (then from all
  training rows, when the pool has no new set left); from the second round on, every other one
  instead swaps a third of the incumbent's demos (`mutated`);
- `reordered`: the incumbent's demos in another order;
- instruction rewrites: made by the backend, which asks the optimizer model
  (`MetaPromptBackend.rewrites`); they keep the incumbent's demos.

A proposer returns `(prompt, change)` pairs, `change` saying in a few words what differs. None
calls a model.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from promptomatix.backends.search import draw_demos
from promptomatix.task.prompt import Prompt
from promptomatix.task.spec import Example

Proposal = tuple[Prompt, str]

# One rewrite in this many candidates (at least one a round): a strong optimizer model gains
# most from rewrites, a small one from demos. A round of one candidate alternates.
CANDIDATES_PER_REWRITE = 4
# Rounds this large also try the incumbent's demos reordered and fewer of them: in smaller ones
# every place goes to new demo sets, which gain a small model most.
ROUND_FOR_EDITS = 4


@dataclass(frozen=True)
class Mix:
    """How many prompts of a round each proposer makes."""

    fewer: int
    new: int
    reordered: int
    rewrites: int


def share(size: int, step: int, *, with_demos: bool, incumbent_demos: int, fewest: int) -> Mix:
    """The round's `size` places, shared out. Without demos to draw (`with_demos` false: no
    training rows, or demos turned off) every place is a rewrite. `fewest` is the smallest demo
    count of the ladder: the incumbent tries it when it has more."""
    if not with_demos:
        return Mix(0, 0, 0, size)
    rewrites = max(1, size // CANDIDATES_PER_REWRITE) if size >= 2 else step % 2
    reordered = 1 if incumbent_demos >= 2 and size >= ROUND_FOR_EDITS else 0
    fewer = 1 if rewrites < size and incumbent_demos > fewest and size >= ROUND_FOR_EDITS else 0
    return Mix(fewer, size - rewrites - reordered - fewer, reordered, rewrites)


def fewer_demos(incumbent: Prompt, count: int, fewest: int, label_field: str | None,
                rng: random.Random) -> list[Proposal]:
    """The incumbent with `fewest` of its demos (label-balanced), `count` times (0 or 1)."""
    return [(incumbent.with_(demos=draw_demos(incumbent.demos, fewest, label_field, incumbent.labels, rng)),
             "fewer demos") for _ in range(count)]


def new_demo_sets(incumbent: Prompt, count: int, step: int, pools: Sequence[Sequence[Example]], size: int,
                  label_field: str | None, rng: random.Random, tried: set[str]) -> list[Proposal]:
    """`count` prompts with the incumbent's instruction and new demos of `size`: drawn whole, or
    (from the second round on, every other one) the incumbent's with a third swapped. Each from
    the first of `pools` that gives a demo set not `tried` before (or from the last)."""
    seen = set(tried)
    proposals = []
    for index in range(count):
        for pool in pools:
            if step > 1 and index % 2 and incumbent.demos:
                demos = mutated(incumbent.demos, pool, label_field, rng)
                change = "demos changed"
            else:
                demos = draw_demos(pool, size, label_field, incumbent.labels, rng)
                change = f"{len(demos)} new demos"
            prompt = incumbent.with_(demos=demos)
            if prompt.template not in seen:
                break
        seen.add(prompt.template)
        proposals.append((prompt, change))
    return proposals


def reordered(incumbent: Prompt, count: int, rng: random.Random) -> list[Proposal]:
    """The incumbent's demos shuffled, `count` times."""
    proposals = []
    for _ in range(count):
        demos = list(incumbent.demos)
        rng.shuffle(demos)
        proposals.append((incumbent.with_(demos=tuple(demos)), "demos reordered"))
    return proposals


def mutated(demos: tuple[Example, ...], train: Sequence[Example], label_field: str | None,
            rng: random.Random) -> tuple[Example, ...]:
    """`demos` with a third of them (at least one) swapped for other training examples of the
    same label."""
    swapped = list(demos)
    for index in rng.sample(range(len(swapped)), max(1, len(swapped) // 3)):
        label = swapped[index].get(label_field) if label_field else None
        pool = [e for e in train if e not in swapped and (label is None or e.get(label_field or "") == label)]
        if pool:
            swapped[index] = rng.choice(pool)
    return tuple(swapped)
