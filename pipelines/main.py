"""MLproject entry point `main`: `promptomatix optimize` inside the run `mlflow run` created.

MLproject cannot leave an option out, so `--flag=` (an empty value) means "not given" here.
"""

import sys

from step_utils import given

from promptomatix.cli import cli


if __name__ == "__main__":
    cli(["optimize", *given(sys.argv[1:])], prog_name="promptomatix")
