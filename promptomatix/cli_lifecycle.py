"""Click commands for the prompt lifecycle: `compare`, `evaluate`, `promote`, `gate`, `rollback`.

Each is a thin layer over `promptomatix.lifecycle` (imported when the command runs, so the
CLI starts fast). Typed errors are turned into one line and an exit status by the group the
commands are added to (`promptomatix.cli.cli`); `add_to(group)` adds them (again is harmless).
"""

from __future__ import annotations

import json
import sys
from datetime import datetime

import click

from promptomatix.progress import quiet as quiet_output

_COLUMNS = [("version", "version"), ("parent", "parent_version"), ("aliases", "aliases"),
            ("validation", "validation_score"),
            ("test", "test_score"), ("words", "prompt_words"), ("cost", "cost"), ("backend", "backend"),
            ("run id", "run_id"), ("created", "created")]


@click.command("compare")
@click.argument("name")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True,
              help="json: a list of objects, for scripts.")
def compare(name: str, fmt: str) -> None:
    """List every version of the registered prompt/model NAME: the version it was optimized from
    (`optimize --from`), aliases, validation score, test score (from `evaluate`, if any), prompt
    words, cost, backend, run id and creation time."""
    from promptomatix.lifecycle import compare as compare_versions

    rows = compare_versions(name)
    click.echo(json.dumps(rows, indent=1) if fmt == "json" else format_table(rows))


def format_table(rows: list[dict]) -> str:
    """The rows of `lifecycle.compare` as an aligned text table."""
    cells = [[title for title, _ in _COLUMNS]]
    for row in rows:
        cells.append([_cell(key, row[key]) for _, key in _COLUMNS])
    widths = [max(len(line[i]) for line in cells) for i in range(len(_COLUMNS))]
    lines = ["  ".join(value.ljust(width) for value, width in zip(line, widths)).rstrip() for line in cells]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def _cell(key: str, value) -> str:
    if value is None or value == []:
        return "-"
    if key == "aliases":
        return ",".join(value)
    if key == "cost":
        return f"${value:.4f}"
    if key.endswith("_score"):
        return f"{value:.4f}"
    if key == "created":
        return datetime.fromisoformat(value).astimezone().strftime("%Y-%m-%d %H:%M")
    return str(value)


@click.command("evaluate")
@click.argument("ref", metavar="NAME@ALIAS|NAME@VERSION")
@click.option("--data", required=True, help="Test data: .csv, .tsv, .jsonl, .json, a saved `datasets` folder or hf:NAME.")
@click.option("--quiet", is_flag=True, help="No progress output.")
def evaluate(ref: str, data: str, quiet: bool) -> None:
    """Score a registered version on a data set with its task type's metric, in a new MLflow run.

    The run holds the per-example results (evaluation/results.json) and is tagged with the
    version; the version gets the tags test_score, test_data_digest and test_run_id.
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
    from promptomatix.lifecycle import copy_to
    from promptomatix.lifecycle import promote as run_promotion

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
