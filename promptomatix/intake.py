"""Intake: from the user's raw input to a `TaskSpec`, with the intake model's help.

The original Promptomatix markers are understood: `[TASK]`, `[FEW_SHOT_EXAMPLES]`,
`[CONTEXT]`, `[QUESTION]`, `[INSTRUCTIONS]`, `[RULES]`, `[OUTPUT_FORMAT]`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence

from promptomatix.errors import ConfigError, LLMError
from promptomatix.metaprompts import TemplateSource, fill
from promptomatix.answers import best_label
from promptomatix.models.lm import LM, choice_mode
from promptomatix.spec import Example, TaskSpec
from promptomatix.tasks import TASK_TYPES, get_task_type

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


def extract_task_spec(raw_input: str, lm: LM, *, task_type: str | None = None,
                      input_fields: Sequence[str] | None = None, output_fields: Sequence[str] | None = None,
                      columns: Sequence[str] | None = None, labels: Sequence[str] | None = None,
                      template: TemplateSource = "intake") -> TaskSpec:
    """Ask `lm` for the task's description, type, fields and labels; explicit arguments win.

    `columns` (the user's data columns) restricts field names to them; `labels` (the label
    values seen in the user's data) replaces the model's label set."""
    sections = parse_markers(raw_input)
    instruction = starting_instruction(sections)
    if not instruction:
        raise ConfigError("raw input has no task text: add a sentence saying what the task is")
    hints = _hints(sections, columns)
    task_type = task_type or choose_task_type(_one_line(instruction), lm)
    answer = lm.complete_json(
        fill(template, task_types=", ".join(TASK_TYPES.names()), request=_one_line(instruction), hints=hints),
        _schema(task_type, columns),
        max_tokens=300,
        temperature=0.0,  # reading, not writing: greedy follows the pattern best
    )
    kind = task_type or answer["task_type"]
    if kind not in TASK_TYPES.names():  # a provider that does not enforce the schema's enum
        raise LLMError(f"{lm.model} named an unknown task type {kind!r}; pass --task-type")
    defaults = get_task_type(kind)
    ins = tuple(input_fields or _clean_fields(answer.get("input_fields"), columns) or ())
    outs = tuple(output_fields or _clean_fields(answer.get("output_fields"), columns) or ())
    if "QUESTION" in sections and not input_fields:
        ins = tuple(f for f in ("context", "question") if f == "question" or "CONTEXT" in sections)
    outs = tuple(f for f in outs if f not in ins)
    if not ins or not outs:
        log.warning("intake gave unusable fields (%s -> %s); using the %s defaults", ins, outs, kind)
        ins, outs = ins or defaults.input_fields, outs or defaults.output_fields
        outs = tuple(f for f in outs if f not in ins) or ("output",)
    proposed = answer.get("labels") if isinstance(answer.get("labels"), list) else []
    label_set = tuple(labels) if labels else _labels_from(proposed, instruction)
    samples = tuple(_map_samples(parse_examples(sections.get("FEW_SHOT_EXAMPLES", "")), ins, outs))
    return TaskSpec(
        description=str(answer.get("description") or instruction).strip(),
        input_fields=ins,
        output_fields=outs,
        task_type=kind,
        labels=label_set if kind == "classification" else (),
        sample_examples=samples,
        instructions=instruction,
    )


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


def _labels_from(proposed, request: str) -> tuple[str, ...]:
    """The model's labels; when the request itself names two or more of them, only those, as
    the request spells them (a small model likes to add labels from its examples)."""
    proposed = _dedupe(str(x).strip() for x in proposed if str(x).strip())
    named = []
    for label in proposed:
        found = re.search(rf"\b{re.escape(label)}\b", request, re.IGNORECASE)
        if found:
            named.append(found.group(0))
    return tuple(_dedupe(named) if len(named) >= 2 else proposed)


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
