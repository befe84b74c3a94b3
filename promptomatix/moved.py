"""Module paths from before the package was grouped into subpackages, still importable.

In: an import of an old path (`from promptomatix.evaluation import answer`).
Out: the module at its new path (the same module object, so patching one patches the other),
with a DeprecationWarning that names the new path.

Why keep them: code written against the old paths outlives a release. A user's plugin or
notebook is one; the other is the copy of `promptomatix/serving.py` that MLflow stores with
every registered version and runs, old imports and all, whenever the version is loaded or served.
Without these, every version registered before the move would stop loading.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings
from types import ModuleType

MOVED = {
    "promptomatix.answers": "promptomatix.scoring.labels",
    "promptomatix.backends.dspy.evaluation": "promptomatix.backends.dspy.program_eval",
    "promptomatix.batch": "promptomatix.lifecycle.batch",
    "promptomatix.callbacks": "promptomatix.run.callbacks",
    "promptomatix.candidates": "promptomatix.task.candidates",
    "promptomatix.checkpoints": "promptomatix.run.checkpoints",
    "promptomatix.cli_batch": "promptomatix.cli.batch",
    "promptomatix.cli_feedback": "promptomatix.cli.feedback",
    "promptomatix.cli_lifecycle": "promptomatix.cli.lifecycle",
    "promptomatix.cli_options": "promptomatix.cli.options",
    "promptomatix.config_options": "promptomatix.config.flat",
    "promptomatix.critiques": "promptomatix.lifecycle.critiques",
    "promptomatix.evaluation": "promptomatix.scoring.evaluator",
    "promptomatix.failures": "promptomatix.tracking.failure",
    "promptomatix.feedback": "promptomatix.lifecycle.feedback",
    "promptomatix.freetext": "promptomatix.scoring.freetext",
    "promptomatix.guide.cli": "promptomatix.cli.guide",
    "promptomatix.interop": "promptomatix.backends.mlflow_optimizer",
    "promptomatix.job": "promptomatix.run.job",
    "promptomatix.judges": "promptomatix.scoring.judges",
    "promptomatix.lifecycle.evaluation": "promptomatix.lifecycle.version_evaluation",
    "promptomatix.lineage": "promptomatix.run.lineage",
    "promptomatix.metaprompts": "promptomatix.templates",
    "promptomatix.options": "promptomatix.config.plugin_options",
    "promptomatix.planning": "promptomatix.run.planning",
    "promptomatix.preflight": "promptomatix.config.preflight",
    "promptomatix.preparation": "promptomatix.run.preparation",
    "promptomatix.progress": "promptomatix.run.progress",
    "promptomatix.prompts": "promptomatix.task.prompt",
    "promptomatix.ratelimits": "promptomatix.models.ratelimits",
    "promptomatix.reading": "promptomatix.intake.rules",
    "promptomatix.record": "promptomatix.tracking.record",
    "promptomatix.recorder": "promptomatix.tracking.recorder",
    "promptomatix.registry": "promptomatix.run.registration",
    "promptomatix.rows": "promptomatix.scoring.rows",
    "promptomatix.runlife": "promptomatix.run.life",
    "promptomatix.servercheck": "promptomatix.tracking.servercheck",
    "promptomatix.signals": "promptomatix.run.signals",
    "promptomatix.spec": "promptomatix.task.spec",
    "promptomatix.stats": "promptomatix.scoring.stats",
    "promptomatix.storeretry": "promptomatix.tracking.storeretry",
    "promptomatix.summary": "promptomatix.run.summary",
    "promptomatix.tasks": "promptomatix.task.types",
    "promptomatix.tracewriter": "promptomatix.tracking.tracewriter",
    "promptomatix.tracing": "promptomatix.tracking.tracer",
}


class MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds an old path (`MOVED`) and loads it as the module at its new path."""

    def find_spec(self, fullname, path=None, target=None):
        return importlib.util.spec_from_loader(fullname, self) if fullname in MOVED else None

    def create_module(self, spec):
        return None  # the default module; `exec_module` puts the real one in its place

    def exec_module(self, module: ModuleType) -> None:
        new = MOVED[module.__name__]
        warnings.warn(f"{module.__name__} has moved to {new}; import it from there", DeprecationWarning,
                      stacklevel=2)
        # importlib returns what sys.modules holds after exec_module, so the old name is the
        # new module itself (as `importlib.import_module` and `from ... import` see it).
        sys.modules[module.__name__] = importlib.import_module(new)


def install() -> None:
    """Let the old paths import (once per process; last, after every real module is looked for)."""
    if not any(isinstance(finder, MovedModules) for finder in sys.meta_path):
        sys.meta_path.append(MovedModules())
