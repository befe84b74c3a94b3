"""A DSPy optimizer `LabeledFewShot` for the `dspy` backend: the program gets `num_demos`
labelled training examples as demos, with no bootstrapping and no instruction search.

Register it and choose it with `optimizer="LabeledFewShot"` / `--optimizer LabeledFewShot`.
A recipe says how to compile (`compile(student, setup) -> program`, with the metric, both LMs,
the data and the config in `setup`) and which candidate programs the optimizer tried
(`rounds(program)`, grouped by step; here only the result).
"""

import dspy

from promptomatix.backends.dspy.optimizers import Recipe, register_dspy_optimizer

NAME = "LabeledFewShot"


def compile_labeled(student, setup):
    optimizer = dspy.LabeledFewShot(k=setup.config.num_demos)
    return optimizer.compile(student, trainset=list(setup.train), sample=False)


def register(*, replace: bool = False):
    return register_dspy_optimizer(NAME, Recipe(compile_labeled, lambda program: [[program]]), replace=replace)
