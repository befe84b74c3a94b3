"""The registered pyfunc model: applies an optimized prompt with its configured model.

Logged as MLflow "models from code": this file is the model. Its `model_config` holds the
prompt (instruction, demos, fields) and the model settings, so `mlflow.pyfunc.load_model(...)`
followed by `predict(DataFrame of input fields)` returns a DataFrame of output fields.

When the optimizer left a program (`model_config["program"]`, e.g. a compiled DSPy program's
state), the model rebuilds it and runs it instead of the plain prompt, so the served outputs are
the optimized program's own. `PROGRAM_RUNNERS` names, per program `kind`, the module whose
`load_runner(program, settings, meter)` returns a callable `row -> outputs`.
"""

from __future__ import annotations

import logging
from importlib import import_module
from typing import TYPE_CHECKING

import mlflow
import pandas as pd

from promptomatix.config import ModelSettings
from promptomatix.models.lm import LM
from promptomatix.models.usage import UsageMeter
from promptomatix.scoring.evaluator import answer
from promptomatix.tracking import record

log = logging.getLogger(__name__)
PROGRAM_RUNNERS = {"dspy": "promptomatix.backends.dspy.program"}


def load_program_runner(program: dict, settings: ModelSettings, meter: UsageMeter):
    """The callable serving a program, from the runner module its `kind` names."""
    kind = program.get("kind")
    if kind not in PROGRAM_RUNNERS:
        raise ValueError(f"this model's program is of unknown kind {kind!r}; known: {', '.join(PROGRAM_RUNNERS)}")
    return import_module(PROGRAM_RUNNERS[kind]).load_runner(program, settings, meter)


# mlflow.pyfunc is a LazyLoader, which mypy cannot see through; at run time the base is read through it, as before
if TYPE_CHECKING:
    from mlflow.pyfunc import PythonModel as _PythonModel
else:
    _PythonModel = mlflow.pyfunc.PythonModel


class PromptModel(_PythonModel):
    def load_context(self, context):
        config = context.model_config
        self.prompt = record.config_prompt(config)
        settings = ModelSettings(**record.config_model(config))
        self.meter = UsageMeter()
        self.lm = LM(settings, self.meter)
        program = record.config_program(config)
        self.runner = load_program_runner(program, settings, self.meter) if program else None

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        rows = pd.DataFrame(model_input).to_dict(orient="records")
        if self.runner is not None:
            outputs = [self.runner(row) for row in rows]
        else:
            answers = [answer(self.prompt, self.lm, row) for row in rows]
            outputs = [a.outputs for a in answers]
            unmapped = sum(a.unmapped for a in answers)
            if unmapped:  # an empty label, never a guess: say how many
                log.warning("%d of %d answers named none of the labels %s; left empty", unmapped, len(rows),
                            ", ".join(self.prompt.labels))
        return pd.DataFrame(outputs, columns=list(self.prompt.output_fields))


mlflow.models.set_model(PromptModel())
