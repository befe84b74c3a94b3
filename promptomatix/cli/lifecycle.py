"""Click commands for the prompt lifecycle: `compare`, `evaluate`, `promote`, `gate`, `rollback`.

Each is a thin layer over `promptomatix.lifecycle` (imported when the command runs, so the
CLI starts fast). Typed errors are turned into one line and an exit status by the group the
commands are added to (`promptomatix.cli.cli`); `add_to(group)` adds them (again is harmless).
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from typing import TYPE_CHECKING

import click

from promptomatix.run.progress import quiet as quiet_output

if TYPE_CHECKING:
    from promptomatix.lifecycle.compare_data import Ranking

_COLUMNS = [("version", "version"), ("parent", "parent_version"), ("aliases", "aliases"),
            ("validation", "validation"), ("validation data", "validation_data"),
            ("test", "test"), ("test data", "test_data"), ("words", "prompt_words"), ("cost", "cost"),
            ("backend", "backend"), ("run id", "run_id"), ("created", "created")]
_RANKED_COLUMNS = ["rank", "version", "aliases", "score", "vs best (paired)", "verdict"]
NOT_COMPARABLE = "scores on different data are not comparable; use --data FILE to score them on the same rows"


@click.command("compare")
@click.argument("name")
@click.option("--data", help="Score the versions on this data file first (the same rows for all, as `evaluate` "
                             "does) and rank them.")
@click.option("--versions", "refs", metavar="1,3,champion",
              help="With --data: the versions to score (numbers or aliases); default: the newest 5.")
@click.option("--max-calls", type=int, default=None, metavar="N",
              help="With --data: refuse (exit 2, nothing scored) when versions x rows model calls exceed N "
                   "[default: 1000].")  # compare_data.DEFAULT_MAX_CALLS, not imported: the CLI starts fast
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True,
              help="json: a list of objects, for scripts.")
@click.option("--quiet", is_flag=True, help="No progress output while scoring.")
def compare(name: str, data: str | None, refs: str | None, max_calls: int | None, fmt: str, quiet: bool) -> None:
    """List every version of the registered prompt/model NAME: the version it was optimized from
    (`optimize --from`), aliases, validation score and test score (from `evaluate`, if any), each
    with its 95% interval, its rows (n) and the data it is on (name and digest), prompt words,
    cost, backend, run id and creation time. Scores on different data are marked `*`: they are
    not comparable.

    With --data FILE: score the versions (--versions, default the newest 5) on FILE's rows, each
    in an MLflow run as `evaluate` does, and rank them: each score with its 95% interval, and its
    paired difference from the best with its interval (McNemar's exact test for right/wrong rows,
    a paired bootstrap otherwise). One model call per row per version: more than --max-calls
    (default 1000) is refused before anything is scored, naming how many versions would fit.
    """
    if data is None:
        if refs is not None or max_calls is not None:
            from promptomatix.errors import UsageError

            raise UsageError("--versions and --max-calls apply to --data: give --data FILE too")
        _compare_table(name, fmt)
        return
    with quiet_output(quiet):
        _compare_on_data(name, data, refs, max_calls, fmt, quiet)


def _compare_table(name: str, fmt: str) -> None:
    from promptomatix.lifecycle import compare as compare_versions

    rows = compare_versions(name)
    click.echo(json.dumps(rows, indent=1) if fmt == "json" else format_table(rows))


def _compare_on_data(name: str, data: str, refs: str | None, max_calls: int | None, fmt: str, quiet: bool) -> None:
    from promptomatix.lifecycle.compare_data import compare_on_data, DEFAULT_MAX_CALLS

    ranking = compare_on_data(name, data, refs=refs.split(",") if refs is not None else None,
                              max_calls=DEFAULT_MAX_CALLS if max_calls is None else max_calls,
                              show_progress=not quiet)
    click.echo(json.dumps(ranking.as_dicts(), indent=1) if fmt == "json" else format_ranking(ranking))


def format_table(rows: list[dict]) -> str:
    """The rows of `lifecycle.compare` as an aligned text table, then a line per kind of score
    whose versions are on different data, and what to do about it."""
    cells = [[title for title, _ in _COLUMNS]]
    for row in rows:
        cells.append([_cell(key, row) for _, key in _COLUMNS])
    notes = [note for note in (_different_data(rows, kind) for kind in ("validation", "test")) if note]
    return "\n".join([_aligned(cells), *notes, *([NOT_COMPARABLE] if notes else [])])


def format_ranking(ranking: Ranking) -> str:
    """A `compare_data.Ranking` as a headline, an aligned table (best first), and a line naming the
    versions left out by the default choice."""
    from promptomatix.lifecycle.compare_data import difference_text
    from promptomatix.lifecycle.versions import data_name

    used = "" if ranking.used_calls is None else f"{ranking.used_calls} model calls sent, "
    head = (f"{ranking.name}: {len(ranking.ranked)} versions scored with {ranking.metric} on the same "
            f"{ranking.rows} rows of {data_name(ranking.data_source)} (digest {ranking.digest}); "
            f"{used}{ranking.calls} planned (--max-calls {ranking.max_calls})")
    cells = [_RANKED_COLUMNS]
    for item in ranking.ranked:
        versus = difference_text(item.versus_best) if item.versus_best is not None else "-"
        cells.append([str(item.rank), item.version, ",".join(item.aliases) or "-", str(item.estimate), versus,
                      item.verdict])
    lines = [head, _aligned(cells)]
    if ranking.left_out:
        left = ranking.left_out
        lines.append(f"not scored: version{'s' if len(left) > 1 else ''} {', '.join(left)} (by default the newest "
                     f"{len(ranking.ranked)} are; choose with --versions)")
    return "\n".join(lines)


def _aligned(cells: list[list[str]]) -> str:
    """Rows of cells (the first the titles) as left-aligned columns with a rule under the titles."""
    widths = [max(len(line[i]) for line in cells) for i in range(len(cells[0]))]
    lines = ["  ".join(value.ljust(width) for value, width in zip(line, widths)).rstrip() for line in cells]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def _different_data(rows: list[dict], kind: str) -> str:
    """`* validation scores are on 2 different data sets: synthetic 1a2b3c4d (version 1), ...`, or
    "" when the `kind` scores are all on the same data."""
    from promptomatix.lifecycle.versions import data_groups

    groups = data_groups(rows, kind)
    if len(groups) < 2:
        return ""
    sources = {row[f"{kind}_data_digest"]: row for row in rows}
    named = [f"{_data(sources[digest], kind)} (version{'s' if len(numbers) > 1 else ''} {', '.join(numbers)})"
             for digest, numbers in groups.items()]
    return f"* {kind} scores are on {len(groups)} different data sets: {'; '.join(named)}"


def _cell(key: str, row: dict) -> str:
    if key in ("validation", "test"):
        return _score(row, key)
    if key in ("validation_data", "test_data"):
        return _data(row, key.removesuffix("_data"))
    value = row[key]
    if value is None or value == []:
        return "-"
    if key == "aliases":
        return ",".join(value)
    if key == "cost":
        return f"${value:.4f}"
    if key == "created":
        return datetime.fromisoformat(value).astimezone().strftime("%Y-%m-%d %H:%M")
    return str(value)


def _score(row: dict, kind: str) -> str:
    """`0.750 [0.301, 0.954] n=4`, with ` *` when not comparable; what is unknown left out."""
    score = row[f"{kind}_score"]
    if score is None:
        return "-"
    low, high, rows = row[f"{kind}_score_low"], row[f"{kind}_score_high"], row[f"{kind}_rows"]
    text = f"{score:.3f}" + (f" [{low:.3f}, {high:.3f}]" if low is not None and high is not None else "")
    text += f" n={rows}" if rows is not None else ""
    return text + (" *" if row[f"{kind}_comparable"] is False else "")


def _data(row: dict, kind: str) -> str:
    """`valid.jsonl 1a2b3c4d`: the data's name and digest, what is known of them, or `-`."""
    from promptomatix.lifecycle.versions import data_name

    parts = [data_name(row[f"{kind}_data"]), row[f"{kind}_data_digest"]]
    return " ".join(part for part in parts if part) or "-"


@click.command("evaluate")
@click.argument("ref", metavar="NAME@ALIAS|NAME@VERSION")
@click.option("--data", required=True, help="Test data: .csv, .tsv, .jsonl, .json, a saved `datasets` folder or hf:NAME.")
@click.option("--quiet", is_flag=True, help="No progress output.")
def evaluate(ref: str, data: str, quiet: bool) -> None:
    """Score a registered version on a data set with its task type's metric, in a new MLflow run,
    and print the score with its 95% interval (Wilson when every row scores 0 or 1, a bootstrap
    otherwise), n and the data (name and digest).

    The run holds the per-example results (evaluation/results.json), the interval (metrics
    test_score_low, test_score_high, test_score_rows) and is tagged with the version; the version
    gets the tags test_score, test_score_low, test_score_high, test_rows, test_data_digest and
    test_run_id.
    """
    from promptomatix.lifecycle import evaluate as run_evaluation

    with quiet_output(quiet):
        report = run_evaluation(ref, data, show_progress=not quiet)
    click.echo(report.summary())


@click.command("promote")
@click.argument("name")
@click.option("--version", "version", required=True, help="The version to promote (a number).")
@click.option("--alias", help="The alias to give it, e.g. champion.")
@click.option("--to-model", help="Copy the version into this registered model first (dev to prod); "
                                 "with --alias, the alias is set there.")
@click.option("--data", help="Evaluate both versions on this data file first and compare them on it, row by row.")
@click.option("--require-gain", is_flag=True, help="Promote only a significant gain over the holder (paired test).")
@click.option("--min-gain", type=float, default=0.0, show_default=True, metavar="X",
              help="Promote only a gain of at least X (the difference of the two scores, e.g. 0.02).")
@click.option("--force", is_flag=True, help="Move the alias whatever the comparison says, or without one.")
@click.option("--reason", default="", help="Why: recorded with the decision.")
@click.option("--quiet", is_flag=True, help="No progress output while evaluating.")
def promote(name, version, alias, to_model, data, require_gain, min_gain, force, reason, quiet) -> None:
    """Move ALIAS of NAME to VERSION unless it does worse than the current holder on the same
    evaluation data; the Prompt Registry alias of NAME-prompt follows.

    \b
    "The same evaluation data", in this order:
      1. test data both versions were scored on by `promptomatix evaluate` (same data digest);
         with --data FILE both are evaluated on FILE first. The two are compared row by row:
         McNemar's exact test for right/wrong answers, a paired bootstrap otherwise;
      2. else their validation scores, if both optimization runs used the same validation
         set (same digest of the run's `valid` dataset input): two point scores, no test;
      3. else the promotion is refused (exit 2) unless --force or --data is given.
    The versions must have the same metric. The first holder of an alias needs no check.

    \b
    The rule: a candidate significantly worse (p < 0.05) is rejected; any other is promoted,
    and the line says when its gain is not significant. --require-gain: only a significant
    gain; --min-gain X: only a difference of at least X. Without a paired test (2.) the
    candidate needs at least the holder's score, and --require-gain is refused.

    The decision (n, both scores with their intervals, the difference with its interval, the
    test and its p-value) and --reason are recorded as tags promotion.<alias>.* on the model
    version and its prompt version, and in the model version's description; a rejection is
    recorded too and exits with status 1. Only --to-model: copy the version, nothing else.
    """
    with quiet_output(quiet):
        _promote(name, version, alias, to_model, data, force, reason, quiet, require_gain, min_gain)


def _promote(name, version, alias, to_model, data, force, reason, quiet, require_gain=False, min_gain=0.0) -> None:
    from promptomatix.errors import UsageError
    from promptomatix.lifecycle import copy_to, promote as run_promotion

    if alias is None:
        if to_model is None:
            raise UsageError("give --alias (to promote) or --to-model (to copy), or both")
        if data or force or require_gain or min_gain:
            raise UsageError("--data, --force, --require-gain and --min-gain apply to a promotion: give --alias too")
        copied = copy_to(name, version, to_model)
        click.echo(f"copied {copied.source_uri} to {copied.model_uri} (prompt {copied.prompt_uri})")
        return
    decision = run_promotion(name, version, alias, force=force, reason=reason, data=data, to_model=to_model,
                             require_gain=require_gain, min_gain=min_gain, show_progress=not quiet)
    click.echo(decision.summary())
    if decision.decision == "rejected":
        sys.exit(1)


@click.command("gate")
@click.argument("ref", metavar="NAME@CANDIDATE")
@click.option("--against", required=True, metavar="NAME@ALIAS",
              help="The version to beat, e.g. reviews@champion (or a version: reviews@2).")
@click.option("--data", required=True, help="The data both are scored on: .csv, .tsv, .jsonl, .json, a saved "
                                            "`datasets` folder or hf:NAME.")
@click.option("--require-gain", is_flag=True, help="Pass only a significant gain (else: not significantly worse).")
@click.option("--min-gain", type=float, default=0.0, show_default=True, metavar="X",
              help="Pass only a gain of at least X (the difference of the two scores, e.g. 0.02).")
@click.option("--quiet", is_flag=True, help="No progress output while evaluating.")
def gate(ref: str, against: str, data: str, require_gain: bool, min_gain: float, quiet: bool) -> None:
    """A check for CI: score the candidate NAME@CANDIDATE and the version --against names on
    --data, compare them row by row (McNemar's exact test for right/wrong answers, a paired
    bootstrap otherwise) and print one line: both scores, the difference, each with its 95%
    interval, the test's p-value, and the verdict. No alias moves; each evaluation is an
    MLflow run (see docs/ci-gate.md).

    \b
    Exit status:
      0  the candidate is not significantly worse (with --require-gain: significantly better;
         with --min-gain X: also at least X better)
      1  it is worse (or, as asked, not significantly better, or not X better); also when an
         evaluation itself fails
      2  bad input: an unknown name, version or alias, a missing data file, data without the
         versions' fields, versions scored with different metrics
    """
    from promptomatix.lifecycle import gate as run_gate

    with quiet_output(quiet):
        result = run_gate(ref, against, data, require_gain=require_gain, min_gain=min_gain, show_progress=not quiet)
    click.echo(result.line())
    if not result.passed:
        sys.exit(1)


@click.command("rollback")
@click.argument("name")
@click.option("--alias", required=True, help="The alias to move back, e.g. champion.")
@click.option("--reason", default="", help="Why: recorded on the version.")
def rollback(name: str, alias: str, reason: str) -> None:
    """Give ALIAS of NAME back to the version that held it before the current one (from the
    alias history `promote` keeps); the Prompt Registry alias follows."""
    from promptomatix.lifecycle import rollback as run_rollback

    click.echo(run_rollback(name, alias, reason=reason).summary())


COMMANDS = (compare, evaluate, promote, gate, rollback)


def add_to(group: click.Group) -> click.Group:
    """Add the lifecycle commands to `group` (a command of the same name is replaced)."""
    for command in COMMANDS:
        group.add_command(command)
    return group
