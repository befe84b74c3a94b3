"""MLproject entry point `optimize`: `main` as a pipeline step. The same options as `main`
(`raw_input` declared, the others `-P name=value`); `train_data` / `valid_data` may also be MLflow
artifact URIs (`runs:/<id>/data/train.jsonl`), downloaded first, so a step can use the data
step's artifacts.
"""

import sys

from step_utils import cli_flags, fail, given, localize, run_cli

from promptomatix.errors import PromptomatixError

if __name__ == "__main__":
    try:
        args = localize(given(sys.argv[1:]), "--train-data", "--valid-data")
    except PromptomatixError as exc:
        fail(exc)
    run_cli(["optimize", *cli_flags(args, "optimize")])
