"""Promptomatix: turn a plain-language task into an optimized, versioned prompt tracked in MLflow.

    import promptomatix
    result = promptomatix.optimize(raw_input="Classify the sentiment of a movie review")
    print(result.prompt, result.optimized_score, result.model_uri)
"""

from importlib import import_module

from promptomatix import moved

__version__ = "0.1.0"

# The module paths from before the package had subpackages still import (a registered version's
# stored `serving.py` uses them): a finder appended to `sys.meta_path`, nothing else is loaded.
moved.install()

_EXPORTS = {
    "optimize": "promptomatix.api",
    "plan": "promptomatix.api",
    "OptimizationResult": "promptomatix.api",
    "OptimizationConfig": "promptomatix.config",
    "ModelSettings": "promptomatix.config",
    "PromptomatixError": "promptomatix.errors",
    "UsageError": "promptomatix.errors",
    "ConfigError": "promptomatix.errors",
    "DataError": "promptomatix.errors",
    "LLMError": "promptomatix.errors",
    "RegistryError": "promptomatix.errors",
    "BudgetExhausted": "promptomatix.errors",
    # Feedback on registered prompts, and machine critiques (MLflow is the store).
    "Feedback": "promptomatix.lifecycle.feedback",
    "add_feedback": "promptomatix.lifecycle.feedback",
    "list_feedback": "promptomatix.lifecycle.feedback",
    "resolve_feedback": "promptomatix.lifecycle.feedback",
    "feedback_summary": "promptomatix.lifecycle.feedback",
    "export_feedback": "promptomatix.lifecycle.feedback",
    "critique": "promptomatix.lifecycle.critiques",
    # Applying a registered version to a table (locally or on Spark).
    "score": "promptomatix.lifecycle.batch",
    "ScoreReport": "promptomatix.lifecycle.batch",
    # The original Promptomatix guide's interface (translated onto ours in promptomatix/guide/).
    "process_input": "promptomatix.guide.api",
    "optimize_with_feedback": "promptomatix.guide.api",
    "save_feedback": "promptomatix.guide.api",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    # Lazy: `import promptomatix` stays cheap; MLflow and LiteLLM load when first used.
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'promptomatix' has no attribute {name!r}")
