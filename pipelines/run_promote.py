"""MLproject entry point `promote`: `promptomatix promote NAME --version V --alias A ...`.
`--force=true` and `--require-gain=true` are the flags `--force` and `--require-gain` (`false` or
empty: not given); `--min-gain=X` is passed as is (empty: not given); `--data` may be an MLflow
artifact URI. A rejected promotion exits with status 1, so the run is FAILED.

    python pipelines/run_promote.py --name=reviews --version=3 --alias=champion --force= --require-gain=true
"""

import sys

from step_utils import fail, given, local, run_cli

from promptomatix.errors import PromptomatixError

TRUE = {"true", "1", "yes"}
FLAGS = ("--force", "--require-gain")  # options that are flags on the command line, true/false here

if __name__ == "__main__":
    args = ["promote"]
    try:
        for arg in given(sys.argv[1:]):
            flag, _, value = arg.partition("=")
            if flag == "--name":
                args.insert(1, value)
            elif flag in FLAGS:
                args += [flag] if value.lower() in TRUE else []
            elif flag == "--data":
                args.append(f"--data={local(value)}")
            else:
                args.append(arg)
    except PromptomatixError as exc:
        fail(exc)
    run_cli(args)
