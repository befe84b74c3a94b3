"""`optimize(from_=...)` / `optimize --from`: a new version from a registered one and its open
feedback, with the lineage on the run, the version and in `compare`."""

from __future__ import annotations


import mlflow
import pytest
from click.testing import CliRunner
from conftest import FAKE_MODEL, written_inputs
from mlflow import MlflowClient
from optimize_fixtures import BETTER, INTAKE, answer_task, synthetic, written

import promptomatix
from promptomatix.cli import cli
from promptomatix.errors import RegistryError
from promptomatix.lifecycle import compare
from promptomatix.lifecycle.feedback import add_feedback, list_feedback

COMMENT = "Say that the answer must be one lowercase word: positive or negative."
PLAIN = "Answer positive or negative."


@pytest.fixture
def reviewed(tracking, fake_llm):
    """Version 1 of `reviews` (a plain instruction that scores 0) with two open comments."""
    synthetic.counter = 0
    fake_llm.rules = [("Request:", INTAKE), ("new, varied and realistic examples", synthetic),
                      ("Improved instruction", {"instruction": PLAIN}), written_inputs(written, "Sentiment"),
                      ("Sentiment:", answer_task)]
    first = promptomatix.optimize(raw_input="Classify the sentiment of a movie review as positive or negative",
                                  model=FAKE_MODEL, synthetic_data_size=8, iterations=1, candidates=1,
                                  num_threads=2, show_progress=False, name="reviews")
    assert first.model_version == "1" and first.optimized_score == 0.0
    prompt = mlflow.genai.load_prompt(first.prompt_uri).template
    comments = [add_feedback("reviews@1", COMMENT, text=prompt.split("\n")[0], type="format", priority="high"),
                add_feedback("reviews@1", "Too vague.", type="content", priority="critical")]
    # from now on the optimizer model writes the instruction the comments ask for
    fake_llm.rules[2] = ("Improved instruction", {"instruction": BETTER})
    fake_llm.calls.clear()
    return first, comments


def test_from_a_version_uses_its_prompt_data_and_open_feedback(reviewed, fake_llm):
    first, comments = reviewed
    second = promptomatix.optimize(from_="reviews@1", iterations=1, candidates=1, show_progress=False)

    # no intake and no new data: the version's task spec and data sets are reused
    assert not any(k in c["prompt"] for c in fake_llm.calls for k in ("Request:", "new, varied"))
    client = MlflowClient()
    for part in ("train", "valid"):
        assert mlflow.artifacts.load_text(f"runs:/{second.run_id}/data/{part}.jsonl") == \
            mlflow.artifacts.load_text(f"runs:/{first.run_id}/data/{part}.jsonl")
    assert second.initial_prompt == first.prompt  # it starts from the registered prompt
    # the optimizer model read both comments, the critical one first
    rewrite = next(c["prompt"] for c in fake_llm.calls if "Improved instruction" in c["prompt"])
    assert rewrite.index("Too vague.") < rewrite.index(COMMENT)
    assert "[critical, content]" in rewrite and "[high, format]" in rewrite

    # lineage on the run, on the new version, and in compare
    assert (second.model_name, second.model_version) == ("reviews", "2") and second.optimized_score == 1.0
    tags = client.get_run(second.run_id).data.tags
    assert tags["promptomatix.parent_run_id"] == first.run_id
    assert tags["promptomatix.parent_version"] == "models:/reviews/1"
    assert set(tags["promptomatix.feedback_used"].split(",")) == {c.id for c in comments}
    version = client.get_model_version("reviews", "2")
    assert version.tags["parent_version"] == "1" and version.tags["parent_run_id"] == first.run_id
    assert [(row["version"], row["parent_version"]) for row in compare("reviews")] == [("1", None), ("2", "1")]
    # the comments it used are resolved by the new version
    assert list_feedback("reviews@1", resolved=False) == []
    assert {f.resolved_by for f in list_feedback("reviews@1")} == {"models:/reviews/2"}


def test_optimize_from_on_the_command_line(reviewed):
    first, _ = reviewed
    out = CliRunner().invoke(cli, ["optimize", "--from", "reviews@1", "--iterations", "1", "--candidates", "1",
                                   "--quiet"], catch_exceptions=False)
    assert out.exit_code == 0, out.output
    assert "models:/reviews/2" in out.output
    table = CliRunner().invoke(cli, ["compare", "reviews"]).output.splitlines()
    assert table[0].split()[:2] == ["version", "parent"]
    assert table[3].split()[:2] == ["2", "1"]
    # a version without open feedback still works: nothing is resolved, the run says so by omission
    third = promptomatix.optimize(from_="reviews@2", iterations=1, candidates=1, show_progress=False)
    assert third.model_version == "3"
    assert "promptomatix.feedback_used" not in MlflowClient().get_run(third.run_id).data.tags


def test_from_an_unknown_version_fails_before_any_run(reviewed):
    with pytest.raises(RegistryError, match="no version 9"):
        promptomatix.optimize(from_="reviews@9")
    out = CliRunner().invoke(cli, ["optimize", "--from", "nope@1"])
    assert out.exit_code == 2 and out.stderr.strip() == "Error: no registered model named 'nope'"
    assert len(mlflow.search_runs(search_all_experiments=True)) == 1
