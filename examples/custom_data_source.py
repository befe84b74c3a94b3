"""A data source `sqlite`: examples from a table of a SQLite database file.

Register it, then name it before the location: `train_data="sqlite:reviews.db?table=reviews"` /
`--train-data sqlite:reviews.db?table=reviews`. Each row becomes an example (column -> value);
`--field-map` renames columns as for any other source.
"""

import sqlite3
from pathlib import Path
from urllib.parse import parse_qs

from promptomatix.data.sources import register_data_source
from promptomatix.errors import DataError

NAME = "sqlite"


def read_table(location: str) -> list[dict]:
    path, _, query = location.partition("?")
    table = parse_qs(query).get("table", [""])[0]
    if not table.isidentifier():
        raise DataError(f"sqlite:{location}: name the table as ?table=NAME")
    if not Path(path).is_file():
        raise DataError(f"sqlite:{location}: no such database file")
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        db.row_factory = sqlite3.Row
        try:
            rows = db.execute(f'SELECT * FROM "{table}"').fetchall()  # noqa: S608 (checked identifier)
        except sqlite3.OperationalError as exc:
            raise DataError(f"sqlite:{location}: {exc}") from None
    return [dict(row) for row in rows]


def register(*, replace: bool = False):
    return register_data_source(NAME, read_table, replace=replace)
