"""`promptomatix compare`: every registered version in a table (or JSON), each score with its
interval, rows and data, on a real sqlite store; `compare --data FILE` scores the versions on the
same rows and ranks them.

Versions come from `make_versions` (tests/lifecycle_fixtures.py): QUALITY=n scores n/4 on the
4-example sets and gets rows 0..n-1 of `rows(0, count=k)` right; `synthetic_versions` registers
versions from runs that each wrote their own (different) synthetic rows.
"""

from __future__ import annotations

import json
import logging
import re

import mlflow
import pytest
from click.testing import CliRunner
from conftest import FAKE_MODEL, one_error_line, written_inputs
from lifecycle_fixtures import INTAKE, invoke, registry_state, rows, write_jsonl
from mlflow import MlflowClient
from optimize_fixtures import synthetic, written
from sentiment_data import answer_task

import promptomatix
from promptomatix.cli import cli
from promptomatix.cli.lifecycle import add_to, format_ranking, NOT_COMPARABLE
from promptomatix.lifecycle import compare, compare_data, evaluate
from promptomatix.scoring import prompt_words, stats

SCORE = r"\d\.\d{3} \[\d\.\d{3}, \d\.\d{3}\] n=\d+"  # a score with its interval and rows


def columns(table: str) -> list[dict]:
    """The rows of an aligned table (titles, a rule of dashes, rows) as dicts of title -> cell,
    cut at the rule's column starts; the lines after the table are left out."""
    lines = table.splitlines()
    starts = [m.start() for m in re.finditer(r"-+", lines[1])]
    bounds = list(zip(starts, starts[1:] + [None]))
    titles = [lines[0][a:b].strip() for a, b in bounds]
    found = []
    for line in lines[2:]:
        if not line.strip() or line.startswith(("*", "scores on", "not scored")):
            break
        found.append(dict(zip(titles, (line[a:b].strip() for a, b in bounds))))
    return found


def same_quality(prompt: str, params: dict) -> str:
    """A rewrite that keeps the QUALITY=n of the instruction it rewrites (whichever wins, the
    version answers as QUALITY=n)."""
    quality = re.search(r"QUALITY=\d+", prompt)
    return json.dumps({"instruction": f"Guess the sentiment {quality.group(0) if quality else ''}".strip()})


@pytest.fixture
def synthetic_versions(tracking, fake_llm):
    """`make(*qualities)`: one version of `reviews` per quality, each from a run that wrote its own
    8 synthetic rows (the scripted writer numbers rows on across runs: no two runs share rows)."""
    synthetic.counter = 0
    fake_llm.rules = [("Request:", INTAKE), ("new, varied and realistic examples", synthetic),
                      written_inputs(written, "Sentiment"), ("Improved instruction", same_quality),
                      ("Sentiment:", answer_task)]

    def make(*qualities: int) -> list[str]:
        return [promptomatix.optimize(raw_input=f"Classify the sentiment of a movie review QUALITY={quality}",
                                      name="reviews", model=FAKE_MODEL, synthetic_data_size=8, iterations=1,
                                      candidates=1, num_threads=1, show_progress=False).model_version
                for quality in qualities]

    return make


# --- compare -------------------------------------------------------------------------------

def test_compare_lists_every_version_with_aliases_scores_intervals_and_data(make_versions, files):
    make_versions(2, 4)
    MlflowClient().set_registered_model_alias("reviews", "champion", "1")
    report = evaluate("reviews@2", files["test"], show_progress=False)

    result = invoke("compare", "reviews")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["version", "parent", "aliases", "validation", "validation", "data", "test", "test",
                                "data", "words", "cost", "backend", "run", "id", "created"]
    assert set(lines[1]) <= {"-", " "} and len(lines) == 4  # both on the same data: no note
    first, second = columns(result.stdout)
    runs = {str(v.version): v.run_id for v in MlflowClient().search_model_versions("name = 'reviews'")}
    digest = (compare("reviews")[0])["validation_data_digest"]
    assert (first["version"], first["parent"], first["aliases"]) == ("1", "-", "champion")
    # the validation score with its Wilson interval on the 4 validation rows, and the file it is on
    assert first["validation"] == f"{stats.wilson(2, 4)}"
    assert first["validation data"] == f"valid.jsonl {digest}" and re.fullmatch(r"[0-9a-f]{8}", digest)
    assert first["test"] == first["test data"] == "-"  # never evaluated
    assert first["backend"] == "meta_prompt" and first["run id"] == runs["1"]
    assert re.fullmatch(r"\d+", first["words"]) and first["cost"].startswith("$")
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d", first["created"])
    assert second["validation"] == f"{stats.wilson(4, 4)}" and second["validation data"] == f"valid.jsonl {digest}"
    assert second["test"] == f"{stats.wilson(4, 4)}" == f"{report.estimate}"
    assert second["test data"] == f"test.jsonl {report.data_digest}"


def test_compare_json_is_for_scripts(make_versions, files):
    make_versions(2)
    report = evaluate("reviews@1", files["test"], show_progress=False)
    result = invoke("compare", "reviews", "--format", "json")
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.stdout)
    prompt = mlflow.genai.load_prompt("prompts:/reviews-prompt/1")
    assert row["version"] == "1" and row["aliases"] == [] and row["parent_version"] is None
    assert row["validation_score"] == 0.5 and row["test_score"] == report.score == 0.5
    interval = stats.wilson(2, 4)
    assert (row["validation_score_low"], row["validation_score_high"], row["validation_rows"]) == pytest.approx(
        (interval.low, interval.high, 4))
    assert row["validation_data"] == files["valid"] and re.fullmatch(r"[0-9a-f]{8}", row["validation_data_digest"])
    assert (row["test_score_low"], row["test_score_high"], row["test_rows"]) == pytest.approx(
        (round(interval.low, 4), round(interval.high, 4), 4))
    assert row["test_data"] == files["test"] and row["test_data_digest"] == report.data_digest
    assert row["validation_comparable"] is True and row["test_comparable"] is True
    assert row["metric"] == "classification:accuracy"
    assert row["prompt_words"] == prompt_words(prompt.template)
    assert row["cost"] > 0 and row["backend"] == "meta_prompt" and row["task_type"] == "classification"
    assert row["created"].endswith("+00:00")
    assert compare("reviews") == [row]  # the Python API returns the same rows


def test_versions_recorded_before_intervals_show_what_there_is(make_versions, files, monkeypatch):
    make_versions(2)
    evaluate("reviews@1", files["test"], show_progress=False)
    client = MlflowClient()
    for key in ("test_score_low", "test_score_high", "test_rows"):  # as `evaluate` tagged versions before
        client.delete_model_version_tag("reviews", "1", key)
    monkeypatch.setattr("promptomatix.lifecycle.versions.run_of", lambda version: None)  # its run is gone

    (row,) = columns(invoke("compare", "reviews").stdout)
    assert (row["validation"], row["validation data"]) == ("0.500", "-")
    assert row["test"] == "0.500" and row["test data"].startswith("test.jsonl ")
    (data,) = compare("reviews")
    assert data["validation_score_low"] is data["validation_rows"] is data["validation_comparable"] is None
    assert data["test_score_low"] is data["test_rows"] is None and data["test_comparable"] is True


def test_scores_on_different_synthetic_data_are_not_comparable_until_scored_on_common_rows(synthetic_versions,
                                                                                           tmp_path, monkeypatch):
    """The issue's done-when: two versions validated on different synthetic rows are said not
    comparable; `compare --data` then ranks them on common rows with intervals."""
    synthetic_versions(1, 8)
    found = compare("reviews")
    digests = [row["validation_data_digest"] for row in found]
    assert digests[0] != digests[1] and all(digests)
    assert [row["validation_data"] for row in found] == ["synthetic", "synthetic"]
    assert [row["validation_comparable"] for row in found] == [False, False]

    result = invoke("compare", "reviews")
    assert result.exit_code == 0, result.output
    print(result.stdout)  # the exact output, for the record (pytest -s)
    first, second = columns(result.stdout)
    assert re.fullmatch(SCORE + " \\*", first["validation"]) and second["validation"].endswith(" *")
    assert (first["validation data"], second["validation data"]) == (f"synthetic {digests[0]}",
                                                                      f"synthetic {digests[1]}")
    *_, note, last = result.stdout.splitlines()
    assert note == (f"* validation scores are on 2 different data sets: synthetic {digests[0]} (version 1); "
                    f"synthetic {digests[1]} (version 2)")
    assert last == NOT_COMPARABLE == ("scores on different data are not comparable; use --data FILE to score them "
                                      "on the same rows")

    monkeypatch.setenv("MLFLOW_GENAI_EVAL_MAX_WORKERS", "4")  # see lifecycle_fixtures.big_data
    common = write_jsonl(tmp_path / "common.jsonl", rows(0, count=8))
    ranked = invoke("compare", "reviews", "--data", common, "--quiet")
    assert ranked.exit_code == 0, ranked.output
    print(ranked.stdout)
    expected = stats.compare([1.0] * 8, [1.0] + [0.0] * 7)  # a: the best (version 2), b: version 1
    head, *table = ranked.stdout.splitlines()
    digest = MlflowClient().get_model_version("reviews", "2").tags["test_data_digest"]
    assert head == (f"reviews: 2 versions scored with accuracy on the same 8 rows of common.jsonl (digest {digest}); "
                    f"16 model calls sent, 16 planned (--max-calls 1000)")
    best, other = columns("\n".join(table))
    assert best == {"rank": "1", "version": "2", "aliases": "-", "score": str(expected.a),
                    "vs best (paired)": "-", "verdict": "best"}
    assert other == {"rank": "2", "version": "1", "aliases": "-", "score": str(expected.b),
                     "vs best (paired)": compare_data.difference_text(expected), "verdict": "worse"}
    assert expected.worse and "McNemar exact p=" in other["vs best (paired)"]
    # the scores went through `evaluate`: both versions now carry test scores on the common rows
    after = invoke("compare", "reviews")
    assert after.stdout.splitlines()[-1] == NOT_COMPARABLE  # the validation scores still differ ...
    assert not any(line.startswith("* test") for line in after.stdout.splitlines())  # ... the test scores do not
    assert [row["test_comparable"] for row in compare("reviews")] == [True, True]


def test_compare_with_data_refuses_more_calls_than_allowed_before_scoring_anything(make_versions, files, tmp_path):
    make_versions(1, 2, 3)
    data = write_jsonl(tmp_path / "ten.jsonl", rows(0, count=10))
    before = registry_state()
    line = one_error_line(invoke("compare", "reviews", "--data", data, "--max-calls", "25"),
                          "scoring 3 versions on 10 rows takes 30 model calls, more than --max-calls 25",
                          "2 versions would fit", "nothing was evaluated")
    assert "\n" not in line
    one_error_line(invoke("compare", "reviews", "--data", data, "--versions", "1,3", "--max-calls", "9"),
                   "takes 20 model calls, more than --max-calls 9", "not one version fits (each takes 10 calls)")
    one_error_line(invoke("compare", "reviews", "--data", data, "--max-calls", "0"), "--max-calls must be at least 1")
    one_error_line(invoke("compare", "reviews", "--max-calls", "5"), "apply to --data")
    one_error_line(invoke("compare", "reviews", "--data", data, "--versions", "1,9"), "has no version 9")
    one_error_line(invoke("compare", "reviews", "--data", data, "--versions", "1,prod"), "has no alias 'prod'")
    assert registry_state() == before  # no run, no tag: nothing was evaluated


def test_compare_with_data_scores_the_chosen_versions_and_says_which_were_left_out(make_versions, files,
                                                                                    monkeypatch, caplog):
    make_versions(1, 4, 3)
    caplog.set_level(logging.INFO, logger="promptomatix")
    MlflowClient().set_registered_model_alias("reviews", "champion", "3")
    # --versions by number and alias, each once
    result = invoke("compare", "reviews", "--data", files["valid"], "--versions", "champion,2,3", "--quiet",
                    "--format", "json")
    assert result.exit_code == 0, result.output
    found = json.loads(result.stdout)
    assert [(r["rank"], r["version"], r["aliases"], r["score"], r["rows"], r["interval"]) for r in found] == [
        (1, "2", [], 1.0, 4, "wilson"), (2, "3", ["champion"], 0.75, 4, "wilson")]
    assert (found[0]["score_low"], found[0]["score_high"]) == pytest.approx((stats.wilson(4, 4).low, 1.0))
    assert found[0]["difference"] is None and found[0]["verdict"] == "best"
    assert found[1]["difference"] == -0.25 and found[1]["difference_low"] < -0.25 < 0 < found[1]["difference_high"]
    assert (found[1]["test"], found[1]["p_value"]) == ("mcnemar-exact", 1.0)
    assert found[1]["verdict"] == "not significantly different"  # 1 row apart on 4: no test tells them apart
    assert found[1]["data"] == files["valid"] and found[1]["data_digest"] == found[0]["data_digest"]
    assert "compare: scoring" not in caplog.text  # --quiet: no progress
    # by default the newest DEFAULT_NEWEST versions; the others are named
    monkeypatch.setattr(compare_data, "DEFAULT_NEWEST", 2)
    ranking = compare_data.compare_on_data("reviews", files["valid"], show_progress=False)
    assert [r.version for r in ranking.ranked] == ["2", "3"] and ranking.left_out == ("1",)
    assert ranking.calls == ranking.used_calls == 8  # planned, and sent as the models counted them
    assert "compare: scoring version 3 (2 of 2) on 4 rows" in caplog.text  # progress (stderr at the CLI)
    assert format_ranking(ranking).splitlines()[-1] == ("not scored: version 1 (by default the newest 2 are; "
                                                        "choose with --versions)")


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
