"""MLproject entry point `main`: `promptomatix optimize` inside the run `mlflow run` created.

MLproject cannot leave an option out, so `--flag=` (an empty value) means "not given" here.
"""

import sys

from promptomatix.cli import cli


def given(argv: list[str]) -> list[str]:
    return [arg for arg in argv if not (arg.startswith("--") and arg.endswith("="))]


if __name__ == "__main__":
    cli(["optimize", *given(sys.argv[1:])], prog_name="promptomatix")
