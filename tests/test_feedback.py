"""`promptomatix feedback ...` and `promptomatix.lifecycle.feedback`: comments on spans of a registered
prompt version, stored durably in MLflow (a version tag and a run artifact per comment).

The versions come from real scripted optimizations in a real sqlite store, made once for the
module (`store`) and stripped of feedback before each test (`reviews`): see
tests/feedback_fixtures.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timezone

import mlflow
import pytest
from click.testing import CliRunner
from conftest import one_error_line
from feedback_fixtures import invoke, prompt_of, store_state, tag_rows
from mlflow import MlflowClient

from promptomatix.cli import cli
from promptomatix.cli.feedback import add_to
from promptomatix.errors import ConfigError, RegistryError
from promptomatix.lifecycle.feedback import (PRIORITIES, TYPES, Feedback, add_feedback, export_feedback, feedback_summary,
                                   list_feedback, resolve_feedback)

# --- add ----------------------------------------------------------------------------------

def test_a_comment_on_offsets_is_stored_on_the_version_and_its_run(reviews, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "alice")  # the MLflow user is the default author
    prompt = prompt_of(1)
    start = prompt.index("Review:")
    item = add_feedback("reviews@1", "Name the labels here.", start=start, end=start + 7, type="format",
                        priority="high")

    assert isinstance(item, Feedback) and len(item.id) == 12
    assert (item.name, item.version, item.start, item.end, item.text) == ("reviews", "1", start, start + 7, "Review:")
    assert (item.comment, item.type, item.priority, item.author) == ("Name the labels here.", "format", "high", "alice")
    assert (item.machine, item.resolved, item.resolved_by) == (False, False, None)
    created = datetime.fromisoformat(item.created)
    assert created.utcoffset().total_seconds() == 0 and abs(datetime.now(timezone.utc) - created).total_seconds() < 60
    version = MlflowClient().get_model_version("reviews", "1")
    assert item.run_id == version.run_id is not None
    # durable: the sqlite file itself holds the record, and the version's run holds the same JSON
    assert tag_rows(reviews["db"]) == {item.id: item.to_dict() | {"_version": "1"}}
    artifact = mlflow.artifacts.load_text(f"runs:/{item.run_id}/feedback/{item.id}.json")
    assert json.loads(artifact) == item.to_dict()
    # and a fresh client on the store reads it back
    again = MlflowClient(tracking_uri=reviews["uri"], registry_uri=reviews["uri"]).get_model_version("reviews", "1")
    assert json.loads(again.tags[f"feedback.{item.id}"]) == item.to_dict()
    assert list_feedback("reviews@1") == [item]


def test_cli_add_by_text_prints_the_id_and_span_and_says_when_the_text_repeats(reviews):
    prompt = prompt_of(2)
    result = invoke("feedback", "add", "reviews@champion", "--text", "Sentiment:", "--comment", "Ask for one word.",
                    "--type", "style", "--priority", "low", "--author", "bob")
    assert result.exit_code == 0, result.output
    (item,) = list_feedback("reviews")
    at = prompt.index("Sentiment:")
    assert result.stdout.strip() == f'{item.id}  models:/reviews/2 [{at}:{at + 10}] "Sentiment:"'
    assert (item.version, item.author, item.type, item.priority, item.text) == ("2", "bob", "style", "low", "Sentiment:")

    # "review" occurs twice ("movie review", "{{review}}"): the first is used, and the CLI says so
    result = invoke("feedback", "add", "reviews@2", "--text", "review", "--comment", "Say 'film review'.")
    assert result.exit_code == 0, result.output
    first = prompt.index("review")
    assert f"[{first}:{first + 6}]" in result.stdout and "(first of 2 occurrences" in result.stdout


def test_no_span_means_the_whole_prompt_and_one_offset_runs_to_the_prompts_edge(reviews):
    prompt = prompt_of(1)
    whole = add_feedback("reviews@1", "Too short overall.")
    assert (whole.start, whole.end, whole.text) == (0, len(prompt), prompt)
    tail = add_feedback("reviews@1", "The query part.", start=prompt.index("Review:"))
    assert tail.text == "Review: {{review}}\nSentiment:"
    head = add_feedback("reviews@1", "The instruction.", end=prompt.index("\n"))
    assert head.text == "Classify the sentiment of a movie review QUALITY=2"


def test_a_long_comment_beyond_a_run_tags_limit_is_kept_whole(reviews):
    comment = "word " * 4000  # 20000 characters: more than an MLflow run tag holds (8000)
    item = add_feedback("reviews@1", comment)
    (read,) = list_feedback("reviews@1")
    assert read.comment == comment.strip() == item.comment


@pytest.mark.parametrize(("args", "needles"), [
    (["--start", "5", "--end", "500"], ["end offset 500 is outside the prompt (0 to 81)"]),
    (["--start", "-1", "--end", "3"], ["start offset -1 is outside the prompt"]),
    (["--start", "9", "--end", "9"], ["the span is empty: start 9 must be less than end 9"]),
    (["--start", "82"], ["start offset 82 is outside the prompt (0 to 81)"]),
    (["--text", "Label:"], ["the text 'Label:' does not occur in the prompt"]),
    (["--text", "Review:", "--start", "0"], ["give the span as --text or as --start/--end, not both"]),
    (["--comment", "   "], ["the comment is empty"]),
])
def test_bad_spans_and_values_are_one_line_and_write_nothing(reviews, args, needles):
    assert len(prompt_of(1)) == 81
    before = store_state()
    command = ["feedback", "add", "reviews@1", *args]
    if "--comment" not in args:
        command += ["--comment", "fix this"]
    one_error_line(invoke(*command), *needles)
    assert store_state() == before


@pytest.mark.parametrize(("ref", "needles"), [
    ("nobody@1", ["no registered model named 'nobody'"]),
    ("reviews@7", ["model 'reviews' has no version 7", "versions: 1, 2"]),
    ("reviews@staging", ["model 'reviews' has no alias 'staging'", "aliases: champion"]),
    ("reviews", ["names no version"]),
    ("reviews-prompt@1", ["is a prompt, not a registered model"]),
])
def test_unknown_names_versions_and_aliases_are_one_line_and_write_nothing(reviews, ref, needles):
    before = store_state()
    one_error_line(invoke("feedback", "add", ref, "--comment", "fix this"), *needles)
    assert store_state() == before


def test_unknown_types_priorities_and_over_long_comments_are_refused_by_the_python_api(reviews):
    before = store_state()
    with pytest.raises(ConfigError, match="unknown type 'tone': use one of general, format, content, style"):
        add_feedback("reviews@1", "x", type="tone")
    with pytest.raises(ConfigError, match="unknown priority 'urgent': use one of low, medium, high, critical"):
        add_feedback("reviews@1", "x", priority="urgent")
    with pytest.raises(ConfigError, match="MLflow keeps at most 100000 in a version tag"):
        add_feedback("reviews@1", "x" * 100_000)
    with pytest.raises(RegistryError, match="no registered model named 'nobody'"):
        add_feedback("nobody@1", "x")
    assert store_state() == before
    # the CLI offers exactly the API's choices
    result = invoke("feedback", "add", "--help")
    assert all(choice in result.stdout for choice in TYPES + PRIORITIES)


# --- list, summary, export, resolve --------------------------------------------------------

@pytest.fixture
def several(reviews):
    """Five comments: three on v1, two on v2 (one of them machine-made); one resolved."""
    made = {
        "a": add_feedback("reviews@1", "Name the labels.", text="Sentiment:", type="format", priority="high"),
        "b": add_feedback("reviews@1", "Drop the QUALITY marker.", text="QUALITY=2", type="content",
                          priority="critical"),
        "c": add_feedback("reviews@1", "Friendlier tone.", type="style", priority="low"),
        "d": add_feedback("reviews@2", "Say what a review is.", text="movie review", type="content"),
        "e": add_feedback("reviews@2", "Answer with one word.", type="format", priority="high", machine=True,
                          author="critique:scripted/fake"),
    }
    (made["b"],) = resolve_feedback("reviews", [made["b"].id], by="reviews@2")
    return made


def ids(items) -> list[str]:
    return [item.id for item in items]


def test_list_filters_by_version_type_priority_state_and_origin(several):
    a, b, c, d, e = (several[k] for k in "abcde")
    assert ids(list_feedback("reviews")) == ids([a, b, c, d, e])  # oldest version first, then oldest
    assert ids(list_feedback("reviews@1")) == ids([a, b, c])
    assert ids(list_feedback("reviews@champion")) == ids(list_feedback("models:/reviews/2")) == ids([d, e])
    assert ids(list_feedback("reviews", type="format")) == ids([a, e])
    assert ids(list_feedback("reviews", priority="high")) == ids([a, e])
    assert ids(list_feedback("reviews", resolved=True)) == ids([b])
    assert ids(list_feedback("reviews", resolved=False, type="content")) == ids([d])
    assert ids(list_feedback("reviews", machine=True)) == ids([e])
    assert ids(list_feedback("reviews@1", machine=False, priority="low")) == ids([c])
    with pytest.raises(ConfigError, match="unknown type 'tone'"):
        list_feedback("reviews", type="tone")

    # the CLI: the same filters, as JSON for scripts and as a table
    result = invoke("feedback", "list", "reviews", "--open", "--human", "--format", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == [item.to_dict() for item in (a, c, d)]
    result = invoke("feedback", "list", "reviews", "--machine")
    header, rule, line = result.stdout.splitlines()
    assert header.split()[:8] == ["id", "version", "span", "type", "priority", "state", "by", "author"]
    assert line.split()[:8] == [e.id, "2", f"0:{len(prompt_of(2))}", "format", "high", "open", "machine",
                                "critique:scripted/fake"]
    assert line.endswith("Answer with one word.")
    assert invoke("feedback", "list", "reviews@1", "--type", "general").stdout.strip() == "no feedback on reviews@1"
    one_error_line(invoke("feedback", "list", "nobody"), "no registered model named 'nobody'")


def test_summary_counts_by_type_priority_state_and_origin(several):
    assert feedback_summary("reviews") == {
        "total": 5,
        "by_type": {"general": 0, "format": 2, "content": 2, "style": 1},
        "by_priority": {"low": 1, "medium": 1, "high": 2, "critical": 1},
        "by_state": {"open": 4, "resolved": 1},
        "by_origin": {"human": 4, "machine": 1}}
    assert feedback_summary("reviews@2")["by_type"] == {"general": 0, "format": 1, "content": 1, "style": 0}
    result = invoke("feedback", "summary", "reviews@1")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "3 feedback items on reviews@1",
        "state:    open 2  resolved 1",
        "type:     general 0  format 1  content 1  style 1",
        "priority: low 1  medium 0  high 1  critical 1",
        "origin:   human 3  machine 0"]
    assert json.loads(invoke("feedback", "summary", "reviews", "--format", "json").stdout) == feedback_summary("reviews")


def test_export_writes_every_comment_with_a_summary(several, tmp_path):
    out = tmp_path / "out" / "feedback.json"
    result = invoke("feedback", "export", "reviews", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"wrote 5 feedback items to {out}"
    document = json.loads(out.read_text())
    assert document["ref"] == "reviews" and document["count"] == 5
    assert document["feedback"] == [item.to_dict() for item in list_feedback("reviews")]
    assert document["summary"] == feedback_summary("reviews")
    assert document["feedback"][1]["resolved"] is True and document["feedback"][4]["machine"] is True
    assert export_feedback("reviews@2", str(tmp_path / "v2.json")) == 2
    # a path that cannot be written is bad input: one line
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    one_error_line(invoke("feedback", "export", "reviews", "--out", str(blocker / "x.json")),
                   f"{blocker / 'x.json'}: cannot write")


def test_resolve_rewrites_the_tag_and_the_artifact(several, reviews):
    a, b = several["a"], several["b"]
    assert (b.resolved, b.resolved_by) == (True, "models:/reviews/2")  # the ref is stored as a URI
    result = invoke("feedback", "resolve", "reviews@1", a.id, "--by", "wontfix: the labels are in the spec")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"resolved {a.id} on models:/reviews/1 by wontfix: the labels are in the spec"
    stored = tag_rows(reviews["db"])
    assert stored[a.id]["resolved"] is True and stored[a.id]["resolved_by"] == "wontfix: the labels are in the spec"
    assert stored[b.id]["resolved_by"] == "models:/reviews/2"
    artifact = json.loads(mlflow.artifacts.load_text(f"runs:/{a.run_id}/feedback/{a.id}.json"))
    assert artifact == {k: v for k, v in stored[a.id].items() if k != "_version"}
    assert ids(list_feedback("reviews", resolved=False)) == ids([several["c"], several["d"], several["e"]])


def test_resolving_unknown_ids_or_by_an_unknown_version_changes_nothing(several):
    before = store_state()
    one_error_line(invoke("feedback", "resolve", "reviews@2", several["a"].id, "--by", "reviews@2"),
                   f"no feedback with id '{several['a'].id}' on 'reviews@2'")  # it is on v1
    one_error_line(invoke("feedback", "resolve", "reviews", several["c"].id, "nope", "--by", "x"),
                   "no feedback with id 'nope'")
    one_error_line(invoke("feedback", "resolve", "reviews", several["c"].id, "--by", "reviews@9"),
                   "model 'reviews' has no version 9")
    with pytest.raises(ConfigError, match="say what resolved the feedback"):
        resolve_feedback("reviews", [several["c"].id], by=" ")
    assert store_state() == before


def test_feedback_outlives_the_process_that_wrote_it(several, reviews):
    """Another process, with nothing but the store's URI, lists the same comments."""
    env = dict(os.environ, MLFLOW_TRACKING_URI=reviews["uri"], MLFLOW_REGISTRY_URI=reviews["uri"],
               LITELLM_LOCAL_MODEL_COST_MAP="True")
    code = ("import sys; from promptomatix.cli import cli; from promptomatix.cli.feedback import add_to; "
            "add_to(cli); cli(sys.argv[1:])")
    done = subprocess.run([sys.executable, "-c", code, "feedback", "list", "reviews", "--format", "json"],
                          env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [item.to_dict() for item in list_feedback("reviews")]


def test_adding_the_commands_twice_is_harmless(store):
    add_to(cli)
    add_to(cli)
    assert {"feedback", "critique", "optimize", "compare"} <= set(cli.commands)
    result = CliRunner().invoke(cli, ["feedback", "--help"])
    assert result.exit_code == 0
    assert {"add", "list", "export", "summary", "resolve"} <= set(result.stdout.split())
