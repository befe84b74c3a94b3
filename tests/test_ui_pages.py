"""The MLflow UI as a user of this project sees it (issue 42): each page opened in headless
Chromium (Debian's `chromium`) and read for what it is for, with scripts/ui_screenshots.py's
checks. One store (an optimization with the scripted model, a `promptomatix evaluate` of its
version and a promotion) and one `mlflow server` for all pages; the server starts after the
store is written (one writer at a time on the sqlite file) and is stopped at the end, also on
failure. Without Chromium the tests skip, saying why (they fail where
PROMPTOMATIX_REQUIRE_SERVICES is set, as in CI)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import mlflow
import optimize_fixtures as scripted_llm
import pytest
from click.testing import CliRunner
from conftest import FAKE_MODEL, skip_or_fail, written_inputs
from mlflow import MlflowClient
from test_mlflow_records import param_problems

import promptomatix
from promptomatix.cli import cli

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "ui_screenshots.py"
_spec = importlib.util.spec_from_file_location("ui_screenshots", SCRIPT)
ui = importlib.util.module_from_spec(_spec)
sys.modules["ui_screenshots"] = ui  # its dataclasses look their module up
_spec.loader.exec_module(ui)

pytestmark = [pytest.mark.e2e]
NAME = "sentiment"
TEST_ROWS = [{"review": f"a {word} film {i}", "sentiment": label}
             for i, (word, label) in enumerate([("good", "positive"), ("bad", "negative")] * 3)]


def make_store(folder: Path, llm) -> object:
    """An optimization with the scripted model (test_api's), its version evaluated on 6 rows
    and promoted: the `Facts` the pages are checked against."""
    scripted_llm.synthetic.counter = 0
    llm.rules = [("Request:", scripted_llm.INTAKE), ("new, varied and realistic examples", scripted_llm.synthetic),
                 written_inputs(scripted_llm.written, "Sentiment"),
                 ("Improved instruction", {"instruction": scripted_llm.BETTER}),
                 ("Sentiment:", scripted_llm.answer_task)]
    result = promptomatix.optimize(raw_input="Classify the sentiment of a movie review as positive or negative",
                                   name=NAME, model=FAKE_MODEL, synthetic_data_size=8, iterations=1, candidates=2,
                                   num_threads=2, show_progress=False)
    data = folder / "test.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in TEST_ROWS))
    return ui.evaluate_and_promote(result, str(data), lambda *args: CliRunner().invoke(
        cli, list(args), catch_exceptions=False))


@pytest.fixture(scope="module")
def pages(tmp_path_factory, _fake_handler):
    """A `ui.Looker` on the server: `pages.page(name)`, `pages.problems(name)`."""
    browser = ui.find_chromium()
    if browser is None:
        skip_or_fail("no Chromium to open the MLflow UI with (Debian: apt-get install chromium)")
    folder = tmp_path_factory.mktemp("ui")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as patch:  # as conftest's `tracking`, for the module
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        patch.setenv("MLFLOW_REGISTRY_URI", uri)
        patch.delenv("MLFLOW_RUN_ID", raising=False)
        patch.setenv("MLFLOW_EXPERIMENT_ID", "")
        patch.delenv("MLFLOW_EXPERIMENT_ID")
        patch.setattr("mlflow.tracking.fluent._active_experiment_id", None)
        patch.chdir(folder)
        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(uri)
        try:
            facts = make_store(folder, _fake_handler)
            with ui.UiServer(uri, folder) as server:
                yield ui.Looker(browser, server.wait(), facts, folder)
        finally:
            while mlflow.active_run():
                mlflow.end_run()
            mlflow.set_tracking_uri(None)
            mlflow.set_registry_uri(None)


def test_the_trace_list_shows_an_input_and_an_output_for_every_trace(pages):
    assert pages.problems("traces") == []


def test_the_sessions_page_lists_the_optimization(pages):
    assert pages.problems("sessions") == []


def test_the_datasets_page_lists_the_data_a_version_was_evaluated_on(pages):
    assert pages.problems("datasets", ui.check_datasets) == []


def test_the_datasets_page_lists_the_data_the_optimization_ran_on(pages):
    assert pages.problems("datasets", ui.check_run_data_sets) == []


def test_the_version_evaluations_page_lists_the_evaluation(pages):
    assert pages.problems("evaluation-runs") == []


def test_the_experiment_prompts_page_lists_the_prompt(pages):
    assert pages.problems("prompts") == []


def test_the_run_page_shows_every_param_once_none_empty_or_quoted(pages):
    assert pages.problems("run") == []
    shown = ui.params_shown(pages.page("run"))
    assert shown == pages.facts.params and param_problems(shown) == []
    assert MlflowClient().get_run(pages.facts.run_id).info.status == "FINISHED"


def test_the_model_version_page_says_why_it_holds_the_alias_and_how_to_promote(pages):
    assert pages.facts.why.startswith("Promotion (champion")
    assert pages.problems("model-version") == []


def test_the_prompt_version_page_says_why_it_holds_the_alias(pages):
    """Its commit message (the page's description) starts with the reason: its page lists only
    its first 3 tags, so the `promotion.<alias>` tag alone would not be seen."""
    assert pages.problems("prompt-version") == []
