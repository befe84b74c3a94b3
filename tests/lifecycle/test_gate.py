"""`promptomatix gate NAME@CANDIDATE --against NAME@ALIAS --data FILE`: both versions scored on
the same rows and compared row by row, one line for a CI log, and the exit status CI reads:
0 not worse (or better, as asked), 1 worse (or short of the asked gain), 2 bad input. No alias
moves. End to end on the temporary sqlite store with the scripted model.

Versions come from `make_versions` (tests/lifecycle_fixtures.py): QUALITY=n gets rows 0..n-1 of
`big_data` right and the other 60 - n wrong.
"""

from __future__ import annotations

import mlflow
from conftest import one_error_line
from lifecycle_fixtures import invoke, registry_state, write_jsonl
from mlflow import MlflowClient

from promptomatix.lifecycle import gate, GateResult, promote
from promptomatix.scoring import stats

WEIGHTED = {"classification": 0.7, "brevity": 0.3}


def comparison(holder_right: int, candidate_right: int, n: int = 60) -> stats.Comparison:
    """The paired comparison of two QUALITY versions on `big_data`."""
    return stats.compare([1.0] * holder_right + [0.0] * (n - holder_right),
                         [1.0] * candidate_right + [0.0] * (n - candidate_right))


def aliases_and_promotions() -> tuple[dict, dict]:
    """What a gate must not change: the model's aliases, and every version's promotion tags."""
    client = MlflowClient()
    promotions = {v.version: {k: t for k, t in v.tags.items() if k.startswith("promotion.")}
                  for v in client.search_model_versions("name = 'reviews'")}
    return dict(client.get_registered_model("reviews").aliases), promotions


def test_gate_exits_0_when_not_worse_or_better_and_1_when_worse_or_short_of_the_gain(make_versions, big_data):
    make_versions(30, 31, 50, 15)
    promote("reviews", "1", "champion")
    before = aliases_and_promotions()

    better = invoke("gate", "reviews@3", "--against", "reviews@champion", "--data", big_data, "--require-gain",
                    "--quiet")
    assert better.exit_code == 0, better.output
    assert better.stdout == (f"gate: reviews@3 vs reviews@champion (version 1) on 60 rows: "
                             f"{stats.describe(comparison(30, 50))}: better\n")
    assert "0.500 [" in better.stdout and "-> 0.833 [" in better.stdout and "+0.333 [" in better.stdout

    tie = invoke("gate", "reviews@2", "--against", "reviews@champion", "--data", big_data, "--quiet")
    assert tie.exit_code == 0, tie.output
    assert tie.stdout.strip().endswith(f"{stats.describe(comparison(30, 31))}: not worse")
    assert "McNemar exact p=1.000" in tie.stdout
    tie_required = invoke("gate", "reviews@2", "--against", "reviews@champion", "--data", big_data, "--require-gain",
                          "--quiet")
    assert tie_required.exit_code == 1 and tie_required.stdout.strip().endswith(": no significant gain")

    worse = invoke("gate", "reviews@4", "--against", "reviews@champion", "--data", big_data, "--quiet")
    assert worse.exit_code == 1, worse.output
    assert worse.stdout == (f"gate: reviews@4 vs reviews@champion (version 1) on 60 rows: "
                            f"{stats.describe(comparison(30, 15))}: worse\n")

    short = invoke("gate", "reviews@3", "--against", "reviews@1", "--data", big_data, "--min-gain", "0.5", "--quiet")
    assert short.exit_code == 1, short.output
    assert short.stdout.startswith("gate: reviews@3 vs reviews@1 on 60 rows: ")  # a version number: no "(version 1)"
    assert short.stdout.strip().endswith(": gain below the minimum of 0.5")

    assert aliases_and_promotions() == before  # no alias moved, no decision recorded
    evaluated = [r for r in mlflow.search_runs(output_format="list", search_all_experiments=True)
                 if "promptomatix.evaluated_model" in r.data.tags]
    assert len(evaluated) == 10  # each gate scored both versions, as `evaluate` does


def test_the_python_gate_is_a_pytest_check(make_versions, big_data):
    """What docs/ci-gate.md shows: a pytest check on `lifecycle.gate`."""
    make_versions(30, 50)
    promote("reviews", "1", "champion")
    result = gate("reviews@2", "reviews@champion", big_data, require_gain=True, show_progress=False)
    assert isinstance(result, GateResult) and result.passed, result.line()
    assert (result.verdict, result.candidate_version, result.against_version, result.rule) == (
        "better", "2", "1", "a significant gain")
    assert result.comparison == comparison(30, 50)
    assert result.digest == MlflowClient().get_model_version("reviews", "2").tags["test_data_digest"]
    itself = gate("reviews@champion", "reviews@1", big_data, require_gain=True, show_progress=False)
    assert not itself.passed and itself.verdict == "no significant gain" and itself.comparison.p_value == 1.0
    assert itself.line().startswith("gate: reviews@champion (version 1) vs reviews@1 on 60 rows: 0.500 [")


def test_gate_bad_input_is_one_line_exit_2_and_scores_nothing(make_versions, files, tmp_path):
    make_versions(2)
    make_versions(4, metric_weights=WEIGHTED)
    promote("reviews", "1", "champion")
    data = files["test"]
    cases = [
        (["gate", "reviews@7", "--against", "reviews@champion", "--data", data], ["model 'reviews' has no version 7"]),
        (["gate", "reviews@1", "--against", "reviews@prod", "--data", data], ["model 'reviews' has no alias 'prod'"]),
        (["gate", "nobody@1", "--against", "reviews@champion", "--data", data], ["no registered model named 'nobody'"]),
        (["gate", "reviews", "--against", "reviews@champion", "--data", data], ["'reviews' names no version"]),
        (["gate", "reviews@1", "--against", "reviews@champion", "--data", str(tmp_path / "none.jsonl")],
         ["none.jsonl: no such file"]),
        (["gate", "reviews@1", "--against", "reviews@champion", "--data",
          write_jsonl(tmp_path / "fields.jsonl", [{"text": "x", "label": "positive"}])], ["lacks field 'review'"]),
        (["gate", "reviews@1", "--data", data], ["Missing option '--against'"]),
        (["gate", "reviews@1", "--against", "reviews@champion"], ["Missing option '--data'"]),
        (["gate", "reviews@1", "--against", "reviews@champion", "--data", data, "--min-gain", "-0.1"],
         ["--min-gain must be a difference of scores >= 0"]),
        (["gate", "reviews@1", "--against", "reviews@champion", "--data", data, "--min-gain", "lots"],
         ["'lots' is not a valid float"]),
        (["gate", "reviews@2", "--against", "reviews@champion", "--data", data],
         ["cannot compare reviews@2 with reviews@champion", "so their scores do not mean the same"]),
    ]
    before = registry_state()
    for args, needles in cases:
        result = invoke(*args)
        try:
            one_error_line(result, *needles)
        except AssertionError as exc:
            raise AssertionError(f"{args}: {exc}") from None
        assert registry_state() == before, args  # refused before either evaluation ran
