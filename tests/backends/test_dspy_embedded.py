"""The DSPy backend with the real embedded model (Gemma 3 270M base, in-process): BootstrapFewShot
through the text adapter, end to end into the registry."""

from __future__ import annotations

import json

import mlflow
import pandas as pd
import pytest
from mlflow import MlflowClient

import promptomatix

pytestmark = pytest.mark.embedded

POSITIVE = ["I loved every minute of it.", "A warm, funny and moving story.", "The acting is superb.",
            "Beautifully shot and well told.", "One of the best films this year.", "A delight from start to end.",
            "Charming, clever and full of heart.", "I would gladly watch it again."]
NEGATIVE = ["A dull, boring mess.", "The plot makes no sense at all.", "I walked out halfway through.",
            "Badly acted and far too long.", "The worst film I have seen in years.", "A tedious, joyless slog.",
            "Flat jokes and a lazy script.", "I want those two hours back."]
LABELS = ("positive", "negative")


def write(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return str(path)


def test_bootstrap_few_shot_with_the_embedded_model_registers_a_version_no_worse_than_the_start(tracking, tmp_path):
    pytest.importorskip("llama_cpp", reason="the embedded model needs the 'embedded' extra")
    rows = [{"text": t, "label": label} for pair in zip(POSITIVE, NEGATIVE) for t, label in zip(pair, LABELS)]
    train, valid = rows[:10], rows[10:]  # alternating labels: 5 + 5 to learn from, 3 + 3 to score

    result = promptomatix.optimize(
        raw_input="Classify the sentiment of a movie review as positive or negative.",
        backend="dspy", optimizer="BootstrapFewShot", model="embedded/gemma-3-270m",
        train_data=write(tmp_path / "train.jsonl", train), valid_data=write(tmp_path / "valid.jsonl", valid),
        task_type="classification", input_fields="text", output_fields="label",
        iterations=1, num_demos=4, num_threads=1, show_progress=False)

    assert result.optimized_score >= result.initial_score
    assert result.model_version == "1" and result.prompt_version == "1"
    program = json.loads(mlflow.artifacts.load_text(f"runs:/{result.run_id}/program.json"))
    # the saved program answers with the task's labels (scored per label by the embedded model)
    assert program["adapter"] == {"name": "text", "single_line": ["label"], "labels": ["negative", "positive"]}
    run = MlflowClient().get_run(result.run_id)
    assert run.data.metrics["total_calls"] == result.usage.calls > 0
    # the served model answers with a label for a new review
    served = mlflow.pyfunc.load_model(result.model_uri).predict(pd.DataFrame({"text": ["A wonderful film."]}))
    assert list(served.columns) == ["label"] and len(served) == 1
