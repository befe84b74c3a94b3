"""Free-text answers: the room an answer is given, and the answers that are no answer at all.

A small base model does not stop on its own: without a cap fitted to the task it writes until
the model's token limit, and every call costs that (the start of a text-simplification run took
4.5 s a row on the embedded model). `answer_tokens` gives an answer the room the task's
references take, with headroom.

A score can also reward an answer that is no answer: ROUGE-L against a reference close to its
source rewards returning the input unchanged (a simplification run registered a prompt that
copied 53 of 60 test inputs). `degenerate` counts the answers that copy their input where the
reference does not, that are empty, or that echo the prompt (a demo's answer parroted); the
search gives a copied or echoing answer no credit (`Evaluation.credited`), and a run does not
register a prompt that mostly copies.
Nothing here calls a model.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from difflib import SequenceMatcher

from promptomatix.models.lm import CHARS_PER_TOKEN
from promptomatix.task.prompt import field_label, Prompt
from promptomatix.task.spec import Example

# Two texts whose words match this much (difflib's ratio over word sequences) are one text.
COPY_SIMILARITY = 0.9
HEADROOM = 1.5  # an answer may run half again as long as the longest usual reference
MIN_ANSWER_TOKENS = 16
_WORD = re.compile(r"\w+")


def words(text: str) -> list[str]:
    return _WORD.findall(str(text).lower())


def similarity(first: str, second: str) -> float:
    """How much two texts' word sequences match, 0 to 1 (1: the same words in the same order)."""
    a, b = words(first), words(second)
    if not a or not b:
        return 0.0
    matcher = SequenceMatcher(None, a, b, autojunk=False)
    if matcher.real_quick_ratio() < COPY_SIMILARITY:  # an upper bound: most pairs end here
        return matcher.real_quick_ratio()
    return matcher.ratio()


def answer_text(example: Example, fields: Sequence[str]) -> str:
    return "\n".join(str(example.get(f, "")) for f in fields)


def copies_input(text: str, example: Example, input_fields: Sequence[str]) -> bool:
    """Whether `text` is one of the example's inputs returned (nearly) unchanged."""
    return any(similarity(text, str(example.get(f, ""))) >= COPY_SIMILARITY for f in input_fields)


def copied(prompt: Prompt, examples: Sequence[Example], predictions: Sequence[Example]) -> tuple[bool, ...]:
    """For each row, whether the answer copies the input while the reference does not (a row
    whose reference copies its input may be answered by copying: the data says it is the task).
    All False for a label prompt, whose answers are labels."""
    if prompt.labels:
        return tuple(False for _ in predictions)
    fields, inputs = prompt.output_fields, prompt.input_fields
    return tuple(copies_input(answer_text(p, fields), e, inputs) and not copies_input(answer_text(e, fields), e, inputs)
                 for p, e in zip(predictions, examples))


def echoes_prompt(prompt: Prompt, answer: str, inputs: Example | None = None) -> bool:
    """Whether `answer` repeats the prompt rather than answering it: its instruction, a field
    line of the prompt's own format (`Dialogue: ...`) that starts a new example, or `ECHO_RUN`
    words in a row of a demo's answer, two of them words that `inputs` (the input answered)
    does not have.

    A small model parrots its demos: a SAMSum prompt answered "Lenny and Bob are meeting to play
    Isle of Skye and other games on Sunday at 2 pm" about trousers, a demo's summary with the
    names swapped; ROUGE-L still gives such an answer some credit for the names."""
    if len(words(prompt.instruction)) >= 5 and similarity(answer, prompt.instruction) >= COPY_SIMILARITY:
        return True
    lines = [line.strip().lower() for line in answer.splitlines()]
    heads = {f"{field_label(f).lower()}:" for f in prompt.input_fields}
    if any(line.startswith(head) for line in lines for head in heads):
        return True
    if not prompt.demos:
        return False
    # Runs that bring in words the input does not have (two at least): a demo's content, not
    # the input's words in a demo's phrasing.
    own = set(words(answer_text(inputs or {}, prompt.input_fields)))
    runs = {run for run in _runs(words(answer)) if sum(w not in own for w in run) >= 2}
    return any(runs & _runs(words(answer_text(demo, prompt.output_fields))) for demo in prompt.demos)


ECHO_RUN = 6  # words in a row: fewer are common phrases ("is going to the"), more are a copy


def _runs(sequence: list[str]) -> set[tuple[str, ...]]:
    return {tuple(sequence[i:i + ECHO_RUN]) for i in range(len(sequence) - ECHO_RUN + 1)}


def uncredited(prompt: Prompt, examples: Sequence[Example], predictions: Sequence[Example]) -> tuple[bool, ...]:
    """For each row, whether the answer earns no credit in the search: it copies its input
    (`copied`) or echoes the prompt (`echoes_prompt`). All False for a label prompt."""
    if prompt.labels:
        return tuple(False for _ in predictions)
    fields = prompt.output_fields
    return tuple(c or echoes_prompt(prompt, answer_text(p, fields), e)
                 for c, p, e in zip(copied(prompt, examples, predictions), predictions, examples))


@dataclass(frozen=True)
class Degenerate:
    """How many of `rows` answers copy their input (where the reference does not), are empty,
    or echo the prompt."""

    rows: int
    copies: int = 0
    empty: int = 0
    echoes: int = 0

    @property
    def mostly_copies(self) -> bool:
        return self.rows > 0 and self.copies > self.rows / 2

    @property
    def any(self) -> bool:
        return bool(self.copies or self.empty or self.echoes)

    def describe(self) -> str:
        """`of 33 answers, 12 copy their input, 1 are empty`: what a person reads, or ''."""
        parts = [f"{count} {text}" for count, text in ((self.copies, "copy their input"), (self.empty, "are empty"),
                                                        (self.echoes, "echo the prompt")) if count]
        return f"of {self.rows} answers, " + ", ".join(parts) if parts else ""

    def as_metrics(self) -> dict[str, float]:
        return {"answers_copying_input": self.copies, "answers_empty": self.empty, "answers_echoing_prompt": self.echoes}


def degenerate(prompt: Prompt, examples: Sequence[Example], predictions: Sequence[Example]) -> Degenerate:
    """The degenerate answers among `predictions` to `examples` (see the module's doc)."""
    if prompt.labels:
        return Degenerate(len(predictions))
    texts = [answer_text(p, prompt.output_fields) for p in predictions]
    return Degenerate(len(predictions), sum(copied(prompt, examples, predictions)),
                      sum(1 for t in texts if not t.strip()),
                      sum(1 for t, e in zip(texts, examples) if t.strip() and echoes_prompt(prompt, t, e)))


def _answer_chars(example: Example, fields: Sequence[str]) -> int:
    """Characters of an answer as the prompt's format writes it: each field's line after the first."""
    first, *rest = fields
    return len(str(example.get(first, ""))) + sum(len(field_label(f)) + 3 + len(str(example.get(f, ""))) for f in rest)


def answer_tokens(prompt: Prompt, references: Sequence[Example]) -> int:
    """The answer cap for `prompt`: the tokens of the longest usual reference (the 90th
    percentile of `references`' lengths, so one outlier does not set it) with `HEADROOM`, at
    least `MIN_ANSWER_TOKENS`; 0 (the model's own cap) for a label prompt or no references."""
    sizes = sorted(_answer_chars(e, prompt.output_fields) for e in references)
    if prompt.labels or not sizes:
        return 0
    usual = sizes[min(len(sizes) - 1, math.ceil(0.9 * len(sizes)) - 1)]
    return max(MIN_ANSWER_TOKENS, math.ceil(usual / CHARS_PER_TOKEN * HEADROOM))


LOOP_RUN = 4  # words in a row that, said LOOP_TIMES times over, are a model going round in circles
LOOP_TIMES = 3


def loops(text: str) -> bool:
    """Whether `text` says one run of `LOOP_RUN` words `LOOP_TIMES` times or more: a base model
    that has lost the thread ("I have to study hard and study hard, and I have to study hard,
    and I have to study hard" as a synthetic summary) writes to its cap that way."""
    sequence = words(text)
    runs = [tuple(sequence[i:i + LOOP_RUN]) for i in range(len(sequence) - LOOP_RUN + 1)]
    return any(runs.count(run) >= LOOP_TIMES for run in set(runs))


def mean_words(examples: Sequence[Example], fields: Sequence[str]) -> float:
    """The mean length in words of `examples`' `fields` (0 when there are none)."""
    if not examples:
        return 0.0
    return sum(len(words(answer_text(e, fields))) for e in examples) / len(examples)
