"""The `promptomatix` command: thin click commands over the Python API."""

from __future__ import annotations

import logging
import sys

import click

from promptomatix.config import SEARCH_PRESETS
from promptomatix.errors import PromptomatixError


class _Group(click.Group):
    """Typed errors become one line on stderr and the error's exit status; no traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except PromptomatixError as exc:
            click.echo(f"Error: {exc}", err=True)
            sys.exit(exc.exit_code)


@click.group(cls=_Group)
@click.option("-v", "--verbose", is_flag=True, help="Show debug logging.")
def cli(verbose: bool) -> None:
    """Turn a plain-language task into an optimized, versioned prompt tracked in MLflow.

    The tracking store is MLflow's: MLFLOW_TRACKING_URI, or ./mlflow.db when unset.
    """
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(message)s", stream=sys.stderr)
    for noisy in ("LiteLLM", "litellm", "httpx", "mlflow", "alembic", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if verbose else logging.WARNING)


def _fields(value: str | None):
    return tuple(v.strip() for v in value.split(",") if v.strip()) if value else None


def _mapping(values: tuple[str, ...]) -> dict[str, str]:
    pairs = {}
    for item in values:
        column, sep, name = item.partition("=")
        if not sep or not column or not name:
            raise click.BadParameter(f"{item!r} is not COLUMN=FIELD", param_hint="--field-map")
        pairs[column] = name
    return pairs


@cli.command()
@click.option("--raw-input", required=True, help="The task in plain language (markers such as [TASK] allowed).")
@click.option("--name", help="Registry name (default: from the task's first words).")
@click.option("--backend", default="meta_prompt", show_default=True, help="Optimization backend.")
@click.option("--optimizer", default="MIPROv2", show_default=True,
              help="DSPy optimizer for --backend dspy (MIPROv2, GEPA, BootstrapFewShot, ...).")
@click.option("--dspy-module", default="Predict", show_default=True,
              help="DSPy module for --backend dspy: Predict, ChainOfThought, ProgramOfThought, ReAct or package.module:Class.")
@click.option("--task-type", help="Override the task type found by intake (e.g. classification, qa).")
@click.option("--input-fields", help="Comma-separated input field names (override intake).")
@click.option("--output-fields", help="Comma-separated output field names (override intake).")
@click.option("--model", help="Task model, any LiteLLM name [default: embedded/gemma-3-270m].")
@click.option("--temperature", type=float, help="Task model temperature [default: 0].")
@click.option("--max-tokens", type=int, help="Task model max tokens per answer [default: 256].")
@click.option("--api-base", help="Task model API base URL (keys come from the environment).")
@click.option("--optimizer-model", help="Model that writes data and rewrites prompts [default: the task model].")
@click.option("--optimizer-temperature", type=float, help="[default: 0.7]")
@click.option("--optimizer-max-tokens", type=int, help="[default: 512]")
@click.option("--optimizer-api-base", help="Optimizer model API base URL.")
@click.option("--search", type=click.Choice(list(SEARCH_PRESETS)), default="quick", show_default=True,
              help="Preset sizes: quick 30, moderate 100, heavy 300 synthetic examples.")
@click.option("--synthetic-data-size", type=int, help="Number of synthetic examples (overrides --search).")
@click.option("--train-ratio", type=float, default=0.5, show_default=True, help="Share of examples used to train.")
@click.option("--batch-size", type=int, default=5, show_default=True, help="Synthetic examples per model call.")
@click.option("--train-data", help="Your data: .csv, .tsv, .jsonl, .json, a saved `datasets` folder or hf:NAME[:SPLIT].")
@click.option("--valid-data", help="Validation data (default: split from --train-data).")
@click.option("--field-map", multiple=True, metavar="COLUMN=FIELD", help="Rename a data column to a field (repeatable).")
@click.option("--iterations", type=int, help="Optimization rounds (overrides --search).")
@click.option("--candidates", type=int, help="New prompts per round (overrides --search).")
@click.option("--num-demos", type=int, default=3, show_default=True, help="Few-shot demos a candidate may carry.")
@click.option("--lambda-penalty", type=float, default=0.005, show_default=True,
              help="Length penalty: objective = score x exp(-lambda x prompt words).")
@click.option("--num-threads", type=int, default=4, show_default=True, help="Parallel scoring calls.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--experiment", help="MLflow experiment name (ignored inside `mlflow run`).")
@click.option("--register/--no-register", default=True, show_default=True, help="Register the result.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def optimize(field_map, quiet, input_fields, output_fields, **options) -> None:
    """Optimize a prompt for a task and register it (one MLflow run)."""
    from promptomatix.api import optimize as run_optimization

    result = run_optimization(field_map=_mapping(field_map), input_fields=_fields(input_fields),
                              output_fields=_fields(output_fields), show_progress=not quiet, **options)
    click.echo(summary(result))


def summary(result) -> str:
    import mlflow

    usage = result.usage
    lines = [
        "",
        "=== Promptomatix: optimization finished ===",
        f"task:            {result.spec.task_type}: {result.spec.description}",
        f"fields:          {', '.join(result.spec.input_fields)} -> {', '.join(result.spec.output_fields)}",
        f"data:            {result.train_size} train / {result.valid_size} validation examples",
        f"score:           {result.initial_score:.3f} (initial) -> {result.optimized_score:.3f} (optimized), on validation",
        f"cost:            ${usage.cost:.4f}, {usage.tokens} tokens in {usage.calls} LLM calls "
        f"({usage.retries} retries, {usage.parse_failures} parse failures), {result.seconds:.1f} s",
        f"run id:          {result.run_id}",
    ]
    if result.model_version:
        lines += [f"model version:   {result.model_uri}", f"prompt version:  {result.prompt_uri}"]
    lines += ["", "optimized prompt:", "-" * 40, result.prompt, "-" * 40, "",
              f"open the MLflow UI: mlflow ui --backend-store-uri {mlflow.get_tracking_uri()}",
              f"  then experiment {result.experiment_id}, run {result.run_id}"]
    return "\n".join(lines)


def main() -> None:
    cli(prog_name="promptomatix")


if __name__ == "__main__":
    main()
