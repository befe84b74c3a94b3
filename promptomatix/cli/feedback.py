"""Click commands for feedback on prompt versions: the `feedback` group (add, list, export,
summary, resolve) and `critique`.

Each is a thin layer over `promptomatix.lifecycle.feedback` / `promptomatix.lifecycle.critiques` (imported when the
command runs, so the CLI starts fast). Typed errors become one line and an exit status in the
group the commands are added to (`promptomatix.cli.cli`); `add_to(group)` adds them (again is
harmless).
"""

from __future__ import annotations

import json

import click

_TYPES = ("general", "format", "content", "style")  # as promptomatix.lifecycle.feedback.TYPES (not imported: startup)
_PRIORITIES = ("low", "medium", "high", "critical")
_COLUMNS = [("id", "id"), ("version", "version"), ("span", "span"), ("type", "type"), ("priority", "priority"),
            ("state", "state"), ("by", "origin"), ("author", "author"), ("created", "created"),
            ("comment", "comment")]


@click.group("feedback")
def feedback() -> None:
    """Comments on spans of a registered prompt version, stored in MLflow (a version tag
    feedback.<id> and the artifact feedback/<id>.json on the version's run)."""


@feedback.command("add")
@click.argument("ref", metavar="NAME@VERSION")
@click.option("--comment", required=True, help="What to change, and why.")
@click.option("--start", type=int, help="First character of the span (0-based) [default: 0].")
@click.option("--end", type=int, help="Character after the span [default: the prompt's length].")
@click.option("--text", "span_text", help="The span as exact text of the prompt (its first occurrence), "
                                          "instead of --start/--end.")
@click.option("--type", "kind", type=click.Choice(_TYPES), default="general", show_default=True)
@click.option("--priority", type=click.Choice(_PRIORITIES), default="medium", show_default=True)
@click.option("--author", help="Who says so [default: the MLflow user, else the login name].")
def add(ref, comment, start, end, span_text, kind, priority, author) -> None:
    """Store a comment on a span of the prompt of NAME@VERSION (or NAME@ALIAS). With neither
    --start/--end nor --text, the comment is on the whole prompt. Prints the comment's id."""
    from promptomatix.lifecycle.feedback import add_feedback, occurrences, prompt_text, versions_of

    item = add_feedback(ref, comment, start=start, end=end, text=span_text, type=kind, priority=priority,
                        author=author)
    note = ""
    if span_text is not None:
        count = occurrences(prompt_text(versions_of(item.model_uri)[0]), span_text)
        if count > 1:
            note = f" (first of {count} occurrences; use --start/--end for another)"
    click.echo(f"{item.id}  {item.model_uri} [{item.start}:{item.end}] {_quote(item.text)}{note}")


@feedback.command("list")
@click.argument("ref", metavar="NAME[@VERSION]")
@click.option("--type", "kind", type=click.Choice(_TYPES), help="Only this type.")
@click.option("--priority", type=click.Choice(_PRIORITIES), help="Only this priority.")
@click.option("--resolved/--open", "resolved", default=None, help="Only resolved, or only open, feedback.")
@click.option("--machine/--human", "machine", default=None, help="Only critiques, or only people's comments.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True,
              help="json: a list of objects, for scripts.")
def list_(ref, kind, priority, resolved, machine, fmt) -> None:
    """Show the feedback on NAME (every version) or on one version NAME@VERSION / NAME@ALIAS."""
    from promptomatix.lifecycle.feedback import list_feedback

    items = list_feedback(ref, type=kind, priority=priority, resolved=resolved, machine=machine)
    if fmt == "json":
        click.echo(json.dumps([item.to_dict() for item in items], indent=1, ensure_ascii=False))
    elif items:
        click.echo(format_table(items))
    else:
        click.echo(f"no feedback on {ref}")


@feedback.command("export")
@click.argument("ref", metavar="NAME[@VERSION]")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="The JSON file to write.")
def export(ref, out) -> None:
    """Write the feedback on NAME or NAME@VERSION to a JSON file (with a summary of counts)."""
    from promptomatix.lifecycle.feedback import export_feedback

    click.echo(f"wrote {export_feedback(ref, out)} feedback items to {out}")


@feedback.command("summary")
@click.argument("ref", metavar="NAME[@VERSION]")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def summary(ref, fmt) -> None:
    """Count the feedback on NAME or NAME@VERSION by type, priority, state and origin."""
    from promptomatix.lifecycle.feedback import feedback_summary

    counts = feedback_summary(ref)
    if fmt == "json":
        click.echo(json.dumps(counts, indent=1))
        return
    click.echo(f"{counts['total']} feedback items on {ref}")
    for key, title in (("by_state", "state"), ("by_type", "type"), ("by_priority", "priority"),
                       ("by_origin", "origin")):
        click.echo(f"{title + ':':10}" + "  ".join(f"{name} {count}" for name, count in counts[key].items()))


@feedback.command("resolve")
@click.argument("ref", metavar="NAME[@VERSION]")
@click.argument("ids", nargs=-1, required=True)
@click.option("--by", required=True, help="What resolved it: the version that addressed it (NAME@4), or a note.")
def resolve(ref, ids, by) -> None:
    """Mark feedback IDS on NAME (or NAME@VERSION) resolved."""
    from promptomatix.lifecycle.feedback import resolve_feedback

    for item in resolve_feedback(ref, list(ids), by=by):
        click.echo(f"resolved {item.id} on {item.model_uri} by {item.resolved_by}")


@click.command("critique")
@click.argument("ref", metavar="NAME@VERSION")
@click.option("--data", help="Examples with the version's fields (.csv, .jsonl, ...) "
                             "[default: the validation examples of the version's run].")
@click.option("--model", help="The critic model, any LiteLLM name [default: the version's task model].")
@click.option("--max-examples", type=click.IntRange(min=1), default=5, show_default=True,
              help="Examples to run the prompt on and show the critic.")
def critique(ref, data, model, max_examples) -> None:
    """Run the prompt of NAME@VERSION on examples, ask a model to critique it, and store each
    point as machine-made feedback (in a new MLflow run linked to the version)."""
    from promptomatix.lifecycle.critiques import critique as run_critique

    items = run_critique(ref, data, model=model, max_examples=max_examples)
    for item in items:
        click.echo(f"{item.id}  [{item.start}:{item.end}] {item.type}/{item.priority}: {item.comment}")
    if items:
        click.echo(f"stored {len(items)} critiques on {items[0].model_uri} (author {items[0].author})")


def format_table(items) -> str:
    """Feedback items as an aligned text table (long spans and comments shortened)."""
    cells = [[title for title, _ in _COLUMNS]]
    for item in items:
        values = item.to_dict() | {"span": f"{item.start}:{item.end}", "state": item.state,
                                   "origin": "machine" if item.machine else "human",
                                   "created": item.created[:16].replace("T", " "),
                                   "comment": _clip(item.comment, 60)}
        cells.append([str(values[key]) for _, key in _COLUMNS])
    widths = [max(len(line[i]) for line in cells) for i in range(len(_COLUMNS))]
    lines = ["  ".join(value.ljust(width) for value, width in zip(line, widths)).rstrip() for line in cells]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def _clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _quote(text: str) -> str:
    return json.dumps(_clip(text, 60), ensure_ascii=False)


COMMANDS = (feedback, critique)


def add_to(group: click.Group) -> click.Group:
    """Add `feedback` and `critique` to `group` (a command of the same name is replaced)."""
    for command in COMMANDS:
        group.add_command(command)
    return group
