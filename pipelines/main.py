"""MLproject entry point `main`: `promptomatix optimize` inside the run `mlflow run` created.

MLproject declares `raw_input` only; every other option is a `-P name=value` that `mlflow run`
passes on as `--name value` and logs as a run param (see step_utils.py), e.g.
`-P iterations=2 -P train_data=reviews.jsonl -P cache=false -P hook=a,b`.
"""

import sys

from experiment_name import default_hint
from step_utils import cli_flags, given, run_cli


def option(argv: list[str], flag: str) -> str:
    """The value of `--flag=value` in `argv` ("" when absent)."""
    return next((arg.partition("=")[2] for arg in argv if arg.startswith(f"{flag}=")), "")


if __name__ == "__main__":
    args = given(sys.argv[1:])
    hint = default_hint(option(args, "--raw-input"), option(args, "--name"))
    if hint:
        print(hint, file=sys.stderr, flush=True)
    run_cli(["optimize", *cli_flags(args, "optimize")])
