"""Register `custom_meta_prompt.txt` as the rewrite template `terse_rewrite`.

The meta-prompt backend fills `$description`, `$instruction`, `$score`, `$failures` and
`$feedback`; a template naming any other placeholder is refused before the run starts.
Choose it with `meta_prompt="terse_rewrite"` / `--meta-prompt terse_rewrite` (or pass the
`.txt` path directly, without registering).
"""

from pathlib import Path

from promptomatix.metaprompts import register_meta_prompt

NAME = "terse_rewrite"
TEMPLATE = Path(__file__).resolve().with_name("custom_meta_prompt.txt")


def register(*, replace: bool = False) -> str:
    return register_meta_prompt(NAME, str(TEMPLATE), replace=replace)
