"""What the meta-prompt backend searches over, and how it spends calls on it.

- `draw_demos`: few-shot demo sets drawn from the training examples, label-balanced for
  classification, in a size from a small ladder (`demo_counts`) and in random order, never
  longer than the model's context allows; for classification, from the half of each label's
  examples most typical of it (`typical_half`); for free text, from the half whose answers are
  of the usual length for their input (`typical_answers`).
- `Race`: successive halving. Every candidate is scored on the first few validation examples
  (for classification, the labels take turns in the validation set: `data.interleaved`);
  the better half goes on to twice as many, and so on until the survivors are scored on the
  whole validation set. A candidate that is clearly worse costs a few calls, not a full pass.
  Answers already given (the first rows of a survivor) are never asked again. Asynchronous: a
  candidate sure of its place goes on while the others of its stage are still scored.
- Calibration: for a label prompt whose model scores labels, the calibrated variant of every
  scored prompt is read from the same answers (`Evaluator.calibrated`), and stands for it unless
  the uncalibrated prompt is clearly better on the rows (`clearly_better`). Free on the user's
  rows; on synthetic ones it is read from content-free inputs, `per_prompt` calls a prompt.
  The winner's calibration is fitted at the end to the user's rows, the validation rows and as
  many unused training examples as the calls left pay for (`calibrated_on_more_rows`).

Ranking: by the objective (quality with the length penalty), where for a label prompt whose
model scores labels the quality is the mean of accuracy and the probability the prompt gives the
right labels (`Evaluation.soft`: on the user's rows their geometric mean, the log score; on
synthetic rows their plain mean, see `scoring.rows.RowsPolicy`). On a few dozen
validation examples many prompts answer equally many right; the probability of the right answer
tells them apart with far less noise, and a prompt that is right by luck is seldom also sure.
The geometric mean because the log score is a proper scoring rule, the plain mean is not: it
pays for sureness, and a confident wrong answer costs it little. Not on synthetic rows, labelled
by the model and some wrongly: there the log score lets one such row sink a prompt sure of the
right answer. (The measurements behind each choice: docs/how-it-works.md.) A challenger replaces the
incumbent only when it ranks higher (`base.keep_best` by `rank`) and answers at least as many
right, so the reported score never goes down in the search (the winner's calibration read again
from more rows at the end may cost it a validation row, `calibrated_on_more_rows`).
"""

from __future__ import annotations

import dataclasses
import math
import random
import re
from collections import Counter
from collections.abc import Callable, Sequence

from promptomatix.backends.base import Candidate, OptimizationTask
from promptomatix.backends.pool import AnswerPool
from promptomatix.errors import BudgetExhausted
from promptomatix.models.lm import CHARS_PER_TOKEN
from promptomatix.task.prompt import Prompt
from promptomatix.task.spec import Example

ANSWER_ROOM = 512  # tokens kept free for the query and the answer
# New prompts a race needs to be worth its calls: with fewer, one lucky row picks the winner.
MIN_RACE = 3


def rank(candidate: Candidate) -> float:
    """The objective, with the soft score averaged into the quality where there is one, and no
    credit for answers that copy their input or echo the prompt (`Evaluation.credited`)."""
    evaluation = candidate.evaluation
    if evaluation.soft is None and not any(evaluation.uncredited):
        return candidate.objective
    score = evaluation.score
    # The objective is quality x length factor; the same factor applies to the ranked quality.
    factor = candidate.objective / score if score > 0 else 1.0
    quality = evaluation.credited
    return (quality if evaluation.soft is None else (quality + evaluation.soft) / 2) * factor


def demo_counts(num_demos: int, labels: Sequence[str], pool: int | None = None) -> list[int]:
    """Demo set sizes to try: for classification, whole rounds of the labels (the same number of
    demos for each), half of `num_demos` and all of it; otherwise half and all. From `pool`
    training examples the largest set takes at most half (for classification, half of a label's
    share), rounded up, so that sets drawn from them differ: with the default `num_demos`, 15
    synthetic examples give 8-demo sets, 40 of the user's 20-demo ones."""
    if num_demos < 1:
        return [0]
    if labels:
        per_label = max(1, num_demos // len(labels))
        if pool is not None:
            per_label = max(1, min(per_label, math.ceil(pool / len(labels) / 2)))
        return sorted({len(labels) * max(1, per_label // 2), len(labels) * per_label})
    if pool is not None:
        num_demos = max(1, min(num_demos, math.ceil(pool / 2)))
    return sorted({max(1, num_demos // 2), num_demos})


def demos_that_fit(prompt: Prompt, train: Sequence[Example], examples: Sequence[Example],
                   context_tokens: int) -> int:
    """How many of `train`'s longest examples `prompt` (without its demos) can carry as demos and
    still fit the context filled with the longest of `examples` (see `fits`): a set drawn at a
    size the context cannot hold would never be scored."""
    bare = prompt.with_(demos=())
    if not train:
        return 0
    per_demo = max(len(bare.with_(demos=(e,)).template) - len(bare.template) for e in train)
    longest = max((len(bare.render(e)) for e in examples), default=len(bare.template))
    room = (context_tokens - ANSWER_ROOM) * CHARS_PER_TOKEN - longest
    return max(0, int(room // max(1, per_demo)))


def draw_demos(train: Sequence[Example], count: int, label_field: str | None, labels: Sequence[str],
               rng: random.Random) -> tuple[Example, ...]:
    """`count` training examples in random order; for classification the same number of each
    label (as far as the training set has them)."""
    if not labels or label_field is None:
        return tuple(rng.sample(list(train), min(count, len(train))))
    pools = {label: [e for e in train if e.get(label_field) == label] for label in labels}
    for pool in pools.values():
        rng.shuffle(pool)
    chosen: list[Example] = []
    while len(chosen) < count and any(pools.values()):
        for label in labels:
            if pools[label] and len(chosen) < count:
                chosen.append(pools[label].pop())
    rng.shuffle(chosen)
    return tuple(chosen)


def typical_half(train: Sequence[Example], label_field: str, at_least: int = 1) -> list[Example]:
    """The training examples most typical of their label: the more typical half of each label's
    examples (at least `at_least` of each, as far as there are), in their order in `train`.

    Typical: the mean cosine of an example's word counts with the other examples of its label,
    less the mean with the other labels' examples. A small model learns a label from demos that
    look like the rest of the label; an atypical one (a fragment, an off-topic text, a wrong
    label, as self-labelled synthetic data has) teaches it the wrong thing. Needs no model call."""
    vectors = [_unit(Counter(re.findall(r"\w+", " ".join(str(v) for k, v in e.items() if k != label_field).lower())))
               for e in train]
    totals: dict[str | None, Counter] = {}
    counts: Counter = Counter()
    for example, vector in zip(train, vectors):
        label = example.get(label_field)
        totals.setdefault(label, Counter()).update(vector)
        counts[label] += 1
    everything: Counter = Counter()
    for total in totals.values():
        everything.update(total)

    def typicality(index: int) -> float:
        label, vector = train[index].get(label_field), vectors[index]
        same = _dot(vector, totals[label]) - _dot(vector, vector)
        other = _dot(vector, everything) - _dot(vector, totals[label])
        others = len(train) - counts[label]
        return same / max(1, counts[label] - 1) - (other / others if others else 0.0)

    kept: set[int] = set()
    for label in {e.get(label_field) for e in train}:
        members = [i for i, e in enumerate(train) if e.get(label_field) == label]
        members.sort(key=typicality, reverse=True)
        kept.update(members[:max(at_least, math.ceil(len(members) / 2))])
    return [e for i, e in enumerate(train) if i in kept]


def typical_answers(train: Sequence[Example], input_fields: Sequence[str], output_fields: Sequence[str],
                    at_least: int = 1) -> list[Example]:
    """The free-text training examples most typical of the task's answers: the half (at least
    `at_least`) whose answer length, and answer length for their input's length, are nearest the
    training set's medians, in their order in `train`.

    Why: a small base model copies its demos' form, above all their length. A demo whose answer
    is far longer or shorter than usual for its input (a one-word summary of a long dialogue, a
    reference that restates it whole) pulls every answer that way; the labels' `typical_half`
    for free text. Needs no model call."""
    if len(train) < 2:
        return list(train)

    def size(example: Example, fields: Sequence[str]) -> int:
        return max(1, sum(len(str(example.get(f, "")).split()) for f in fields))

    answers = [size(e, output_fields) for e in train]
    ratios = [a / size(e, input_fields) for a, e in zip(answers, train)]
    usual_answer, usual_ratio = _median(answers), _median(ratios)

    def distance(index: int) -> float:
        return abs(math.log(answers[index] / usual_answer)) + abs(math.log(ratios[index] / usual_ratio))

    kept = set(sorted(range(len(train)), key=distance)[:max(at_least, math.ceil(len(train) / 2))])
    return [e for i, e in enumerate(train) if i in kept]


def _median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def _unit(counts: Counter) -> Counter:
    norm = math.sqrt(sum(v * v for v in counts.values()))
    return Counter({w: v / norm for w, v in counts.items()}) if norm else Counter()


def _dot(a: Counter, b: Counter) -> float:
    if len(a) > len(b):
        a, b = b, a
    return sum(v * b[w] for w, v in a.items() if w in b)


def clearly_better(first: Sequence[float], second: Sequence[float]) -> bool:
    """Whether per-row scores `first` beat `second` (the same rows) by more than chance: a sign
    test on the rows where they differ, the difference over two standard errors.

    Why calibration needs this and not the ranking: a calibrated prompt gives the right label a
    lower probability on average (the bias it removes was often on the right side), so the soft
    score favours the uncalibrated one; and a few dozen rows rarely separate the two, where test
    sets do (calibrated is better on most demo sets)."""
    wins = sum(1 for a, b in zip(first, second) if a > b)
    losses = sum(1 for a, b in zip(first, second) if a < b)
    return wins - losses > 2 * math.sqrt(wins + losses)


def calibrated_on_more_rows(task: OptimizationTask, best: Candidate) -> Candidate:
    """`best` with its calibration fitted to the validation rows and the training examples not
    among its demos (as many as the calls left pay for, none when no call is left): the offsets
    that make their right labels likeliest (`Evaluator.fitted`), scored on the validation rows
    again (its score may be a row lower: the calibration is no longer fitted to them alone, nor
    to their accuracy); `best` itself when it has no calibration from the user's rows.

    Why more rows: a calibration read from the ~25 validation rows is noisy, and for a label
    prompt its offsets decide many answers. Why fitted, not batch calibration (which the race
    uses, on a handful of rows at its first stages): with labels known, the offsets can use them
    (`scoring.labels.fitted_calibration`). Not only when it
    answers as many of the rows right: the calibration it had was fitted to most of them. One
    prompt: a few calls, none for the rows already answered."""
    evaluator = task.evaluator
    if not best.prompt.calibration or evaluator.content_free:
        return best
    spare = [e for e in task.train if e not in best.prompt.demos]
    remaining = task.meter.remaining_calls()
    spare = spare[:remaining] if remaining is not None else spare
    rows = [*task.valid, *spare]
    bare = best.prompt.with_(calibration=())
    try:
        evaluation = evaluator.evaluate(bare, rows, desc=f"calibrating the best prompt on {len(rows)} rows")
    except BudgetExhausted:  # another limit (cost, time) reached: the calibration it had stands
        return best
    fitted = evaluator.fitted(bare, rows, evaluation)
    if fitted is None:
        return best
    return task.candidate(fitted[0], evaluator.evaluate(fitted[0], task.valid),
                          ", ".join(filter(None, (best.change, f"calibrated on {len(rows)} rows"))))


def demos_unless_clearly_beaten(task: OptimizationTask, best: Candidate, with_demos: Candidate | None,
                                initial: float) -> Candidate:
    """On synthetic rows, `with_demos` (the best-ranked prompt with demos scored on all the
    validation rows) in place of a `best` without demos that answered more of those rows right,
    unless `best` is `clearly_better` on them; and only a `with_demos` scoring above the start
    (`initial`): demos that did not beat the start have no claim. Else `best`. Where the two
    answer equally many rows right, the ranking (soft score, length penalty) stands, as
    everywhere in the search.

    Why: synthetic rows are few (15 by default) and labelled by the model itself, some wrongly,
    and a prompt without demos is tuned to them by its instruction or calibration alone, while a
    small base model answers real inputs by the pattern of real demos."""
    if (not task.rows.prefers_demos or best.prompt.demos or with_demos is None or with_demos.score <= initial
            or best.score <= with_demos.score
            or clearly_better(best.evaluation.per_example, with_demos.evaluation.per_example)):
        return best
    return dataclasses.replace(with_demos, change=", ".join(filter(None, (
        with_demos.change, "kept over a prompt without demos not clearly better on the synthetic rows"))))


def fits(prompt: Prompt, examples: Sequence[Example], context_tokens: int) -> bool:
    """Whether `prompt` filled with the longest of `examples` fits the model's context, with room
    for the answer."""
    longest = max((len(prompt.render(e)) for e in examples), default=len(prompt.template))
    return longest / CHARS_PER_TOKEN + ANSWER_ROOM <= context_tokens


def rungs(valid_size: int, first: int = 4) -> list[int]:
    """The validation rows scored at each stage of a race: doubling from `first` (at least a
    quarter of the set) up to all of them."""
    sizes = [min(valid_size, max(first, math.ceil(valid_size / 4)))]
    while sizes[-1] < valid_size:
        sizes.append(min(valid_size, sizes[-1] * 2))
    return sizes


def race_cost(candidates: int, valid_size: int, per_prompt: int = 0) -> int:
    """Model calls a race of `candidates` prompts costs at most (one call per new row, and
    `per_prompt` for each prompt's calibration, `Evaluator.calibration_inputs`)."""
    total, alive, done = candidates * per_prompt, candidates, 0
    for size in rungs(valid_size):
        total += alive * (size - done)
        done, alive = size, max(1, math.ceil(alive / 2))
    return total


def racers(count: int, stages: int) -> list[int]:
    """How many of `count` new prompts run in each of a race's `stages`: the better half of a
    stage's (rounded up) go on to the next."""
    counts = [count]
    while len(counts) < stages:
        counts.append(min(counts[-1], max(1, math.ceil(counts[-1] / 2))))
    return counts


def sure_to_go_on(scored: dict[int, Candidate], fixed: int, entered: int, gone_on: set,
                  least: int | None = None) -> list[int]:
    """The prompts of a stage, by index, that go on to the next and have not (`gone_on`): the
    first `fixed` (the incumbent) always; of the `entered` others, each scored one (in `scored`)
    that stays among the better half (`racers`) however the others, not scored yet, turn out.
    Ties go to the lower index, as in a sort of all of them by `rank`. With `least`, the stage
    may end with only that many (late prompts not made yet): sure under either."""
    keep = racers(entered if least is None else least, 2)[1]
    unscored = entered - sum(1 for i in scored if i >= fixed)
    ranks = {i: rank(c) for i, c in scored.items() if i >= fixed}
    chosen = [i for i in scored if i < fixed]
    for i, value in ranks.items():
        ahead = sum(1 for j, other in ranks.items() if other > value or (other == value and j < i))
        if ahead + unscored < keep:
            chosen.append(i)
    return sorted(i for i in chosen if i not in gone_on)


def race_fits(candidates: int, valid_size: int, calls: int, per_prompt: int = 0) -> bool:
    """Whether `calls` pay for racing `candidates` new prompts on `valid_size` rows, with one
    call to spare for a rewrite and `per_prompt` for an incumbent not yet calibrated."""
    return race_cost(candidates, valid_size, per_prompt) + per_prompt + 1 <= calls


def search_rows(valid_size: int, calls: int | None, candidates: int, per_prompt: int = 0) -> int:
    """Validation rows a search with `calls` model calls left can use: all of them when the calls
    pay for scoring the starting prompt on them and one race of `MIN_RACE` new prompts (fewer if
    fewer are asked for); else the most rows that do, down to a race's first stage. A race on
    fewer rows beats no race on all of them, the only other outcome of such a budget; below the
    first stage the rows could not tell prompts apart, and all of them at least score the start."""
    if calls is None:
        return valid_size
    race = max(1, min(candidates, MIN_RACE))
    for rows in range(valid_size, rungs(valid_size)[0] - 1, -1):
        if race_fits(race, rows, calls - rows, per_prompt):
            return rows
    return valid_size


class Race:
    """Asynchronous successive halving of `prompts` on `task.valid` (see the module's doc). `run`
    returns the candidates scored at each stage (stage 0 first), the survivors of the last stage
    scored on the whole validation set.

    Asynchronous: every answer is asked on one pool (`pool.AnswerPool`), and a prompt goes on to
    the next stage as soon as it is sure to be among the better half of its stage, whatever the
    prompts still being scored turn out to score (`sure_to_go_on`), while those are scored. The
    same prompts go on as if each stage waited for all of its prompts, so the race makes the
    same calls and picks the same winner at any number of threads; only the waiting is gone."""

    def __init__(self, task: OptimizationTask):
        self.task = task
        self.admitted: list[tuple[Prompt, str]] = []  # the late prompts that raced, with their changes

    def run(self, prompts: Sequence[Prompt], desc: str, changes: Sequence[str] = (), incumbent: bool = False,
            late: Sequence[Callable[[], tuple[Prompt, str] | None]] = (),
            admit: Callable[[Prompt], bool] = lambda prompt: True) -> list[list[Candidate]]:
        """`changes[i]` says how `prompts[i]` was made (kept on its candidates). With `incumbent`,
        `prompts[0]` is the prompt to beat, already answered on every row: it runs in every stage
        (its calibration re-read on the rows) and takes no survivor's place, so the race costs
        `race_cost` of the others. `late`: calls that each make one more prompt and its change
        (or None), run on the race's pool before any answer; their prompts race after `prompts`,
        in the order of `late`, each that `admit` lets in (asked in that order too)."""
        racing = _Racing(self, prompts, desc, changes, 1 if incumbent else 0, len(late), admit)
        self.task.evaluator.ask_calibration_inputs(racing.known(), desc=f"{desc}, content-free inputs")
        with AnswerPool(self.task.evaluator, self.task.config.num_threads, desc) as pool:
            racing.start(pool, late)
            while pool.busy:
                racing.done(pool, pool.next_done())
        return racing.stages()

    def best_variant(self, prompt: Prompt, rows: Sequence[Example], evaluation, change: str = "") -> Candidate:
        """The calibrated variant of the prompt, read from the same answers, unless the prompt as
        scored is clearly better on `rows` (`clearly_better`); the prompt as scored when its
        model gives no label scores."""
        plain = self.task.candidate(prompt, evaluation, change)
        calibrated = self.task.evaluator.calibrated(prompt, rows, evaluation)
        if calibrated is None:
            return plain
        other = self.task.candidate(*calibrated, ", ".join(filter(None, (change, "calibrated"))))
        return plain if clearly_better(plain.evaluation.per_example, other.evaluation.per_example) else other


class _Racing:
    """A race under way (see `Race`): its prompts by index (late ones after the others, None until
    made), the candidates each stage scored, and which went on."""

    def __init__(self, race: Race, prompts: Sequence[Prompt], desc: str, changes: Sequence[str], fixed: int,
                 late: int, admit: Callable[[Prompt], bool]):
        self.race, self.desc, self.fixed, self.admit = race, desc, fixed, admit
        self.valid = list(race.task.valid)
        self.sizes = rungs(len(self.valid))
        self.change = dict(zip((p.template for p in prompts), changes))
        # calibration is re-estimated on the rows
        self.alive: list[Prompt | None] = [*(p.with_(calibration=()) for p in prompts), *([None] * late)]
        self.pending = list(range(len(prompts), len(prompts) + late))  # late prompts not let in or out yet
        self.made: dict[int, tuple[Prompt, str] | None] = {}  # made, waiting for an earlier one
        self.dropped = 0  # late calls that made no prompt, or one `admit` kept out
        self.scored: list[dict[int, Candidate]] = [{} for _ in self.sizes]
        self.went_on: list[set[int]] = [set() for _ in self.sizes]  # the prompts of each stage sent to the next

    def known(self) -> list[Prompt]:
        return [p for p in self.alive if p is not None]

    def counts(self, least: bool = False) -> list[int]:
        """New prompts in each stage: at most (every late prompt let in), or `least` (none)."""
        new = len(self.alive) - self.fixed - self.dropped - (len(self.pending) if least else 0)
        return racers(new, len(self.sizes))

    def start(self, pool: AnswerPool, late: Sequence[Callable[[], tuple[Prompt, str] | None]]) -> None:
        self.expect(pool)
        for index, call in zip(self.pending, late):
            pool.later((index, -1), call)
        for index, prompt in enumerate(self.alive):
            if prompt is not None:
                self.enter(pool, index, 0)

    def expect(self, pool: AnswerPool) -> None:
        for order, count in enumerate(self.counts()):
            pool.expect(self.stage(order), self.sizes[order], self.fixed + count, order)

    def stage(self, order: int) -> str:
        return f"{self.desc}, {self.sizes[order]} rows"

    def enter(self, pool: AnswerPool, index: int, order: int) -> None:
        prompt = self.alive[index]
        assert prompt is not None  # only made prompts enter
        # a late prompt's calibration inputs with its first rows (the others' were asked before the race)
        extra = self.race.task.evaluator.calibration_inputs(prompt) if order == 0 else []
        pool.add((index, order), prompt, [*extra, *self.valid[:self.sizes[order]]], self.stage(order))

    def done(self, pool: AnswerPool, key: tuple[int, int]) -> None:
        index, order = key
        if order < 0:  # a late prompt made (or not)
            self.made[index] = pool.made(key)  # type: ignore[assignment]
            self.let_in(pool)
            return
        prompt, rows = self.alive[index], self.valid[:self.sizes[order]]
        assert prompt is not None
        evaluation = self.race.task.evaluator.evaluate(prompt, rows)  # every answer is in: no call
        pool.scored(key, evaluation)
        self.scored[order][index] = self.race.best_variant(prompt, rows, evaluation,
                                                           self.change.get(prompt.template, ""))
        self.go_on(pool, order)

    def let_in(self, pool: AnswerPool) -> None:
        """The late prompts made, in their order, each raced if `admit` lets it in."""
        while self.pending and self.pending[0] in self.made:
            index = self.pending.pop(0)
            made = self.made.pop(index)
            if made is None or not self.admit(made[0]):
                self.dropped += 1
                continue
            prompt, change = made
            self.race.admitted.append(made)
            self.alive[index] = prompt.with_(calibration=())
            self.change[prompt.template] = change
            self.enter(pool, index, 0)
        self.expect(pool)
        for order in range(len(self.sizes)):
            self.go_on(pool, order)

    def go_on(self, pool: AnswerPool, order: int) -> None:
        """The prompts of stage `order` sure of their place sent to the next stage."""
        if order + 1 == len(self.sizes):
            return
        for chosen in sure_to_go_on(self.scored[order], self.fixed, self.counts()[order], self.went_on[order],
                                    least=self.counts(least=True)[order]):
            self.went_on[order].add(chosen)
            self.enter(pool, chosen, order + 1)

    def stages(self) -> list[list[Candidate]]:
        return [[scored[i] for i in sorted(scored)] for scored in self.scored]
