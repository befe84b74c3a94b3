"""MLproject entry point `main`: `promptomatix optimize` inside the run `mlflow run` created.

MLproject cannot leave an option out, so `--flag=` (an empty value) means "not given" here.
"""

import sys

from experiment_name import default_hint
from step_utils import given, run_cli


def option(argv: list[str], flag: str) -> str:
    """The value of `--flag=value` in `argv` ("" when absent)."""
    return next((arg.partition("=")[2] for arg in argv if arg.startswith(f"{flag}=")), "")


if __name__ == "__main__":
    args = given(sys.argv[1:])
    hint = default_hint(option(args, "--raw-input"), option(args, "--name"))
    if hint:
        print(hint, file=sys.stderr, flush=True)
    run_cli(["optimize", *args])
