"""The user's data: CSV, JSON Lines, JSON, a `datasets` data set saved to disk, or `hf:<name>`."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

from promptomatix.errors import DataError
from promptomatix.spec import Example


def load_examples(source: str, field_map: Mapping[str, str] | None = None) -> list[Example]:
    """Rows as dicts of strings, columns renamed by `field_map` (column -> field)."""
    rows = _read(source)
    if not rows:
        raise DataError(f"{source}: no examples in the data")
    mapping = dict(field_map or {})
    examples = []
    for row in rows:
        examples.append({mapping.get(k, k): "" if v is None else str(v) for k, v in row.items()})
    missing = [column for column in mapping if column not in rows[0]]
    if missing:
        raise DataError(f"{source}: field map names columns not in the data: {', '.join(missing)} (columns: {', '.join(rows[0])})")
    return examples


def check_fields(examples: Sequence[Example], fields: Sequence[str], source: str) -> list[Example]:
    """Keep only `fields`; every example must have each one, non-empty."""
    for number, example in enumerate(examples, 1):
        missing = [f for f in fields if f not in example]
        if missing:
            raise DataError(f"{source}: example {number} lacks field {missing[0]!r} (it has: {', '.join(example)})")
        empty = [f for f in fields if not example[f].strip()]
        if empty:
            raise DataError(f"{source}: example {number} has an empty {empty[0]!r}")
    return [{f: e[f] for f in fields} for e in examples]


def _read(source: str) -> list[dict]:
    if source.startswith("hf:"):
        return _read_hub(source[3:])
    path = Path(source)
    if not path.exists():
        raise DataError(f"{source}: no such file")
    if path.is_dir():
        return _read_saved_dataset(path)
    try:
        text = path.read_text(encoding="utf-8-sig")  # -sig: spreadsheets write a BOM
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{source}: cannot read: {exc}") from None
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        return _parse_jsonl(text, source)
    if suffix == ".json":
        return _parse_json(text, source)
    if suffix in (".csv", ".tsv"):
        return _parse_csv(text, source, "\t" if suffix == ".tsv" else ",")
    raise DataError(f"{source}: unknown data format {suffix or '(none)'}; use .csv, .tsv, .jsonl or .json")


def _parse_jsonl(text: str, source: str) -> list[dict]:
    rows = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{source}: line {number} is not valid JSON ({exc.msg})") from None
        if not isinstance(row, dict):
            raise DataError(f"{source}: line {number} is not a JSON object")
        rows.append(row)
    return rows


def _parse_json(text: str, source: str) -> list[dict]:
    try:
        rows = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{source}: not valid JSON (line {exc.lineno}: {exc.msg})") from None
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise DataError(f"{source}: expected a JSON list of objects")
    return rows


def _parse_csv(text: str, source: str, delimiter: str) -> list[dict]:
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    rows = []
    try:
        for row in reader:
            if None in row or None in row.values():
                raise DataError(f"{source}: line {reader.line_num} has {'more' if None in row else 'fewer'} "
                                f"values than the header's {len(reader.fieldnames)} columns")
            rows.append(row)
    except csv.Error as exc:
        raise DataError(f"{source}: malformed CSV at line {reader.line_num}: {exc}") from None
    return rows


def _read_saved_dataset(path: Path) -> list[dict]:
    import datasets

    try:
        data = datasets.load_from_disk(str(path))
    except FileNotFoundError as exc:
        raise DataError(f"{path}: not a data set saved with datasets' save_to_disk ({exc})") from None
    if isinstance(data, datasets.DatasetDict):
        data = data["train"] if "train" in data else next(iter(data.values()))
    return list(data)


def _read_hub(spec: str) -> list[dict]:
    import datasets

    name, _, split = spec.partition(":")
    try:
        data = datasets.load_dataset(name, split=split or "train")
    except (OSError, ValueError) as exc:  # not found, offline, bad split
        raise DataError(f"hf:{spec}: cannot load the data set: {str(exc).splitlines()[0]}") from None
    return list(data)
