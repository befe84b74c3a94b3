"""MLproject entry point `data`, the pipeline's first step: read the user's examples and split
them into train / valid / test, logged on the run as `data/{train,valid,test}.jsonl` artifacts
and dataset inputs (the later steps read them as `runs:/<this run>/data/<part>.jsonl`).

    python pipelines/run_data.py --train-data=rows.jsonl --test-ratio=0.3 --train-ratio=0.5 --seed=0

In: any source `promptomatix optimize --train-data` reads. Out: the artifacts, and the metrics
train_size, valid_size and test_size. Fewer than 3 examples: DataError (exit 2).
"""

import argparse
import sys

import mlflow
from step_utils import fail, given, local

from promptomatix import data
from promptomatix.data.loaders import load_examples
from promptomatix.errors import ConfigError, DataError, PromptomatixError
from promptomatix.tracking.mlflow_tracker import log_examples


def split_three(examples: list, test_ratio: float, train_ratio: float, seed: int) -> dict[str, list]:
    """train / valid / test, each non-empty; `test_ratio` of all examples is held out for test."""
    if not 0.0 < test_ratio < 1.0 or not 0.0 < train_ratio < 1.0:
        raise ConfigError(f"test ratio and train ratio must be strictly between 0 and 1, "
                          f"got {test_ratio} and {train_ratio}")
    if len(examples) < 3:
        raise DataError(f"{len(examples)} example(s) cannot be split into train, valid and test: give at least 3")
    rest, test = data.split(examples, 1.0 - test_ratio, seed)
    if len(rest) < 2:
        rest, test = rest + test[:1], test[1:]
    train, valid = data.split(rest, train_ratio, seed)
    return {"train": train, "valid": valid, "test": test}


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="pipelines/run_data.py")
    parser.add_argument("--train-data", required=True)
    parser.add_argument("--test-ratio", type=float, default=0.3)
    parser.add_argument("--train-ratio", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=0)
    options = parser.parse_args(given(argv))
    parts = split_three(load_examples(local(options.train_data)), options.test_ratio, options.train_ratio,
                        options.seed)
    with mlflow.start_run():  # the run `mlflow run` created
        for name, context in (("train", "training"), ("valid", "validation"), ("test", "testing")):
            log_examples(parts[name], name, context)
        mlflow.log_metrics({f"{name}_size": len(rows) for name, rows in parts.items()})
    print(", ".join(f"{name}: {len(rows)} examples" for name, rows in parts.items()))


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except PromptomatixError as exc:
        fail(exc)
