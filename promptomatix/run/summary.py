"""The summary of a finished optimization: what `promptomatix optimize` prints (`summary`, for a
person at a terminal), and the run's description in MLflow (`description`, its note: short
Markdown the run page renders as written), so the UI tells what the run found."""

from __future__ import annotations


def _scored(result) -> str:
    rows = result.extra.get("scored_rows", result.valid_size)
    return "validation" if rows >= result.valid_size else f"the first {rows} validation examples (the budget's)"


def _findings(result) -> list[str]:
    """The summary's lines between the score and the cost: the interval, the held-out check,
    doubts, warnings, answers' length, registry, what changed."""
    lines: list[str] = []
    interval = result.extra.get("optimized_interval")
    if interval is not None:
        mine = " (synthetic rows: the gain is measured on the model's own examples)" if result.extra.get("synthetic") \
            else ""
        lines.append(f"interval:        optimized {interval} (95%){mine}")
    held_out = result.extra.get("held_out")
    if held_out is not None:  # a stats.Comparison: the start and the winner on rows the search never saw
        from promptomatix.scoring.stats import describe

        lines.append(f"held-out rows:   {describe(held_out)}, on {held_out.n} rows the search never saw "
                     f"(validation: {result.optimized_score - result.initial_score:+.3f})")
    lines += [f"check:           {doubt}" for doubt in result.extra.get("doubts", ())]
    if result.extra.get("too_few_rows"):
        lines.append(f"beware:          {result.extra['too_few_rows']}")
    if result.extra.get("answer_words") is not None:
        lines.append(f"answers:         {result.extra['answer_words']:.1f} words on average, the references "
                     f"{result.extra['reference_words']:.1f}")
    if result.extra.get("degenerate"):
        lines.append(f"beware:          {result.extra['degenerate']}")
    if result.extra.get("not_registered"):
        lines.append(f"registry:        {result.extra['not_registered']}")
    if result.extra.get("change_summary"):
        lines.append(f"what changed:    {result.extra['change_summary']}")
    return lines


def summary(result) -> str:
    """`result` is an `OptimizationResult`."""
    import mlflow

    from promptomatix.tracking.record import SEARCH_COMPLETE

    usage = result.usage
    budget = result.extra.get("max_calls")
    lines = [
        "",
        "=== Promptomatix: optimization finished ===",
        f"task:            {result.spec.task_type}: {result.spec.description}",
        f"fields:          {', '.join(result.spec.input_fields)} -> {', '.join(result.spec.output_fields)}",
        *([f"labels:          {', '.join(result.spec.labels)}"] if result.spec.labels else []),
        f"data:            {result.train_size} train / {result.valid_size} validation examples",
        f"score:           {result.initial_score:.3f} (initial) -> {result.optimized_score:.3f} (optimized), on "
        f"{_scored(result)}",
    ]
    lines += _findings(result)
    lines += [
        f"cost:            ${usage.cost:.4f}, {usage.tokens} tokens in {usage.calls} LLM calls"
        f"{f' of {budget} allowed' if budget else ''} "
        f"({usage.retries} retries, {usage.parse_failures} parse failures, {usage.cache_hits} cached, "
        f"{usage.unmapped_answers} answers naming no label), {result.seconds:.1f} s",
        f"stopped by:      {result.extra.get('stopped_by', SEARCH_COMPLETE)}",
        *(["final eval:      " + ", ".join(f"{k} {v:.3f}" for k, v in result.extra["final_scores"].items())]
          if result.extra.get("final_scores") else []),
        f"run id:          {result.run_id}",
    ]
    if result.model_version:
        lines += [f"model version:   {result.model_uri}", f"prompt version:  {result.prompt_uri}"]
    lines += ["", "optimized prompt:", "-" * 40, result.prompt, "-" * 40, "",
              f"open the MLflow UI: mlflow ui --backend-store-uri {mlflow.get_tracking_uri()}",
              f"  then experiment {result.experiment_id}, run {result.run_id}"]
    return "\n".join(lines)


def description(result) -> str:
    """The run's description in MLflow (the note the run page shows): Markdown that renders as
    written. The score line first (the page shows the first lines collapsed), then the interval,
    the held-out check, what changed, what ran where it is less than was asked, the budget and
    why the search stopped; the prompt last, in a fenced `text` block (shown as written, line by
    line). No terminal separators, no "open the UI" line: it is read inside the UI."""
    from promptomatix.tracking.record import SEARCH_COMPLETE

    usage = result.usage
    budget = result.extra.get("max_calls")
    lines = [f"**Score {result.initial_score:.3f} → {result.optimized_score:.3f}** "
             f"({result.optimized_score - result.initial_score:+.3f}) on {_scored(result)}, "
             f"{result.spec.task_type}: {_inline(result.spec.description)}", ""]
    facts = []
    interval = result.extra.get("optimized_interval")
    if interval is not None:
        mine = "; synthetic rows: the gain is measured on the model's own examples" if result.extra.get("synthetic") \
            else ""
        facts.append(f"**Interval:** optimized {interval} (95%){mine}")
    held_out = result.extra.get("held_out")
    if held_out is not None:
        from promptomatix.scoring.stats import describe

        facts.append(f"**Held-out rows:** {describe(held_out)}, on {held_out.n} rows the search never saw")
    facts += [f"**Check:** {_inline(doubt)}" for doubt in result.extra.get("doubts", ())]
    for key in ("too_few_rows", "degenerate"):
        if result.extra.get(key):
            facts.append(f"**Beware:** {_inline(result.extra[key])}")
    if result.extra.get("not_registered"):
        facts.append(f"**Registry:** {_inline(result.extra['not_registered'])}")
    if result.extra.get("change_summary"):
        facts.append(f"**What changed:** {_inline(result.extra['change_summary'])}")
    facts.append(f"**Data:** {result.train_size} train / {result.valid_size} validation examples")
    if result.extra.get("lowered"):
        facts.append(f"**Ran less than asked:** {_inline(result.extra['lowered'])}")
    facts.append(f"**Budget:** {usage.calls} LLM calls{f' of {budget} allowed' if budget else ''}, "
                 f"{usage.tokens} tokens, ${usage.cost:.4f}, {result.seconds:.1f} s")
    stopped = result.extra.get("stopped_by", SEARCH_COMPLETE)
    facts.append(f"**Stopped by:** {STOPPED_BY.get(stopped, stopped)}")
    if result.extra.get("final_scores"):
        facts.append("**Final evaluation:** " + ", ".join(f"{k} {v:.3f}" for k, v in result.extra["final_scores"].items()))
    if result.model_version:
        facts.append(f"**Registered:** `{result.model_uri}`, `{result.prompt_uri}`")
    lines += [f"* {fact}" for fact in facts]
    fence = "`" * max(3, _longest_backtick_run(result.prompt) + 1)
    lines += ["", "**Optimized prompt:**", "", f"{fence}text", result.prompt.rstrip("\n"), fence]
    return "\n".join(lines)


# Why a search stopped (the `promptomatix.stopped_by` tag's values), as the description says it.
STOPPED_BY = {"search_complete": "the search ran its course", "hook": "a hook asked to stop",
              "max_calls": "the budget of model calls (--max-calls) was spent",
              "max_cost": "the cost budget (--max-cost) was spent",
              "max_seconds": "the time budget (--max-seconds) was spent"}


def _inline(text: str) -> str:
    """`text` on one line (a Markdown list item ends at a blank line)."""
    return " ".join(str(text).split())


def _longest_backtick_run(text: str) -> int:
    import re

    return max((len(run) for run in re.findall(r"`+", text)), default=0)
