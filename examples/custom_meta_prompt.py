"""Register `custom_meta_prompt.txt` as the rewrite template `terse_rewrite`, and write a
meta-prompt as a Python function (the original guide's `generate_meta_prompt` style).

The meta-prompt backend fills `$description`, `$instruction`, `$score`, `$failures` and
`$feedback`; a template naming any other placeholder is refused before the run starts.
Choose it with `meta_prompt="terse_rewrite"` / `--meta-prompt terse_rewrite` (or pass the
`.txt` path directly, without registering).

A function gets those values as keyword arguments (the ones it names) and returns the finished
text: `meta_prompt=terse_meta_prompt` from Python, or `--meta-prompt
custom_meta_prompt:terse_meta_prompt` (and `meta_prompt: custom_meta_prompt:terse_meta_prompt` in a
config file) with `examples/` importable. The intake and synthetic-data templates are chosen the
same way: `intake_prompt`, `synthetic_prompt`, `inputs_prompt`.
"""

from pathlib import Path

from promptomatix.templates import register_meta_prompt

NAME = "terse_rewrite"
TEMPLATE = Path(__file__).resolve().with_name("custom_meta_prompt.txt")


def terse_meta_prompt(description, instruction, score, failures):
    return (f"Task: {description}\n"
            f"Current instruction (scored {score}): {instruction}\n"
            f"It got these wrong:\n{failures}\n"
            "Write a terser instruction that fixes them.\nTerse instruction:")


def register(*, replace: bool = False) -> str:
    return register_meta_prompt(NAME, str(TEMPLATE), replace=replace)
