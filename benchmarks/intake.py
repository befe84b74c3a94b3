"""Intake benchmark: how often a request is read right, part by part.

    python -m benchmarks.intake                                  # the shared set, embedded model
    python -m benchmarks.intake --rules-only                     # the rule-based reading alone
    python -m benchmarks.intake benchmarks/intake_unseen.jsonl --model openai/gpt-4o-mini

A request file holds one JSON object a line: `request` (the raw input, markers allowed),
`task_type`, `labels` (the labels the request lists, as it spells them; [] when it lists none,
and then any labels count as right), `input_fields` / `output_fields` ("any" for any sensible
names, else the names the request gives) and a `note`. A request is read right when its type and
its labels are; fields are reported beside. The full reading is `promptomatix.intake.read_task`
with the model given (a few calls a request); `--rules-only` reads with `reading.read_request`
alone, no model. Prints the shares and every miss, and logs a run to the experiment `benchmarks`.

The files beside this one: `intake_requests.jsonl` (the shared set, 95 requests of every type
and label-list form), `intake_holdout.jsonl` and `intake_unseen.jsonl` (written separately, as
checks on requests the rules were not written against; see benchmarks/README.md for which were
looked at when).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_FILE = HERE / "intake_requests.jsonl"
PARTS = ("type", "labels", "fields", "read_right")


@dataclass(frozen=True)
class Read:
    """One request's reading, as compared: type, labels, fields (None where not read)."""

    task_type: str | None
    labels: tuple[str, ...]
    input_fields: tuple[str, ...] | None = None
    output_fields: tuple[str, ...] | None = None


def judge(expected: dict, got: Read) -> dict[str, bool]:
    """Which parts of `got` are right by `expected` (a line of a request file)."""
    type_ok = got.task_type == expected["task_type"]
    want = expected["labels"]
    if want:
        labels_ok = sorted(got.labels) == sorted(want)
    else:
        labels_ok = not got.labels or expected["task_type"] == "classification"
    fields_ok = all(_fields_ok(expected[key], value) for key, value in
                    (("input_fields", got.input_fields), ("output_fields", got.output_fields)))
    return {"type": type_ok, "labels": labels_ok, "fields": fields_ok, "read_right": type_ok and labels_ok}


def _fields_ok(expected, got: tuple[str, ...] | None) -> bool:
    if got is None:  # not read (the rules alone name fields only when the request does)
        return expected == "any"
    if expected == "any":
        return bool(got)
    return sorted(got) == sorted(expected)


def rules_reader() -> Callable[[str], Read]:
    from promptomatix.intake import parse_markers, starting_instruction
    from promptomatix.intake.rules import read_request

    def read(raw: str) -> Read:
        rules = read_request(starting_instruction(parse_markers(raw)))
        return Read(rules.task_type, rules.labels, rules.input_fields or None, rules.output_fields or None)

    return read


def model_reader(model: str) -> tuple[Callable[[str], Read], object]:
    """The full intake with `model` as the optimizer model, and the meter counting its calls."""
    from promptomatix.config import ModelSettings, OPTIMIZER_MAX_TOKENS
    from promptomatix.intake import read_task
    from promptomatix.models.lm import LM
    from promptomatix.models.usage import UsageMeter

    meter = UsageMeter()
    lm = LM(ModelSettings(model=model, temperature=0.7, max_tokens=OPTIMIZER_MAX_TOKENS), meter)

    def read(raw: str) -> Read:
        spec = read_task(raw, lm).spec
        return Read(spec.task_type, spec.labels, spec.input_fields, spec.output_fields)

    return read, meter


def evaluate(rows: Sequence[dict], read: Callable[[str], Read]) -> tuple[dict[str, float], list[str]]:
    """The share of `rows` read right per part, and a line per request with a part read wrong."""
    counts = dict.fromkeys(PARTS, 0)
    misses = []
    for row in rows:
        got = read(row["request"])
        verdict = judge(row, got)
        for part in PARTS:
            counts[part] += verdict[part]
        if not all(verdict.values()):
            wrong = ", ".join(p for p in PARTS[:3] if not verdict[p])
            misses.append(f"- {wrong}: read {got.task_type} {list(got.labels)} "
                          f"{_show(got.input_fields)} -> {_show(got.output_fields)}; expected {row['task_type']} "
                          f"{row['labels']} {row['input_fields']} -> {row['output_fields']}\n"
                          f"  {json.dumps(row['request'])[:160]}")
    return {part: counts[part] / len(rows) for part in PARTS}, misses


def _show(fields: tuple[str, ...] | None) -> str:
    return ",".join(fields) if fields else "-"


def load(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.intake", description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="*", type=Path, default=[DEFAULT_FILE], help="request files (JSON lines)")
    parser.add_argument("--rules-only", action="store_true", help="the rule-based reading alone, no model")
    parser.add_argument("--model", default="embedded/gemma-3-270m", help="intake model (any LiteLLM name)")
    parser.add_argument("--limit", type=int, help="read only the first N requests of each file")
    parser.add_argument("--no-log", action="store_true", help="do not log a run to the experiment `benchmarks`")
    args = parser.parse_args(argv)
    for path in args.files:
        if not path.is_file():
            parser.error(f"no request file {path}")
    from benchmarks.common import log_result, machine

    if args.rules_only:
        read, meter = rules_reader(), None
    else:
        read, meter = model_reader(args.model)
    for path in args.files:
        rows = load(path)[:args.limit]
        started = time.monotonic()
        shares, misses = evaluate(rows, read)
        seconds = time.monotonic() - started
        reader = "rules" if args.rules_only else args.model
        print(f"\n### {path.name}: {len(rows)} requests, read by {reader}\n")
        print(" | ".join(f"{part} {shares[part]:.1%}" for part in PARTS))
        calls = meter.snapshot().calls if meter else 0
        print(f"{calls} model calls, {seconds:.0f} s")
        if misses:
            print("\nmisses:\n" + "\n".join(misses))
        if not args.no_log:
            log_result("intake", {"run_name": f"intake/{path.stem}/{reader}", "file": path.name,
                                  "reader": reader, "requests": len(rows),
                                  **{f"machine.{k}": v for k, v in machine().items()}},
                       {**{f"share_{part}": shares[part] for part in PARTS}, "model_calls": calls,
                        "wall_seconds": seconds},
                       tags={"benchmark": "intake"}, texts={"misses.txt": "\n".join(misses)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
