"""The summary of a finished optimization: what `promptomatix optimize` prints, and the run's
description in MLflow (its note), so the UI tells what the run found."""

from __future__ import annotations


def _scored(result) -> str:
    rows = result.extra.get("scored_rows", result.valid_size)
    return "validation" if rows >= result.valid_size else f"the first {rows} validation examples (the budget's)"


def summary(result) -> str:
    """`result` is an `OptimizationResult`."""
    import mlflow

    from promptomatix.record import SEARCH_COMPLETE

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
    interval = result.extra.get("optimized_interval")
    if interval is not None:
        mine = " (synthetic rows: the gain is measured on the model's own examples)" if result.extra.get("synthetic") \
            else ""
        lines.append(f"interval:        optimized {interval} (95%){mine}")
    held_out = result.extra.get("held_out")
    if held_out is not None:  # a stats.Comparison: the start and the winner on rows the search never saw
        from promptomatix.stats import describe

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
