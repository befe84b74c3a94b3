"""A DSPy module `Labeler` for the `dspy` backend: one predictor over the task's signature whose
answers are tidied (surrounding spaces and a trailing period dropped) before scoring.

The constructor takes the task's `dspy.Signature`. Use it registered, as
`dspy_module="Labeler"` / `--dspy-module Labeler`, or unregistered by import path,
`--dspy-module custom_dspy_module:Labeler` (the module must be importable).
"""

import dspy

from promptomatix.backends.dspy.program import register_dspy_module

NAME = "Labeler"


class Labeler(dspy.Module):
    def __init__(self, signature):
        super().__init__()
        self.predict = dspy.Predict(signature)  # the predictor optimizers tune (instruction, demos)
        self.outputs = list(signature.output_fields)

    def forward(self, **inputs):
        prediction = self.predict(**inputs)
        for name in self.outputs:
            value = getattr(prediction, name, None)
            if isinstance(value, str):
                prediction[name] = value.strip().rstrip(".")
        return prediction


def register(*, replace: bool = False):
    return register_dspy_module(NAME, Labeler, replace=replace)
