"""`promptomatix compare`: every registered version in a table (or JSON), on a real sqlite store.

Versions come from `make_versions` (tests/lifecycle_fixtures.py): QUALITY=n scores n/4 on the
4-example sets.
"""

from __future__ import annotations

import json
import re

import mlflow
from click.testing import CliRunner
from conftest import one_error_line
from lifecycle_fixtures import invoke
from mlflow import MlflowClient

from promptomatix.cli import cli
from promptomatix.cli_lifecycle import add_to
from promptomatix.lifecycle import compare, evaluate
from promptomatix.scoring import prompt_words


# --- compare -------------------------------------------------------------------------------

def test_compare_lists_every_version_with_aliases_scores_and_provenance(make_versions, files):
    make_versions(2, 4)
    MlflowClient().set_registered_model_alias("reviews", "champion", "1")
    evaluate("reviews@2", files["test"], show_progress=False)

    result = invoke("compare", "reviews")
    assert result.exit_code == 0, result.output
    header, rule, first, second = result.stdout.splitlines()
    assert header.split() == ["version", "parent", "aliases", "validation", "test", "words", "cost", "backend",
                              "run", "id", "created"]
    assert set(rule) <= {"-", " "}
    runs = {str(v.version): v.run_id for v in MlflowClient().search_model_versions("name = 'reviews'")}
    cells = first.split()
    assert cells[:5] == ["1", "-", "champion", "0.5000", "-"]  # no parent; never evaluated: no test score
    assert cells[7:9] == ["meta_prompt", runs["1"]]
    assert re.fullmatch(r"\d+", cells[5]) and cells[6].startswith("$")
    assert re.fullmatch(r"\d{4}-\d\d-\d\d", cells[9])
    cells = second.split()
    assert cells[:5] == ["2", "-", "-", "1.0000", "1.0000"] and cells[8] == runs["2"]


def test_compare_json_is_for_scripts(make_versions, files):
    make_versions(2)
    report = evaluate("reviews@1", files["test"], show_progress=False)
    result = invoke("compare", "reviews", "--format", "json")
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.stdout)
    prompt = mlflow.genai.load_prompt("prompts:/reviews-prompt/1")
    assert row["version"] == "1" and row["aliases"] == [] and row["parent_version"] is None
    assert row["validation_score"] == 0.5 and row["test_score"] == report.score == 0.5
    assert row["metric"] == "classification:accuracy"
    assert row["test_data_digest"] == report.data_digest
    assert row["prompt_words"] == prompt_words(prompt.template)
    assert row["cost"] > 0 and row["backend"] == "meta_prompt" and row["task_type"] == "classification"
    assert row["created"].endswith("+00:00")
    assert compare("reviews") == [row]  # the Python API returns the same rows


def test_compare_of_an_unknown_name_is_one_line(tracking):
    one_error_line(invoke("compare", "nothing-here"), "no registered model named 'nothing-here'")


def test_compare_of_a_prompt_name_points_to_its_model(make_versions):
    make_versions(1)
    one_error_line(invoke("compare", "reviews-prompt"), "is a prompt, not a registered model", "'reviews'")


def test_adding_the_commands_twice_is_harmless(tracking):
    add_to(cli)
    add_to(cli)
    assert {"compare", "evaluate", "promote", "rollback", "optimize"} <= set(cli.commands)
    result = CliRunner().invoke(cli, ["promote", "--help"])
    assert result.exit_code == 0 and "same evaluation data" in result.stdout
