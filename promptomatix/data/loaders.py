"""The user's examples: rows from a data source (see `sources`), columns renamed, fields checked."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from promptomatix.data.sources import read_rows
from promptomatix.errors import DataError
from promptomatix.task.spec import Example


def load_examples(source: str, field_map: Mapping[str, str] | None = None) -> list[Example]:
    """Rows as dicts of strings, columns renamed by `field_map` (column -> field)."""
    rows = read_rows(source)
    if not rows:
        raise DataError(f"{source}: no examples in the data")
    mapping = dict(field_map or {})
    examples = []
    for number, row in enumerate(rows, 1):
        example = {mapping.get(k, k): "" if v is None else str(v) for k, v in row.items()}
        nul = next((k for k, v in example.items() if "\x00" in v), None)
        if nul is not None:  # binary data, or a broken export: it would end up in prompts and demos
            raise DataError(f"{source}: example {number} has a NUL character in {nul!r}; remove it")
        examples.append(example)
    missing = [column for column in mapping if column not in rows[0]]
    if missing:
        raise DataError(f"{source}: field map names columns not in the data: {', '.join(missing)} "
                        f"(columns: {', '.join(rows[0])})")
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
