"""`promptomatix promote` / `rollback`: an alias moves only to a version not significantly worse
than the holder on the same rows (paired test), or scoring at least as well on the same
validation set; `--require-gain` / `--min-gain` ask for more; the prompt alias follows;
decisions and history are tags (model and prompt version) and a description paragraph; bad
input changes nothing.

Versions come from `make_versions` (tests/lifecycle_fixtures.py): QUALITY=n gets examples 0..n-1
right, so it scores n/4 on the 4-example sets and n/60 on the 60 rows of `big_data`.
"""

from __future__ import annotations

import json

import mlflow
import pandas as pd
import pytest
from mlflow import MlflowClient
from conftest import one_error_line
from lifecycle_fixtures import invoke, registry_state, rows, write_jsonl

from promptomatix.lifecycle import copy_to, evaluate, promote, PromotionDecision, PromotionError, rollback
from promptomatix.scoring import stats


def champion(name: str = "reviews") -> str | None:
    number = MlflowClient().get_registered_model(name).aliases.get("champion")
    return None if number is None else str(number)


def prompt_champion(name: str = "reviews") -> str:
    """The prompt version the Prompt Registry alias points to, as the model version linked to it."""
    prompt = mlflow.genai.load_prompt(f"prompts:/{name}-prompt@champion")
    return prompt.tags["model_version"]


def tags(version: str, name: str = "reviews") -> dict:
    found = MlflowClient().get_model_version(name, version).tags
    return {k[len("promotion.champion."):]: v for k, v in found.items() if k.startswith("promotion.champion.")}


def prompt_tags(version: str, name: str = "reviews") -> dict:
    """The promotion.champion.* tags of the prompt version linked to model version `version`."""
    number = MlflowClient().get_model_version(name, version).tags["prompt_uri"].rsplit("/", 1)[1]
    found = MlflowClient().get_prompt_version(f"{name}-prompt", number).tags
    return {k[len("promotion.champion."):]: v for k, v in found.items() if k.startswith("promotion.champion.")}


def description(version: str, name: str = "reviews") -> str:
    return MlflowClient().get_model_version(name, version).description or ""


def expected(holder_right: int, candidate_right: int, n: int = 60) -> stats.Comparison:
    """The paired comparison of two QUALITY versions on `big_data` (the better one's right rows
    include all of the other's)."""
    return stats.compare([1.0] * holder_right + [0.0] * (n - holder_right),
                         [1.0] * candidate_right + [0.0] * (n - candidate_right))


def history(name: str = "reviews") -> list[str]:
    return json.loads(MlflowClient().get_registered_model(name).tags["alias_history.champion"])


def test_first_promotion_sets_both_aliases_and_records_the_decision(make_versions):
    make_versions(2)
    result = invoke("promote", "reviews", "--version", "1", "--alias", "champion", "--reason", "first release")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "promoted version 1 to reviews@champion (first holder) (was no version)"
    assert champion() == "1" and prompt_champion() == "1"
    recorded = tags("1")
    assert recorded["decision"] == "promoted" and recorded["basis"] == "first"
    assert recorded["reason"] == "first release" and recorded["time"]
    assert "previous" not in recorded and "score" not in recorded  # nothing written empty
    assert all(value.strip() for value in recorded.values())
    assert history() == ["1"]


def test_a_better_version_on_the_same_validation_set_takes_the_alias(make_versions):
    make_versions(2, 4)
    promote("reviews", "1", "champion")
    result = invoke("promote", "reviews", "--version", "2", "--alias", "champion", "--reason", "better")
    assert result.exit_code == 0, result.output
    valid_digest = next(d.dataset.digest for d in MlflowClient().get_run(
        MlflowClient().get_model_version("reviews", "2").run_id).inputs.dataset_inputs if d.dataset.name == "valid")
    assert result.stdout.strip() == (f"promoted version 2 to reviews@champion (was version 1): "
                                     f"1.0000 >= 0.5000 on the validation set {valid_digest} (4 rows; no paired test: "
                                     f"the validation set chose the prompts, so a test on it would overstate a gain)")
    assert champion() == "2" and prompt_champion() == "2"
    assert tags("2") | {"time": ""} == {"decision": "promoted", "model": "reviews", "score": "1.0000", "previous": "1",
                                        "previous_score": "0.5000", "basis": "validation", "digest": valid_digest,
                                        "reason": "better", "time": "", "n": "4", "rule": "not significantly worse",
                                        "summary": result.stdout.strip()}
    assert prompt_tags("2") == tags("2")  # the prompt version carries the same record
    assert history() == ["1", "2"]


def test_a_worse_version_is_rejected_and_the_rejection_recorded(make_versions):
    make_versions(4, 2)
    promote("reviews", "1", "champion")
    result = invoke("promote", "reviews", "--version", "2", "--alias", "champion", "--reason", "try")
    assert result.exit_code == 1
    assert result.stdout.startswith("not promoted: version 2 scores below reviews@champion (version 1): "
                                    "0.5000 < 1.0000 on the validation set")
    assert champion() == "1" and prompt_champion() == "1" and history() == ["1"]
    assert tags("2")["decision"] == "rejected" and tags("2")["score"] == "0.5000"
    assert tags("2")["previous_score"] == "1.0000" and tags("2")["reason"] == "try"

    forced = invoke("promote", "reviews", "--version", "2", "--alias", "champion", "--force", "--reason", "hotfix")
    assert forced.exit_code == 0, forced.output
    assert forced.stdout.startswith("forced reviews@champion to version 2 (was version 1): 0.5000 < 1.0000")
    assert champion() == "2" and prompt_champion() == "2" and history() == ["1", "2"]
    assert tags("2")["decision"] == "forced" and tags("2")["reason"] == "hotfix"


def prompt_version_of(version: str, name: str = "reviews"):
    number = MlflowClient().get_model_version(name, version).tags["prompt_uri"].rsplit("/", 1)[1]
    return MlflowClient().get_prompt_version(f"{name}-prompt", number)


def commit_message(version: str, name: str = "reviews") -> str:
    return prompt_version_of(version, name).commit_message or ""


def test_why_a_version_holds_the_alias_is_in_its_description_and_on_both_versions_and_kept_current(make_versions):
    """Issue 42: the model version's description, the prompt version's commit message (first,
    before the message it was registered with) and a `promotion.<alias>` tag on both say why it
    holds the alias; when the alias moves on, the former holder says so; every version's
    description ends by saying to promote with `promptomatix promote`, not MLflow's button."""
    make_versions(2, 4)
    registered = {version: commit_message(version) for version in ("1", "2")}
    for version in ("1", "2"):
        last = description(version).split("\n\n")[-1]
        assert last.startswith(f"To give this version an alias (champion, ...), run `promptomatix promote reviews "
                               f"--version {version} --alias champion`") and '"Promote model" button' in last
        assert registered[version] and not registered[version].startswith("Promotion (")
    first = promote("reviews", "1", "champion", reason="first release")
    said = f"Promotion (champion, {tags('1')['time']}): {first.summary()}. Reason: first release"
    assert said in description("1").split("\n\n")
    assert MlflowClient().get_model_version("reviews", "1").tags["promotion.champion"] == said
    assert prompt_version_of("1").tags["promotion.champion"] == said
    assert commit_message("1") == f"{said}\n\n{registered['1']}"
    assert mlflow.genai.load_prompt("prompts:/reviews-prompt@champion", cache_ttl_seconds=0).commit_message == \
        commit_message("1")

    second = promote("reviews", "2", "champion", reason="better")
    now = description("2").split("\n\n")
    assert now[-2] == f"Promotion (champion, {tags('2')['time']}): {second.summary()}. Reason: better"
    assert now[-1].startswith("To give this version an alias") and len(now) == 3
    assert prompt_version_of("2").tags["promotion.champion"] == now[-2]
    assert commit_message("2") == f"{now[-2]}\n\n{registered['2']}"
    # version 1 no longer holds it, and says so, in its description, commit message and tags
    former = description("1").split("\n\n")
    gone = [p for p in former if p.startswith("Promotion (champion, ")]
    assert len(gone) == 1 and gone[0].endswith("no longer holds reviews@champion, which moved to version 2 (promoted).")
    assert former[-1].startswith("To give this version an alias")
    assert commit_message("1") == f"{gone[0]}\n\n{registered['1']}"
    for found in (MlflowClient().get_model_version("reviews", "1").tags, prompt_version_of("1").tags):
        assert found["promotion.champion"] == gone[0] and found["promotion.champion.replaced_by"] == "2"

    back = rollback("reviews", "champion", reason="regression")
    assert champion() == "1"
    assert description("1").split("\n\n")[-2].endswith(f"{back.summary()}. Reason: regression")
    assert "promotion.champion.replaced_by" not in MlflowClient().get_model_version("reviews", "1").tags
    assert "promotion.champion.replaced_by" not in prompt_version_of("1").tags
    assert description("2").split("\n\n")[-2].endswith("no longer holds reviews@champion, which moved to version 1 "
                                                         "(rolled back).")
    assert prompt_version_of("2").tags["promotion.champion.replaced_by"] == "1"
    for version in ("1", "2"):  # the commit messages follow: one paragraph each, then the registered message
        why = description(version).split("\n\n")[-2]
        assert commit_message(version) == f"{why}\n\n{registered[version]}"
    assert commit_message("1").startswith(f"Promotion (champion, {tags('1')['time']}): rolled back reviews@champion "
                                          f"to version 1 (was version 2). Reason: regression")

    # a second alias: its paragraph comes first, the first alias's stays, the registered message last
    promote("reviews", "1", "stable", reason="for the batch jobs")
    paragraphs = commit_message("1").split("\n\n")
    assert paragraphs[0].startswith("Promotion (stable, ") and paragraphs[0].endswith("Reason: for the batch jobs")
    assert paragraphs[1].startswith("Promotion (champion, ") and paragraphs[1].endswith("Reason: regression")
    assert "\n\n".join(paragraphs[2:]) == registered["1"]


def test_promoting_the_holder_again_changes_nothing(make_versions):
    make_versions(2)
    promote("reviews", "1", "champion")
    before = registry_state()
    result = invoke("promote", "reviews", "--version", "1", "--alias", "champion")
    assert result.exit_code == 0 and "already is version 1; nothing changed" in result.stdout
    assert registry_state() == before


def test_test_scores_on_shared_data_win_over_validation_scores(make_versions, files, tmp_path):
    make_versions(4, 1)  # validation: 1.0 and 0.25
    promote("reviews", "1", "champion")
    easy = write_jsonl(tmp_path / "easy.jsonl", rows(0, count=1) * 2)  # only example 0: both get it right
    for ref in ("reviews@1", "reviews@2"):
        assert invoke("evaluate", ref, "--data", easy, "--quiet").exit_code == 0
    decision = promote("reviews", "2", "champion", reason="ties on the easy set")
    assert (decision.decision, decision.basis, decision.score, decision.previous_score) == ("promoted", "test", 1.0, 1.0)
    assert decision.digest == MlflowClient().get_model_version("reviews", "2").tags["test_data_digest"]
    assert champion() == "2"


def test_different_validation_sets_are_refused_unless_data_or_force(make_versions, files):
    make_versions(2)
    make_versions(4, valid="other_valid")
    promote("reviews", "1", "champion")
    before = registry_state()
    line = one_error_line(invoke("promote", "reviews", "--version", "2", "--alias", "champion"),
                          "cannot compare", "no score on the same data", "--data FILE", "--force")
    assert "validation sets:" in line
    assert registry_state() == before
    with pytest.raises(PromotionError):
        promote("reviews", "2", "champion")

    result = invoke("promote", "reviews", "--version", "2", "--alias", "champion", "--data", files["test"], "--quiet")
    assert result.exit_code == 0, result.output
    assert "(was version 1): 0.500 [0.150, 0.850] -> 1.000 [0.510, 1.000], +0.500 [" in result.stdout
    assert "McNemar exact p=0.500 on 4 rows of test data" in result.stdout
    assert champion() == "2" and prompt_champion() == "2"
    evaluated = {r.data.tags["promptomatix.evaluated_model"] for r in mlflow.search_runs(
        output_format="list", search_all_experiments=True) if "promptomatix.evaluated_model" in r.data.tags}
    assert evaluated == {"models:/reviews/1", "models:/reviews/2"}
    assert tags("2")["basis"] == "test" and tags("2")["digest"] == tags("2")["digest"].strip() != ""


WEIGHTED = {"classification": 0.7, "brevity": 0.3}
WEIGHTED_LABEL = "0.3*brevity:brevity + 0.7*classification:accuracy"


def test_versions_scored_with_different_metrics_are_not_compared_as_equals(make_versions, files):
    """Two versions optimized with different --metric weights on one validation set: their
    scores do not mean the same, so the promotion is refused before any write (with --data too:
    `evaluate` scores each with its own metric) unless forced. The same weights written at
    another scale (7:3 and 0.7:0.3) are the same metric, and compare."""
    make_versions(2, metric_weights=WEIGHTED)
    make_versions(4, metric_weights={"classification": 7, "brevity": 3})
    make_versions(4)
    assert MlflowClient().get_model_version("reviews", "1").tags["metric"] == WEIGHTED_LABEL
    assert MlflowClient().get_model_version("reviews", "3").tags["metric"] == "classification:accuracy"
    promote("reviews", "1", "champion")
    assert promote("reviews", "2", "champion").decision == "promoted"  # like with like
    before = registry_state()
    one_error_line(invoke("promote", "reviews", "--version", "3", "--alias", "champion"), "cannot compare",
                   f"version 3 was scored with classification:accuracy and version 2 with {WEIGHTED_LABEL}",
                   "--force")
    with pytest.raises(PromotionError, match="do not mean the same"):
        promote("reviews", "3", "champion", data=files["test"])
    assert registry_state() == before  # nothing evaluated, nothing moved
    decision = promote("reviews", "3", "champion", force=True)
    assert (decision.decision, decision.basis) == ("forced", "none") and champion() == "3"


def test_a_version_registered_before_metrics_were_recorded_compares_by_task_type(make_versions):
    make_versions(2, metric_weights=WEIGHTED)
    make_versions(4)
    client = MlflowClient()
    for key in ("metric", "metric_weights"):  # as a version registered before this record existed
        client.delete_model_version_tag("reviews", "1", key)
    promote("reviews", "1", "champion")
    decision = promote("reviews", "2", "champion")
    assert (decision.decision, decision.basis) == ("promoted", "validation")


def test_with_data_a_lower_score_on_few_rows_is_not_significant_so_only_require_gain_refuses_it(make_versions, files):
    """0.25 against 0.75 on 4 rows: two discordant rows, McNemar p=0.5. Not significantly worse, so
    promoted by default (saying so); --require-gain refuses it (exit 1, recorded, nothing moved)."""
    make_versions(3)
    make_versions(1, valid="other_valid")
    promote("reviews", "1", "champion")
    refused = invoke("promote", "reviews", "--version", "2", "--alias", "champion", "--data", files["test"],
                     "--require-gain", "--quiet")
    assert refused.exit_code == 1, refused.output
    assert refused.stdout.startswith("not promoted (no significant gain): version 2 against reviews@champion "
                                     "(version 1): 0.750 [")
    assert "-0.500 [" in refused.stdout and "McNemar exact p=0.500 on 4 rows of test data" in refused.stdout
    assert champion() == "1" and tags("2")["decision"] == "rejected"
    assert tags("2")["rule"] == "a significant gain" and tags("2")["verdict"] == "no significant gain"
    assert MlflowClient().get_model_version("reviews", "2").tags["test_score"] == "0.2500"

    result = invoke("promote", "reviews", "--version", "2", "--alias", "champion", "--data", files["test"], "--quiet")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().endswith("on 4 rows of test data " + tags("2")["digest"]
                                          + " (gain not significant: p=0.500, alpha 0.05)")
    assert champion() == "2" and tags("2")["verdict"] == "not worse"


def test_rollback_returns_the_alias_to_the_previous_holder(make_versions):
    make_versions(1, 2, 3)
    for version in ("1", "2", "3"):
        promote("reviews", version, "champion")
    assert history() == ["1", "2", "3"]

    result = invoke("rollback", "reviews", "--alias", "champion", "--reason", "v3 misbehaves")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "rolled back reviews@champion to version 2 (was version 3)"
    assert champion() == "2" and prompt_champion() == "2" and history() == ["1", "2"]
    assert tags("2")["decision"] == "rolled_back" and tags("2")["previous"] == "3"
    assert tags("2")["reason"] == "v3 misbehaves"

    again = rollback("reviews", "champion")
    assert isinstance(again, PromotionDecision) and (again.version, again.previous) == ("1", "2")
    assert champion() == "1" and prompt_champion() == "1"
    before = registry_state()
    one_error_line(invoke("rollback", "reviews", "--alias", "champion"), "no earlier holder of reviews@champion")
    assert registry_state() == before


def test_to_model_copies_a_version_into_another_model_with_its_own_prompt(make_versions):
    make_versions(2, 4)
    result = invoke("promote", "reviews", "--version", "2", "--alias", "champion", "--to-model", "reviews-prod")
    assert result.exit_code == 0, result.output
    assert "promoted version 1 (copied from models:/reviews/2) to reviews-prod@champion (first holder)" in result.stdout
    client = MlflowClient()
    copy = client.get_model_version("reviews-prod", "1")
    assert copy.tags["copied_from"] == "models:/reviews/2"
    assert copy.tags["prompt_uri"] == "prompts:/reviews-prod-prompt/1"
    assert copy.tags["validation_score"] == "1.0000" and copy.run_id == client.get_model_version("reviews", "2").run_id
    assert champion("reviews-prod") == "1" and prompt_champion("reviews-prod") == "1"
    assert mlflow.genai.load_prompt("prompts:/reviews-prod-prompt@champion").template == \
        mlflow.genai.load_prompt("prompts:/reviews-prompt/2").template
    assert "champion" not in client.get_registered_model("reviews").aliases
    served = mlflow.pyfunc.load_model("models:/reviews-prod@champion")
    assert list(served.predict(pd.DataFrame({"review": ["a good film 0"]}))["sentiment"]) == ["positive"]

    # a worse version is not copied at all; the rejection is recorded on the source version
    rejected = invoke("promote", "reviews", "--version", "1", "--alias", "champion", "--to-model", "reviews-prod")
    assert rejected.exit_code == 1 and "not promoted" in rejected.stdout
    assert len(client.search_model_versions("name = 'reviews-prod'")) == 1
    assert tags("1")["decision"] == "rejected" and tags("1")["model"] == "reviews-prod"
    registered = commit_message("1").split("\n\n", 1)[1]
    assert commit_message("1").startswith("Promotion (champion, ") and "not promoted" in commit_message("1")

    # --to-model alone only copies (Python API: copy_to)
    copied = invoke("promote", "reviews", "--version", "1", "--to-model", "reviews-prod")
    assert copied.stdout.strip() == ("copied models:/reviews/1 to models:/reviews-prod/2 "
                                     "(prompt prompts:/reviews-prod-prompt/2)")
    # the copy's commit message is the source's as registered: the source's promotion paragraphs stay behind
    assert client.get_prompt_version("reviews-prod-prompt", "2").commit_message == (
        f"copy of prompts:/reviews-prompt/1 with models:/reviews/1: {registered}")
    third = copy_to("reviews", "2", "reviews-prod")
    assert (third.version, third.prompt_uri) == ("3", "prompts:/reviews-prod-prompt/3")
    assert champion("reviews-prod") == "1"


def test_bad_input_is_one_line_and_changes_nothing(make_versions, files, tmp_path):
    make_versions(2, 4)
    promote("reviews", "1", "champion")
    client = MlflowClient()
    client.copy_model_version("models:/reviews/2", "raw-copy")  # copied outside promptomatix
    mlflow.genai.register_prompt(name="a-prompt-name", template="hi {{x}}")
    cases = [
        (["promote", "nobody", "--version", "1", "--alias", "champion"], ["no registered model named 'nobody'"]),
        (["promote", "reviews-prompt", "--version", "1", "--alias", "champion"], ["is a prompt, not a registered model"]),
        (["promote", "reviews", "--version", "9", "--alias", "champion"], ["model 'reviews' has no version 9"]),
        (["promote", "reviews", "--version", "abc", "--alias", "champion"], ["invalid version 'abc'"]),
        (["promote", "reviews", "--version", "models:/raw-copy/1", "--alias", "champion"],
         ["is a version of model 'raw-copy', not of 'reviews'"]),
        (["promote", "raw-copy", "--version", "1", "--alias", "champion"],
         ["linked to prompt prompts:/reviews-prompt/2, which belongs to another model"]),
        (["promote", "reviews", "--version", "2", "--alias", "latest"], ["alias 'latest' is reserved"]),
        (["promote", "reviews", "--version", "2", "--alias", "v3"], ["alias 'v3' is reserved"]),
        (["promote", "reviews", "--version", "2", "--alias", "my champion"], ["invalid alias 'my champion'"]),
        (["promote", "reviews", "--version", "2"], ["give --alias (to promote) or --to-model (to copy)"]),
        (["promote", "reviews", "--version", "2", "--alias", "champion", "--to-model", "reviews"],
         ["--to-model must name another registered model"]),
        (["promote", "reviews", "--version", "2", "--alias", "champion", "--to-model", "a-prompt-name"],
         ["'a-prompt-name' is used by a prompt"]),
        (["promote", "reviews", "--version", "2", "--alias", "champion", "--data", str(tmp_path / "none.jsonl")],
         ["none.jsonl: no such file"]),
        (["promote", "reviews", "--version", "2", "--alias", "champion", "--data",
          write_jsonl(tmp_path / "fields.jsonl", [{"text": "x", "label": "positive"}])], ["lacks field 'review'"]),
        (["rollback", "reviews", "--alias", "staging"], ["model 'reviews' has no alias 'staging'"]),
        (["rollback", "nobody", "--alias", "champion"], ["no registered model named 'nobody'"]),
        (["rollback", "reviews", "--alias", "champion"], ["no earlier holder"]),
    ]
    before = registry_state()
    for args, needles in cases:
        result = invoke(*args)
        try:
            one_error_line(result, *needles)
        except AssertionError as exc:
            raise AssertionError(f"{args}: {exc}") from None
        assert registry_state() == before, args


def test_a_clearly_worse_candidate_is_refused_and_the_paired_test_recorded_on_both_versions(make_versions, big_data):
    """45 of 60 rows right against 15, the 30 rows that differ all won by the holder: McNemar
    p < 0.001. Refused by default (exit 1, nothing moved); n, both scores and the difference with
    their intervals, the test and p are tags on the model and the prompt version and a paragraph
    of the model version's description. --force moves it, and the paragraph is replaced."""
    make_versions(45, 15)
    promote("reviews", "1", "champion")
    registered = description("2")
    assert registered  # what changed, from `optimize`: kept before the promotion's paragraph
    result = invoke("promote", "reviews", "--version", "2", "--alias", "champion", "--data", big_data,
                    "--quiet", "--reason", "try")
    assert result.exit_code == 1, result.output
    test = expected(45, 15)
    line = result.stdout.strip()
    assert line == (f"not promoted (significantly worse): version 2 against reviews@champion (version 1): "
                    f"{stats.describe(test)} on 60 rows of test data {tags('2')['digest']}")
    assert "0.750 [" in line and "-> 0.250 [" in line and "-0.500 [" in line and "McNemar exact p<0.001" in line
    assert champion() == "1" and prompt_champion() == "1" and history() == ["1"]
    recorded = tags("2")
    assert (recorded["decision"], recorded["basis"], recorded["verdict"], recorded["rule"], recorded["reason"]) == (
        "rejected", "test", "worse", "not significantly worse", "try")
    assert (recorded["n"], recorded["test"], recorded["alpha"]) == ("60", "mcnemar-exact", "0.05")
    assert (recorded["score"], recorded["previous_score"], recorded["difference"]) == ("0.2500", "0.7500", "-0.5000")
    assert (recorded["score_low"], recorded["score_high"]) == (f"{test.b.low:.4f}", f"{test.b.high:.4f}")
    assert (recorded["previous_score_low"], recorded["previous_score_high"]) == (f"{test.a.low:.4f}", f"{test.a.high:.4f}")
    assert (recorded["difference_low"], recorded["difference_high"]) == (
        f"{test.difference.low:.4f}", f"{test.difference.high:.4f}")
    assert float(recorded["p_value"]) == pytest.approx(test.p_value, rel=1e-5) and float(recorded["p_value"]) < 0.001
    assert recorded["summary"] == line
    assert prompt_tags("2") == recorded
    paragraphs = description("2").split("\n\n")
    what_changed, hint = registered.split("\n\n")  # from `optimize`: what changed, how to promote
    assert paragraphs == [what_changed, paragraphs[1], hint]
    assert paragraphs[1].startswith(f"Promotion (champion, {recorded['time']}): {line}. Reason: try")

    forced = promote("reviews", "2", "champion", force=True, reason="hotfix")
    assert (forced.decision, forced.verdict) == ("forced", "worse") and champion() == "2" and prompt_champion() == "2"
    assert forced.summary().endswith(" (refused without --force: significantly worse)")
    assert forced.summary().startswith(f"forced reviews@champion to version 2 (was version 1): {stats.describe(test)}")
    paragraphs = description("2").split("\n\n")
    assert paragraphs == [what_changed, paragraphs[1], hint]  # this alias's paragraph replaced
    assert paragraphs[1].endswith(f"{forced.summary()}. Reason: hotfix") and prompt_tags("2")["decision"] == "forced"


def test_on_stored_evaluations_a_tie_passes_unless_a_gain_is_required_and_min_gain_sets_a_margin(
        make_versions, files, big_data):
    """Without --data, the per-row results of the evaluations both versions have on the same data
    are paired (read from their runs, also when a later evaluation on other data is the
    version's latest)."""
    make_versions(30, 31, 50, 58)
    for version in ("1", "2", "3", "4"):
        evaluate(f"reviews@{version}", big_data, show_progress=False)
    evaluate("reviews@4", files["test"], show_progress=False)  # its test_run_id is now another data set's
    promote("reviews", "1", "champion")

    tie = expected(30, 31)  # one row apart: McNemar p = 1
    refused = invoke("promote", "reviews", "--version", "2", "--alias", "champion", "--require-gain")
    assert refused.exit_code == 1, refused.output
    assert refused.stdout.startswith(f"not promoted (no significant gain): version 2 against reviews@champion "
                                     f"(version 1): {stats.describe(tie)} on 60 rows of test data")
    assert champion() == "1" and tags("2")["decision"] == "rejected"
    promoted = invoke("promote", "reviews", "--version", "2", "--alias", "champion")
    assert promoted.exit_code == 0, promoted.output
    assert promoted.stdout.strip().endswith(f"{stats.describe(tie)} on 60 rows of test data {tags('2')['digest']} "
                                            f"(gain not significant: p=1.000, alpha 0.05)")
    assert champion() == "2" and (tags("2")["verdict"], tags("2")["p_value"]) == ("not worse", "1")

    better = promote("reviews", "3", "champion", require_gain=True)
    assert (better.decision, better.verdict, better.n) == ("promoted", "better", 60) and better.paired.p_value < 0.001
    assert better.summary().endswith(" (significant gain)") and champion() == "3"

    small = invoke("promote", "reviews", "--version", "4", "--alias", "champion", "--require-gain", "--min-gain", "0.2")
    assert small.exit_code == 1, small.output  # 8 rows better, p = 0.008: significant, but not 0.2 better
    assert small.stdout.startswith(f"not promoted (gain below the minimum of 0.2): version 4 against "
                                   f"reviews@champion (version 3): {stats.describe(expected(50, 58))}")
    assert "+0.133 [" in small.stdout and "McNemar exact p=0.008" in small.stdout
    assert tags("4")["rule"] == "a significant gain, and a gain of at least 0.2" and champion() == "3"
    enough = promote("reviews", "4", "champion", require_gain=True, min_gain=0.1)
    assert (enough.decision, enough.n, enough.digest) == ("promoted", 60, tags("3")["digest"]) and champion() == "4"


def test_without_a_paired_test_require_gain_is_refused_and_min_gain_uses_the_point_scores(make_versions):
    make_versions(2, 3)  # validation 0.5 and 0.75
    promote("reviews", "1", "champion")
    before = registry_state()
    line = one_error_line(invoke("promote", "reviews", "--version", "2", "--alias", "champion", "--require-gain"),
                          "cannot test the gain: no paired test is possible", "--data FILE", "--force")
    assert "the validation set chose the prompts" in line
    one_error_line(invoke("promote", "reviews", "--version", "2", "--alias", "champion", "--min-gain", "-0.1"),
                   "--min-gain must be a difference of scores >= 0")
    one_error_line(invoke("promote", "reviews", "--version", "2", "--to-model", "prod", "--require-gain"),
                   "apply to a promotion: give --alias too")
    with pytest.raises(PromotionError, match="cannot test the gain"):
        promote("reviews", "2", "champion", require_gain=True)
    assert registry_state() == before

    result = invoke("promote", "reviews", "--version", "2", "--alias", "champion", "--min-gain", "0.5")
    assert result.exit_code == 1, result.output
    assert result.stdout.startswith("not promoted (gain below the minimum of 0.5): version 2 against reviews@champion "
                                    "(version 1): 0.7500 >= 0.5000 on the validation set")
    assert "(4 rows; no paired test" in result.stdout and champion() == "1"
    assert "p_value" not in tags("2") and tags("2")["n"] == "4"
    assert promote("reviews", "2", "champion", min_gain=0.25).decision == "promoted" and champion() == "2"


def test_rows_that_do_not_pair_up_are_refused(make_versions, files):
    make_versions(2, 3)
    promote("reviews", "1", "champion")
    for version in ("1", "2"):
        evaluate(f"reviews@{version}", files["test"], show_progress=False)
    run_id = MlflowClient().get_model_version("reviews", "1").tags["test_run_id"]
    table = mlflow.artifacts.load_dict(f"runs:/{run_id}/evaluation/results.json")
    MlflowClient().log_dict(run_id, {**table, "data": table["data"][::-1]}, "evaluation/results.json")
    before = registry_state()
    line = one_error_line(invoke("promote", "reviews", "--version", "2", "--alias", "champion"),
                          "cannot pair the results of version 2 and version 1 on data", "row 1 is not the same example")
    assert "'review': 'a bad film 0'" in line
    assert registry_state() == before
