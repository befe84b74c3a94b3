"""Rows as MLflow GenAI evaluation datasets: what MLflow's Datasets page lists.

`evaluation_dataset(name, examples, input_fields, output_fields)` stores the rows as a managed
evaluation dataset (`mlflow.genai.datasets.create_dataset`, then `merge_records`) in the
current (or given) experiment: each row's input fields as its `inputs`, its output fields as its
`expectations`, the row number as a record tag. The same name and the same rows (by their
content digest, `DATA_DIGEST`, MLflow's digest of the rows as a pandas data set, the one a run's
dataset input shows) reuse the dataset stored before, so evaluating a version twice on one file
lists it once.

MLflow's own digest of such a dataset is computed from its name and last update time, not its
rows: the rows' digest is the dataset's tag `DATA_DIGEST`. A store that keeps no evaluation
datasets (or refuses one) gives None with a warning: the dataset is a record of the run, not its
result.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from promptomatix.task.spec import Example

log = logging.getLogger(__name__)

DATA_DIGEST = "promptomatix.data_digest"  # the rows' digest (MLflow's pandas-dataset digest)
ROW = "promptomatix.row"  # a record's tag: its row number in the data, from 0


def rows_digest(examples: Sequence[Example]) -> str:
    """MLflow's dataset digest of the rows (the same one a run's dataset input shows)."""
    import pandas as pd
    from mlflow.data.pandas_dataset import from_pandas

    return from_pandas(pd.DataFrame(list(examples))).digest


def records(examples: Sequence[Example], input_fields: Sequence[str], output_fields: Sequence[str]) -> list[dict]:
    """The rows as evaluation records: inputs, expectations and the row number as a tag."""
    return [{"inputs": {f: e[f] for f in input_fields if f in e},
             "expectations": {f: e[f] for f in output_fields if f in e},
             "tags": {ROW: str(i)}} for i, e in enumerate(examples)]


def evaluation_dataset(name: str, examples: Sequence[Example], input_fields: Sequence[str],
                       output_fields: Sequence[str], *, experiment_id: str | None = None,
                       tags: dict[str, str] | None = None):
    """The rows as an MLflow evaluation dataset named `name` (see the module doc), or None when
    the store does not take it."""
    from mlflow.exceptions import MlflowException
    from mlflow.genai.datasets import create_dataset, search_datasets

    digest = rows_digest(examples)
    try:
        where = [experiment_id] if experiment_id else None
        for found in search_datasets(experiment_ids=where, filter_string=f"name = '{_quoted(name)}'"):
            if (found.tags or {}).get(DATA_DIGEST) == digest:
                return found
        dataset = create_dataset(name=name, experiment_id=experiment_id,
                                 tags={**(tags or {}), DATA_DIGEST: digest, "promptomatix.rows": str(len(examples))})
        dataset.merge_records(records(examples, input_fields, output_fields))
        return dataset
    except (MlflowException, NotImplementedError, ImportError) as exc:
        log.warning("the %s rows were not stored as an MLflow evaluation dataset: %s", name, str(exc)[:300])
        return None


def _quoted(text: str) -> str:
    return text.replace("'", "''")
