"""Promptomatix: turn a plain-language task into an optimized, versioned prompt tracked in MLflow.

    import promptomatix
    result = promptomatix.optimize(raw_input="Classify the sentiment of a movie review")
    print(result.prompt, result.optimized_score, result.model_uri)
"""

from importlib import import_module

__version__ = "0.1.0"

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
    "Feedback": "promptomatix.feedback",
    "add_feedback": "promptomatix.feedback",
    "list_feedback": "promptomatix.feedback",
    "resolve_feedback": "promptomatix.feedback",
    "feedback_summary": "promptomatix.feedback",
    "export_feedback": "promptomatix.feedback",
    "critique": "promptomatix.critiques",
    # Applying a registered version to a table (locally or on Spark).
    "score": "promptomatix.batch",
    "ScoreReport": "promptomatix.batch",
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
