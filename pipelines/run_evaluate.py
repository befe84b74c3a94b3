"""MLproject entry point `evaluate`: `promptomatix evaluate REF --data DATA` inside the run
`mlflow run` created (the evaluation run is that run). DATA may be an MLflow artifact URI.

    python pipelines/run_evaluate.py --ref=reviews@champion --data=test.jsonl
"""

import sys

from step_utils import cli_flags, fail, given, local, run_cli

from promptomatix.errors import PromptomatixError

if __name__ == "__main__":
    options = dict(arg[2:].partition("=")[::2] for arg in given(sys.argv[1:]))
    ref, data = options.pop("ref", ""), options.pop("data", "")
    try:
        data = local(data)
    except PromptomatixError as exc:
        fail(exc)
    rest = cli_flags([f"--{k}={v}" for k, v in options.items()], "evaluate")
    run_cli(["evaluate", ref, *(["--data", data] if data else []), *rest])
