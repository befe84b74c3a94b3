"""The `dspy` backend: the task optimized as a DSPy program, on stock DSPy.

    promptomatix.optimize(raw_input="Classify ...", backend="dspy", optimizer="MIPROv2",
                          dspy_module="ChainOfThought")

`config.optimizer` picks MIPROv2 (default), GEPA, BootstrapFewShot,
BootstrapFewShotWithRandomSearch, COPRO or SIMBA; `config.dspy_module` picks Predict,
ChainOfThought, ProgramOfThought, ReAct (or `dspy.<Name>`), or a user's `package.module:Class`.

Budgets: the search preset fills `iterations` and `candidates` unless the user sets them, and
each optimizer takes those two where it has knobs of that meaning (GEPA's metric calls, the
random search's candidate programs, COPRO's depth and breadth, SIMBA's steps and candidates,
the bootstrap rounds), or the preset's name where its budget is a named level (MIPROv2's
`auto`). The table is in `optimizers.py`.

Modules, one idea each: `backend` (the `Backend`), `program` (signatures, modules, the
program's JSON and its serving runner), `optimizers` (the registry and budgets), `metric` (the
length-penalized metric), `evaluation` (validation scores), `adapter` (chat and base-model text
adapters), `lm` (the metered LM). Importing this package does not import DSPy.
"""

from promptomatix.backends.dspy.backend import DSPyBackend

__all__ = ["DSPyBackend"]
