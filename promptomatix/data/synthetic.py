"""Synthetic examples, written by the optimizer model in batches, checked and de-duplicated."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass

from promptomatix.errors import LLMError, ParseError
from promptomatix.models.lm import LM
from promptomatix.run.progress import progress_bar
from promptomatix.scoring.freetext import answer_text, copies_input, COPY_SIMILARITY, loops, similarity, words
from promptomatix.task.spec import Example, TaskSpec
from promptomatix.templates import fill, TemplateSource

# What a synthetic-data template (the `synthetic_prompt` option) may name.
SYNTHETIC_FIELDS = {"description", "instructions", "count", "fields", "label_rule", "seen"}

log = logging.getLogger(__name__)


@dataclass
class GenerationReport:
    requested: int
    accepted: int = 0
    rejected: int = 0
    duplicates: int = 0
    batches: int = 0
    failed_batches: int = 0
    # Free-text references rejected (each counted in `rejected` too) by `reference_problem`.
    copies: int = 0  # the input returned as its answer
    echoes: int = 0  # the task's description, or an answer already kept for another input
    loops: int = 0  # a run of words said over and over

    @property
    def dropped_share(self) -> float:
        """The share of the examples the model wrote that were not kept."""
        written = self.accepted + self.rejected + self.duplicates
        return (self.rejected + self.duplicates) / written if written else 0.0


def generate_examples(spec: TaskSpec, lm: LM, count: int, *, batch_size: int = 5,
                      max_batches: int | None = None, show_progress: bool = True,
                      accept: Callable[[Example], Example | None] | None = None,
                      template: TemplateSource = "synthetic") -> tuple[list[Example], GenerationReport]:
    """Ask `lm` for `count` examples of the task, `batch_size` at a time.

    Each batch is constrained to the task's fields by a JSON schema; for classification the
    batches take turns over the labels (one label a batch, batches no larger than a label's
    share), so the set is balanced. Examples with a missing or
    empty field, or a label outside the set, are rejected, as are those `accept` (the run's data
    steps) turns down (it returns the example, perhaps changed, or None); repeats (same inputs)
    are dropped, and so are free-text examples whose answer is no reference
    (`reference_problem`: counted in `copies`, `echoes` and `loops`).
    Stops early, with a warning, after three batches in a row add nothing new. Raises `LLMError`
    when fewer than two usable examples come back."""
    report = GenerationReport(requested=count)
    batch_size = _batch_size(spec, lm, count, batch_size)
    max_batches = max_batches or 3 * -(-count // batch_size) + 2
    examples: list[Example] = list(spec.sample_examples)[:count]
    seen = {_key(spec, e) for e in examples}
    with progress_bar(total=count, desc="generating examples", unit="ex", enabled=show_progress) as bar:
        bar.update(len(examples))
        stalled = 0  # batches in a row that added nothing: the model has run dry
        while len(examples) < count and report.batches < max_batches and stalled < MAX_STALLED_BATCHES:
            before = len(examples)
            items = _batch(spec, lm, min(batch_size, count - len(examples)), examples, template, report)
            for example in _usable(spec, items, examples, accept, report):
                if _key(spec, example) in seen:
                    report.duplicates += 1
                elif len(examples) < count:
                    seen.add(_key(spec, example))
                    examples.append(example)
                    bar.update(1)
            stalled = 0 if len(examples) > before else stalled + 1
    report.accepted = len(examples)
    if report.accepted < count:
        log.warning("generated %d of %d examples (%d rejected, %d duplicates)", report.accepted, count,
                    report.rejected, report.duplicates)
    if report.accepted < 2:
        raise LLMError(f"{lm.model} wrote only {report.accepted} usable examples in {report.batches} batches "
                       f"({report.rejected} rejected, {report.duplicates} duplicates, "
                       f"{report.failed_batches} unparseable)")
    return examples, report


def _batch_size(spec: TaskSpec, lm: LM, count: int, asked: int) -> int:
    """`asked`, no larger than a label's share (classification) and small enough that the
    batch's longest answer fits the model's max tokens."""
    if spec.labels:
        asked = min(asked, -(-count // len(spec.labels)))
    return max(1, min(asked, (lm.settings.max_tokens - 32) // _token_budget(spec, 1, per_batch=0)))


def _batch(spec: TaskSpec, lm: LM, n: int, examples: list[Example], template: TemplateSource,
           report: GenerationReport) -> list:
    """One batch of `n` items as the model wrote them (unchecked); none when its JSON could not be
    read (counted in `failed_batches` and in the meter)."""
    label = spec.labels[report.batches % len(spec.labels)] if spec.labels else None
    report.batches += 1
    try:
        # The frequency penalty keeps a model from writing one example n times over.
        answer = lm.complete_json(_prompt(spec, n, label, examples, template), _schema(spec, n, label),
                                  max_tokens=_token_budget(spec, n), frequency_penalty=FREQUENCY_PENALTY,
                                  salt=f"batch {report.batches}")
    except ParseError as exc:  # the examples so far are kept
        report.failed_batches += 1
        log.warning("batch %d gave no parseable JSON: %s", report.batches, exc)
        return []
    return answer["examples"] if isinstance(answer["examples"], list) else [answer["examples"]]


def _usable(spec: TaskSpec, items: list, kept: list[Example], accept: Callable[[Example], Example | None] | None,
            report: GenerationReport):
    """The items that are examples of the task with a usable answer (`_check`,
    `reference_problem`) and that `accept` takes (as it returns them); the others counted."""
    for item in items:
        example = _check(spec, item)
        problem = reference_problem(spec, example, kept) if example is not None else None
        if problem is not None:
            setattr(report, problem, getattr(report, problem) + 1)
            example = None
        if example is not None and accept is not None:
            example = accept(example)
        if example is None:
            report.rejected += 1
        else:
            yield example


def _prompt(spec: TaskSpec, n: int, label: str | None, examples: list[Example],
            template: TemplateSource = "synthetic") -> str:
    label_rule = ""
    if spec.labels:
        label_rule = f" The {spec.output_fields[0]} is one of: {', '.join(spec.labels)}."
        if label:
            label_rule += f" In this batch every example has {spec.output_fields[0]} = {label}."
    seen = "\n".join(json.dumps(e, ensure_ascii=False) for e in examples[-5:]) or "(none yet)"
    return fill(template, description=spec.description, instructions=spec.instructions, count=n,
                fields=", ".join(spec.fields), label_rule=label_rule, seen=seen)


MAX_FIELD_CHARS = 160
FREQUENCY_PENALTY = 1.0
MAX_STALLED_BATCHES = 3


def _token_budget(spec: TaskSpec, n: int, per_batch: int = 32) -> int:
    """Enough tokens for `n` examples at the schema's longest, so the JSON is never cut short."""
    per_example = sum(MAX_FIELD_CHARS // 2 + 12 for _ in spec.fields)
    return min(8192, n * per_example + per_batch)


def _schema(spec: TaskSpec, n: int, label: str | None) -> dict:
    properties = {f: {"type": "string", "minLength": 2, "maxLength": MAX_FIELD_CHARS} for f in spec.fields}
    if spec.labels:
        properties[spec.output_fields[0]] = {"type": "string", "enum": [label] if label else list(spec.labels)}
    item = {"type": "object", "properties": properties, "required": list(spec.fields)}
    return {"type": "object", "properties": {"examples": {"type": "array", "items": item, "minItems": n, "maxItems": n}},
            "required": ["examples"]}


def _check(spec: TaskSpec, item) -> Example | None:
    if not isinstance(item, dict):
        return None
    example = {f: str(item.get(f, "")).strip() for f in spec.fields}
    if not all(example.values()):
        return None
    if spec.labels and example[spec.output_fields[0]] not in spec.labels:
        return None
    return example


def answers_by_copying(spec: TaskSpec, example: Example) -> bool:
    """Whether a free-text example's answer is its input returned: a model asked for examples of
    a task it cannot do often writes the input again as the answer, and such rows would teach
    the search that copying scores. For a rewriting task an answer close to its input can be
    right (a corrected typo), so there only an unchanged input counts."""
    if spec.labels:
        return False
    answer = answer_text(example, spec.output_fields)
    if spec.task_type == "rewriting":
        return any(words(answer) == words(example[f]) for f in spec.input_fields)
    return copies_input(answer, example, spec.input_fields)


def reference_problem(spec: TaskSpec, example: Example, kept: list[Example]) -> str | None:
    """Why a free-text example's answer cannot serve as a reference, or None: `copies` (the input
    returned, `answers_by_copying`), `echoes` (the task's description said back, or the answer
    of an example already `kept` for another input: a model writing one answer n times) or
    `loops` (`freetext.loops`). A label example is checked by its label instead (`_check`)."""
    if spec.labels:
        return None
    if answers_by_copying(spec, example):
        return "copies"
    answer = answer_text(example, spec.output_fields)
    if similarity(answer, spec.description) >= COPY_SIMILARITY or \
            any(similarity(answer, answer_text(other, spec.output_fields)) >= COPY_SIMILARITY
                for other in kept if _key(spec, other) != _key(spec, example)):
        return "echoes"
    return "loops" if loops(answer) else None


def _key(spec: TaskSpec, example: Example) -> tuple[str, ...]:
    return tuple(" ".join(example[f].lower().split()) for f in spec.input_fields)
