"""MLproject entry point `main`: `promptomatix optimize` inside the run `mlflow run` created.

MLproject cannot leave an option out, so `--flag=` (an empty value) means "not given" here.
"""

import sys

from step_utils import given, run_cli

if __name__ == "__main__":
    run_cli(["optimize", *given(sys.argv[1:])])
