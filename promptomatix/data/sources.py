"""Data sources: where the user's examples come from, by name.

A data source is a callable `(location: str) -> Iterable[Mapping[str, Any]]`: given what follows
`NAME:` in `--train-data NAME:LOCATION`, it yields one mapping per example (column -> value).
Built in: `csv`, `tsv`, `jsonl`, `json` (files), `saved` (a folder written by `datasets`'
`save_to_disk`) and `hf` (`hf:NAME[:SPLIT]`, a `datasets` hub data set). A plain path needs no
prefix: a folder is read by `saved`, a file by the source its suffix names. Add a source with
`register_data_source(name, source)` or an entry point in `promptomatix.data_sources`.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from promptomatix.errors import DataError, PluginError, PromptomatixError
from promptomatix.plugins import Registry

DataSource = Callable[[str], Iterable[Mapping[str, Any]]]
SUFFIXES = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json"}


def read_rows(source: str) -> list[dict]:
    """The rows of `source` (`NAME:LOCATION`, or a path), each a dict; `DataError` when the data
    cannot be read, `PluginError` when a plugin's source fails in an unexpected way."""
    name, location = _resolve(source)
    reader = DATA_SOURCES.get(name)
    try:
        rows = list(reader(location))
    except PromptomatixError:
        raise
    except Exception as exc:  # a plugin's code: say which source failed and why
        raise PluginError(f"{source}: data source {name!r} failed: {type(exc).__name__}: {exc}") from exc
    for number, row in enumerate(rows, 1):
        if not isinstance(row, Mapping):
            raise DataError(f"{source}: row {number} is not a mapping of columns to values "
                            f"(data source {name!r} gave {type(row).__name__})")
    return [dict(row) for row in rows]


def _resolve(source: str) -> tuple[str, str]:
    prefix, sep, rest = source.partition(":")
    # A registered name before ':' picks the source; one letter is a Windows drive, not a name.
    if sep and len(prefix) > 1 and prefix in DATA_SOURCES.names():
        return prefix, rest
    path = Path(source)
    if not path.exists():
        raise DataError(f"{source}: no such file")
    if path.is_dir():
        return "saved", source
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise DataError(f"{source}: unknown data format {suffix or '(none)'}; use .csv, .tsv, .jsonl or .json, "
                        f"or name a data source as NAME:LOCATION (sources: {', '.join(DATA_SOURCES.names())})")
    return SUFFIXES[suffix], source


def register_data_source(name: str, source: DataSource, *, replace: bool = False) -> DataSource:
    """Make `--train-data NAME:LOCATION` read examples with `source(LOCATION)`."""
    if not callable(source):
        raise PluginError(f"data source {name!r} must be callable, got {type(source).__name__}")
    return DATA_SOURCES.register(name, source, replace=replace)


def _text(location: str) -> str:
    path = Path(location)
    if not path.is_file():
        raise DataError(f"{location}: no such file")
    try:
        return path.read_text(encoding="utf-8-sig")  # -sig: spreadsheets write a BOM
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{location}: cannot read: {exc}") from None


def read_jsonl(location: str) -> list[dict]:
    rows = []
    for number, line in enumerate(_text(location).splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{location}: line {number} is not valid JSON ({exc.msg})") from None
        if not isinstance(row, dict):
            raise DataError(f"{location}: line {number} is not a JSON object")
        rows.append(row)
    return rows


def read_json(location: str) -> list[dict]:
    try:
        rows = json.loads(_text(location))
    except json.JSONDecodeError as exc:
        raise DataError(f"{location}: not valid JSON (line {exc.lineno}: {exc.msg})") from None
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise DataError(f"{location}: expected a JSON list of objects")
    return rows


def read_csv(location: str, delimiter: str = ",") -> list[dict]:
    reader = csv.DictReader(io.StringIO(_text(location), newline=""), delimiter=delimiter, strict=True)
    rows = []
    try:
        header: Sequence[str] = reader.fieldnames or ()
        twice = sorted({name for name in header if header.count(name) > 1})
        if twice:  # DictReader would keep the last column of that name and drop the others unseen
            raise DataError(f"{location}: the header names column {twice[0]!r} more than once; rename the copies")
        for row in reader:
            if None in row or None in row.values():
                raise DataError(f"{location}: line {reader.line_num} has {'more' if None in row else 'fewer'} "
                                f"values than the header's {len(header)} columns")
            rows.append(row)
    except csv.Error as exc:
        raise DataError(f"{location}: malformed CSV at line {reader.line_num}: {exc}") from None
    return rows


def read_tsv(location: str) -> list[dict]:
    return read_csv(location, "\t")


def read_saved(location: str) -> list[dict]:
    import datasets

    try:
        data = datasets.load_from_disk(location)
    except FileNotFoundError as exc:
        raise DataError(f"{location}: not a data set saved with datasets' save_to_disk ({exc})") from None
    if isinstance(data, datasets.DatasetDict):
        data = data["train"] if "train" in data else next(iter(data.values()))
    return list(data)


def read_hub(spec: str) -> list[dict]:
    import datasets

    name, _, split = spec.partition(":")
    try:
        data = datasets.load_dataset(name, split=split or "train")
    except (OSError, ValueError) as exc:  # not found, offline, bad split
        raise DataError(f"hf:{spec}: cannot load the data set: {str(exc).splitlines()[0]}") from None
    return list(data)


def _builtins(registry: Registry[DataSource]) -> None:
    for name, reader in (("csv", read_csv), ("tsv", read_tsv), ("jsonl", read_jsonl), ("json", read_json),
                         ("saved", read_saved), ("hf", read_hub)):
        registry.register(name, reader)


DATA_SOURCES: Registry[DataSource] = Registry("data_sources", _builtins)
