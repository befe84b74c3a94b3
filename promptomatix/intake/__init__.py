"""Intake: from the user's raw input to a `TaskSpec`, with the intake model's help.

What the request says in so many words is read first, by rules, in `intake.rules`.

The original Promptomatix markers are understood: `[TASK]`, `[FEW_SHOT_EXAMPLES]`,
`[CONTEXT]`, `[QUESTION]`, `[INSTRUCTIONS]`, `[RULES]`, `[OUTPUT_FORMAT]`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
import logging
import re
from collections.abc import Sequence

from promptomatix.errors import ConfigError, LLMError
from promptomatix.intake.rules import read_request, RuleReading
from promptomatix.models.lm import choice_mode, LM
from promptomatix.scoring.labels import best_label
from promptomatix.task.spec import Example, TaskSpec
from promptomatix.task.types import get_task_type, TASK_TYPES
from promptomatix.templates import fill, TemplateSource

log = logging.getLogger(__name__)

MARKERS = ("TASK", "FEW_SHOT_EXAMPLES", "CONTEXT", "QUESTION", "INSTRUCTIONS", "RULES", "OUTPUT_FORMAT")
_MARKER_RE = re.compile(r"^\s*\[(" + "|".join(MARKERS) + r")\]\s*:?", re.MULTILINE)
_FIELD_RE = re.compile(r"^[a-z][a-z0-9_]*$")
# What an intake template (the `intake_prompt` option) may name.
INTAKE_FIELDS = {"task_types", "request", "hints"}


def parse_markers(raw_input: str) -> dict[str, str]:
    """Split marked-up input into its sections; text before any marker counts as `TASK`."""
    parts = _MARKER_RE.split(raw_input)
    sections = {"TASK": parts[0].strip()} if parts[0].strip() else {}
    for marker, body in zip(parts[1::2], parts[2::2]):
        sections[marker] = (sections.get(marker, "") + "\n" + body.strip()).strip()
    return sections


def parse_examples(text: str) -> list[Example]:
    """`Field: value` lines, examples separated by blank lines (or by a repeated first field)."""
    examples: list[Example] = []
    current: Example = {}
    for line in text.splitlines():
        head, sep, value = line.partition(":")
        key = _snake(head) if sep else ""
        if not line.strip() or (key and key in current):
            if current:
                examples.append(current)
            current = {}
        if sep and key:
            current[key] = value.strip()
    if current:
        examples.append(current)
    return examples


def starting_instruction(sections: dict[str, str]) -> str:
    """The user's own words are the seed prompt: the task plus any rules and format they gave."""
    parts = [sections.get("TASK", "")]
    for marker, title in (("INSTRUCTIONS", "Instructions"), ("RULES", "Rules"), ("OUTPUT_FORMAT", "Output format")):
        if sections.get(marker):
            parts.append(f"{title}:\n{sections[marker]}")
    return "\n\n".join(p for p in parts if p)


# Where a part of the reading came from, as the run's first lines say it.
FROM_FLAG = "your option"
FROM_REQUEST = "the request"
FROM_MODEL = "the model"
FROM_DATA = "your data"
FROM_DEFAULT = "the task type's default"
FROM_ORIGIN = "the version started from"
FROM_RESUMED = "the run resumed"
# The option that sets each part, named wherever a reading is shown or doubted.
PART_FLAGS = {"type": "--task-type", "fields": "--input-fields / --output-fields", "labels": "--labels"}


@dataclass(frozen=True)
class Reading:
    """Intake's reading of a request: the task spec, where each part of it came from (`sources`:
    part -> source, parts as in `PART_FLAGS`), and what intake was unsure of (`doubts`, each a
    sentence naming the option that settles it)."""

    spec: TaskSpec
    sources: tuple[tuple[str, str], ...]
    doubts: tuple[str, ...] = ()

    def source(self, part: str) -> str:
        return dict(self.sources).get(part, "")

    def with_labels(self, labels: Sequence[str], source: str) -> Reading:
        sources = tuple((part, source if part == "labels" else src) for part, src in self.sources)
        doubts = tuple(d for d in self.doubts if "--labels" not in d)
        return Reading(dataclasses.replace(self.spec, labels=tuple(labels)), sources, doubts)

    def lines(self) -> list[str]:
        """What was understood, a line a part, then the options that change it."""
        spec = self.spec
        lines = [f"read the task as:  {spec.task_type} (from {self.source('type')})",
                 f"  fields:          {', '.join(spec.input_fields)} -> {', '.join(spec.output_fields)} "
                 f"(from {self.source('fields')})"]
        if spec.task_type == "classification":
            shown = ", ".join(spec.labels) if spec.labels else "(none yet: they come from the data)"
            lines.append(f"  labels:          {shown} (from {self.source('labels')})")
        parts = ("type", "fields", "labels") if spec.task_type == "classification" else ("type", "fields")
        lines.append(f"  to change it:    {', '.join(PART_FLAGS[p] for p in parts)}")
        return lines


# Above this share of the winner's answers naming no label, its labels are not the task's.
UNMAPPED_ANSWERS = 0.2


def announce(reading: Reading) -> None:
    """Say what was understood, before the calls are spent: INFO lines, a WARNING per doubt."""
    for line in reading.lines():
        log.info("%s", line)
    for doubt in reading.doubts:
        log.warning("check the reading: %s", doubt)


def reading_to_dict(reading: Reading) -> dict:
    return {"task_type": reading.spec.task_type, "input_fields": list(reading.spec.input_fields),
            "output_fields": list(reading.spec.output_fields), "labels": list(reading.spec.labels),
            "sources": dict(reading.sources), "doubts": list(reading.doubts)}


def answer_doubts(spec: TaskSpec, unmapped: int, answers: int) -> list[str]:
    """A doubt when many of the winner's answers name none of the task's labels."""
    if spec.task_type != "classification" or not answers or unmapped <= UNMAPPED_ANSWERS * answers:
        return []
    return [f"{unmapped} of {answers} answers of the final prompt named none of the labels "
            f"{', '.join(spec.labels)}; check them ({PART_FLAGS['labels']})"]


def extract_task_spec(raw_input: str, lm: LM, **options) -> TaskSpec:
    """`read_task(...).spec`: the task spec alone."""
    return read_task(raw_input, lm, **options).spec


def read_task(raw_input: str, lm: LM, *, task_type: str | None = None, input_fields: Sequence[str] | None = None,
              output_fields: Sequence[str] | None = None, columns: Sequence[str] | None = None,
              labels: Sequence[str] | None = None, labels_from: str = FROM_DATA,
              template: TemplateSource = "intake") -> Reading:
    """Read the task: first what the request says in so many words (`intake.rules.read_request`: the
    labels it lists, the cues of its type, its nouns), then the intake model for the rest
    (description, and whatever the rules left open), its guesses checked against the request.
    Explicit arguments win: `task_type`, the fields, `labels` (from `labels_from`: the user's
    data or an option). `columns` (the user's data columns) restricts field names to them."""
    sections = parse_markers(raw_input)
    instruction = starting_instruction(sections)
    if not instruction:
        raise ConfigError("raw input has no task text: add a sentence saying what the task is")
    request = _one_line(instruction)
    rules = read_request(instruction)
    doubts: list[str] = []
    kind: str | None
    if task_type:
        kind, type_source = task_type, FROM_FLAG
    elif rules.clear:
        kind, type_source = rules.task_type, f'{FROM_REQUEST} ("{rules.cue}")'
    else:
        kind, type_source = choose_task_type(request, lm), FROM_MODEL
    answer = lm.complete_json(
        fill(template, task_types=", ".join(TASK_TYPES.names()), request=request, hints=_hints(sections, columns)),
        _schema(kind, columns),
        max_tokens=300,
        temperature=0.0,  # reading, not writing: greedy follows the pattern best
    )
    if type_source == FROM_MODEL:
        kind, type_source = _settle_type(kind or answer["task_type"], rules, doubts)
    if kind is None or kind not in TASK_TYPES.names():  # a provider that does not enforce the schema's enum
        raise LLMError(f"{lm.model} named an unknown task type {kind!r}; pass --task-type")
    ins, outs, fields_source = _fields(kind, sections, rules, answer, request, input_fields, output_fields, columns)
    label_set, labels_source = _label_set(kind, labels, labels_from, rules, answer, instruction, columns, doubts)
    samples = tuple(_map_samples(parse_examples(sections.get("FEW_SHOT_EXAMPLES", "")), ins, outs))
    spec = TaskSpec(
        description=_description(answer.get("description"), instruction),
        input_fields=ins,
        output_fields=outs,
        task_type=kind,
        labels=label_set if kind == "classification" else (),
        sample_examples=samples,
        instructions=instruction,
    )
    return Reading(spec, (("type", type_source), ("fields", fields_source), ("labels", labels_source)),
                   tuple(doubts))


def _label_set(kind: str, labels: Sequence[str] | None, labels_from: str, rules, answer: dict, instruction: str,
               columns: Sequence[str] | None, doubts: list[str]) -> tuple[tuple[str, ...], str]:
    """The labels and where they came from: given (`labels`, from `labels_from`), listed in the
    request, else the model's proposal (a doubt added when a classification has only that)."""
    if labels:
        return tuple(labels), labels_from
    if rules.labels:
        return tuple(rules.labels), FROM_REQUEST
    proposed = answer.get("labels") if isinstance(answer.get("labels"), list) else []
    label_set, labels_source = _labels_from(proposed, instruction)
    if kind == "classification" and not columns and labels_source == FROM_MODEL:
        doubts.append(f"the request names no labels; the model guessed {', '.join(label_set) or 'none'}: "
                      f"check them, or set {PART_FLAGS['labels']}")
    return tuple(label_set), labels_source


def _description(proposed, instruction: str) -> str:
    """The model's one-sentence description when it is about this request (most of its words are
    the request's), else the request itself: a small model may copy its template's example."""
    text = str(proposed or "").strip()
    words = set(re.findall(r"[a-z]{3,}", text.lower()))
    ours = set(re.findall(r"[a-z]{3,}", instruction.lower()))
    if not words or len(words & ours) < DESCRIPTION_OVERLAP * len(words):
        return instruction.strip()
    return text


# Share of a model-written description's words that must come from the request.
DESCRIPTION_OVERLAP = 0.5


def _settle_type(picked: str, rules: RuleReading, doubts: list[str]) -> tuple[str, str]:
    """The model's type where the rules were not clear: it breaks a tie among the types the
    request's words point to; a pick outside them loses to the rules' best. Either way a
    disagreement is a doubt."""
    if rules.task_type is None:
        return picked, FROM_MODEL
    if picked == rules.task_type:
        return picked, f'{FROM_REQUEST} ("{rules.cue}") and {FROM_MODEL}'
    chosen = picked if picked in rules.candidates() else rules.task_type
    doubts.append(f"the task type is unsure: the request's words point to {rules.task_type}, the model read "
                  f"{picked}; using {chosen}. Set {PART_FLAGS['type']} if that is wrong")
    return chosen, FROM_MODEL if chosen == picked else f'{FROM_REQUEST} ("{rules.cue}")'


def _fields(kind: str, sections: dict[str, str], rules: RuleReading, answer: dict, request: str,
            input_fields: Sequence[str] | None, output_fields: Sequence[str] | None,
            columns: Sequence[str] | None) -> tuple[tuple[str, ...], tuple[str, ...], str]:
    """The task's fields, each side from the first that names it: an option, the request's own
    field names or markers, the data's columns (the model picking), the request's nouns, the
    model's names where the request uses their words, the task type's defaults."""
    defaults = get_task_type(kind)
    labels = {label.lower() for label in rules.labels}  # a label is a value of a field, never its name
    named_ins = model_ins = [n for n in _clean_fields(answer.get("input_fields"), columns) if n not in labels]
    named_outs = model_outs = [n for n in _clean_fields(answer.get("output_fields"), columns) if n not in labels]
    if not columns:  # a name from the template's examples, not the request, is no reading of it
        model_ins, model_outs = _in_request(model_ins, request), _in_request(model_outs, request)
    marked = tuple(f for f in ("context", "question") if f == "question" or "CONTEXT" in sections) \
        if "QUESTION" in sections else ()
    noun_in = _fuller(rules.input_noun, named_ins) if rules.input_noun and not columns else ()
    noun_out = _fuller(rules.output_noun, named_outs) if rules.output_noun and not columns else ()
    ins, in_source = _first((input_fields, FROM_FLAG), (rules.input_fields, FROM_REQUEST), (marked, FROM_REQUEST),
                            (model_ins if columns else (), FROM_DATA), (noun_in, FROM_REQUEST),
                            (model_ins, FROM_MODEL), (defaults.input_fields, FROM_DEFAULT))
    outs, out_source = _first((output_fields, FROM_FLAG), (rules.output_fields, FROM_REQUEST),
                              (model_outs if columns else (), FROM_DATA),
                              (tuple(n for n in noun_out if n not in ins), FROM_REQUEST),
                              (tuple(n for n in model_outs if n not in ins), FROM_MODEL),
                              (tuple(n for n in defaults.output_fields if n not in ins), FROM_DEFAULT),
                              (("output",), FROM_DEFAULT))
    outs = tuple(f for f in outs if f not in ins) or ("output",)
    source = in_source if in_source == out_source else f"{in_source} (inputs), {out_source} (outputs)"
    return ins, outs, source


def _fuller(noun: str, names: Sequence[str]) -> tuple[str, ...]:
    """The request's `noun`, or the model's name built on it ("review" -> "review_text"): as much
    the request's word, and a field label ("Review text:") a small model writes free text after,
    where after a bare "Review:" it tends to write a label."""
    return next(((n,) for n in names if noun in n.split("_")), (noun,))


def _first(*choices: tuple[Sequence[str] | None, str]) -> tuple[tuple[str, ...], str]:
    for names, source in choices:
        if names:
            return tuple(names), source
    raise AssertionError("the last choice is never empty")


def _in_request(names: list[str], request: str) -> list[str]:
    """The names whose every word the request uses (a plural "s" aside)."""
    words = set(re.findall(r"[a-z0-9]+", request.lower()))
    return [n for n in names if all(w in words or w + "s" in words or w.rstrip("s") in words
                                    for w in n.split("_"))]


# A request with no content: its type scores are the model's bias among the type names.
NEUTRAL_REQUEST = "N/A"


def choose_task_type(request: str, lm: LM) -> str | None:
    """The task type of `request` for a model that scores options (the embedded one): the type
    names' scores after the `task_type` template, calibrated by those for a content-free request.
    A small base model answering intake's JSON reads nearly every request as its second example's
    type; measured on 16 requests of the 8 built-in types, JSON named 5 right and this 11. None
    for other models: they name the type in intake's answer (under a schema where supported)."""
    if choice_mode(lm.model) != "score":
        return None
    names = TASK_TYPES.names()
    types = "\n".join(f"- {name}: {get_task_type(name).hint}" for name in names)
    # rstrip: the answer follows "Type:" on its line, not the template file's final newline
    scores = [lm.choose(fill("task_type", task_types=types, request=text).rstrip(), names).scores
              for text in (request, NEUTRAL_REQUEST)]
    first, neutral = scores
    if first is None or neutral is None or len(first) != len(names) or len(neutral) != len(names):
        return None
    return best_label(names, first, neutral)


def _labels_from(proposed, request: str) -> tuple[tuple[str, ...], str]:
    """The model's labels and their source; when the request itself names two or more of them,
    only those, as the request spells them (a small model likes to add labels from its
    examples)."""
    proposed = _dedupe(str(x).strip() for x in proposed if str(x).strip())
    named = []
    for label in proposed:
        found = re.search(rf"\b{re.escape(label)}\b", request, re.IGNORECASE)
        if found:
            named.append(found.group(0))
    if len(named) >= 2:
        return tuple(_dedupe(named)), FROM_REQUEST
    return tuple(proposed), FROM_MODEL


def _schema(task_type: str | None, columns: Sequence[str] | None) -> dict:
    name = {"type": "string", "enum": list(columns)} if columns else {"type": "string", "pattern": "^[a-z][a-z0-9_]{1,30}$"}
    return {
        "type": "object",
        "properties": {
            "description": {"type": "string", "minLength": 10, "maxLength": 300},
            "task_type": {"type": "string", "enum": [task_type] if task_type else TASK_TYPES.names()},
            "input_fields": {"type": "array", "items": name, "minItems": 1, "maxItems": 4},
            "output_fields": {"type": "array", "items": name, "minItems": 1, "maxItems": 3},
            "labels": {"type": "array", "items": {"type": "string", "minLength": 1, "maxLength": 40}, "maxItems": 20},
        },
        "required": ["description", "task_type", "input_fields", "output_fields", "labels"],
    }


def _hints(sections: dict[str, str], columns: Sequence[str] | None) -> str:
    lines = []
    if columns:
        lines.append(f"(The data has the columns {', '.join(columns)}: pick field names from them.)")
    for marker in ("CONTEXT", "QUESTION"):
        if sections.get(marker):
            lines.append(f"(The request includes a {marker.lower()}: {_one_line(sections[marker])[:200]})")
    return ("\n" + "\n".join(lines) + "\n") if lines else ""


def _clean_fields(names, columns: Sequence[str] | None = None) -> list[str]:
    """Field names from the model: the data's own column names kept as they are, others
    snake_cased; anything that is not a list of names gives nothing."""
    if not isinstance(names, list):
        return []
    if columns:
        return _dedupe(str(n) for n in names if str(n) in columns)
    cleaned = [_snake(str(n)) for n in names]
    return _dedupe(n for n in cleaned if _FIELD_RE.match(n))


def _snake(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.strip().lower()).strip("_")


def _dedupe(items) -> list:
    return list(dict.fromkeys(items))


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _map_samples(examples: list[Example], ins: tuple[str, ...], outs: tuple[str, ...]) -> list[Example]:
    """Keep few-shot examples that name the task's fields, or map `input`/`output` onto a
    single input and a single output field."""
    mapped = []
    for example in examples:
        if all(f in example for f in ins + outs):
            mapped.append({f: example[f] for f in ins + outs})
        elif len(ins) == len(outs) == 1 and {"input", "output"} <= example.keys():
            mapped.append({ins[0]: example["input"], outs[0]: example["output"]})
        else:
            log.warning("few-shot example skipped: its fields %s do not match %s", sorted(example), ins + outs)
    return mapped
