"""notebooks/compare_prompt_versions.ipynb, executed by nbclient in this venv's kernel against a
sqlite store this test fills with three versions (scripted LLM); the kernel only reads it."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from conftest import FAKE_MODEL
from sentiment_data import answer_task

import promptomatix
from promptomatix.lifecycle import evaluate, promote

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "compare_prompt_versions.ipynb"
INTAKE = {"description": "Classify the sentiment of a movie review.", "task_type": "classification",
          "input_fields": ["review"], "output_fields": ["sentiment"], "labels": ["positive", "negative"]}

pytest.importorskip("ipykernel", reason="the notebook test needs the 'test' extra (ipykernel)")
from nbclient import NotebookClient  # noqa: E402


@pytest.fixture
def store(tracking, fake_llm, tmp_path):
    """Versions 1..3 of `reviews` (validation scores 1/4, 2/4, 4/4), version 3 evaluated on test
    data and promoted to champion."""
    fake_llm.rules = [("Request:", INTAKE), ("Improved instruction", {"instruction": "Guess the sentiment."}),
                      ("Sentiment:", answer_task)]
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps({"review": f"a {w} film {i}", "sentiment": "positive" if w == "good"
                                        else "negative"}) + "\n" for i, w in enumerate(["good", "bad"] * 2)))
    for quality in (1, 2, 4):
        promptomatix.optimize(raw_input=f"Classify the sentiment of a movie review QUALITY={quality}",
                              name="reviews", model=FAKE_MODEL, train_data=str(data), valid_data=str(data),
                              num_demos=0, iterations=1, candidates=1, num_threads=1, show_progress=False)
    evaluate("reviews@3", str(data), show_progress=False)
    promote("reviews", "3", "champion", show_progress=False)
    return tracking


def run_notebook(tmp_path, monkeypatch, **env):
    # The kernelspec starts `python`: make it this venv's, however pytest was started.
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    for key, value in env.items():
        monkeypatch.setenv(key, value)  # the kernel inherits this process's environment
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(notebook, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    return notebook


def outputs(notebook, kind: str) -> list:
    return [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs if o.output_type == kind]


def test_the_kernel_is_this_venvs_python(tmp_path, monkeypatch):
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("import sys; print(sys.prefix)")])
    monkeypatch.setattr(nbformat, "read", lambda *a, **k: notebook)
    run_notebook(tmp_path, monkeypatch)
    assert outputs(notebook, "stream")[0].text.strip() == sys.prefix


def test_the_notebook_plots_score_against_cost_and_length_for_every_version(store, tmp_path, monkeypatch):
    figure = tmp_path / "versions.png"
    notebook = run_notebook(tmp_path, monkeypatch, PROMPT_NAME="reviews", FIGURE_PATH=str(figure))

    assert not outputs(notebook, "error")
    assert figure.stat().st_size > 5000 and figure.read_bytes()[:4] == b"\x89PNG"
    assert any("image/png" in o.data for o in outputs(notebook, "display_data"))  # also displayed
    table = pd.read_csv(tmp_path / "versions.csv")  # the table the plot shows, saved next to it
    assert list(table["version"]) == [1, 2, 3]
    assert list(table["score"]) == [0.25, 0.5, 1.0] and list(table["score_basis"]) == ["validation"] * 2 + ["test"]
    assert table.loc[2, "aliases"] == "['champion']"
    assert (table["cost"] > 0).all() and (table["prompt_words"] > 0).all() and (table["run_tokens"] > 0).all()
    printed = "".join(o.text for o in outputs(notebook, "stream"))
    assert f"reviews in {store}" in printed and f"saved {figure}" in printed


def test_without_prompt_name_it_picks_the_first_registered_name(store, tmp_path, monkeypatch):
    monkeypatch.delenv("PROMPT_NAME", raising=False)
    notebook = run_notebook(tmp_path, monkeypatch, FIGURE_PATH="plot.png")
    assert not outputs(notebook, "error")
    assert (tmp_path / "plot.png").is_file()  # relative to the notebook's working directory
    assert "reviews in " in "".join(o.text for o in outputs(notebook, "stream"))
