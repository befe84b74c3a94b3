"""The original Promptomatix's result dict for one of our optimizations."""

from __future__ import annotations

import json
from typing import Any

from promptomatix.guide.names import guide_backend_name
from promptomatix.tracking.mlflow_tracker import logged_setting


def result_dict(result) -> dict[str, Any]:
    """The original's result dict for an `OptimizationResult`, with our run and registry keys.

    `synthetic_data` is every example the run optimized on (train then validation, as logged in
    the run); `metrics.cost` is the total LLM cost in dollars, `metrics.time_taken` seconds."""
    import mlflow

    params = mlflow.get_run(result.run_id).data.params
    backend = logged_setting(params, "backend") or ""
    return {
        "result": result.prompt,
        "initial_prompt": result.initial_prompt,
        "session_id": result.run_id,
        "backend": guide_backend_name(backend),
        "metrics": {
            "initial_prompt_score": result.initial_score,
            "optimized_prompt_score": result.optimized_score,
            "cost": result.usage.cost,
            "time_taken": round(result.seconds, 6),
        },
        "synthetic_data": _logged_examples(result.run_id, "train") + _logged_examples(result.run_id, "valid"),
        "llm_cost": result.usage.cost,
        "input_fields": list(result.spec.input_fields),
        "output_fields": list(result.spec.output_fields),
        "task_type": result.spec.task_type,
        # ours
        "run_id": result.run_id,
        "experiment_id": result.experiment_id,
        "registered_model": result.model_name,
        "model_version": result.model_version,
        "model_uri": result.model_uri,
        "prompt_uri": result.prompt_uri,
    }


def _logged_examples(run_id: str, name: str) -> list[dict]:
    import mlflow

    from promptomatix.tracking import record

    text = mlflow.artifacts.load_text(f"runs:/{run_id}/{record.data_artifact(name)}")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


