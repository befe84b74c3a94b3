"""The user's examples: rows from a data source (see `sources`), columns renamed, fields checked."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from promptomatix.data.sources import read_rows
from promptomatix.errors import DataError
from promptomatix.spec import Example


def load_examples(source: str, field_map: Mapping[str, str] | None = None) -> list[Example]:
    """Rows as dicts of strings, columns renamed by `field_map` (column -> field)."""
    rows = read_rows(source)
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
