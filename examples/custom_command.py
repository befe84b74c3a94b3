"""A CLI command `promptomatix run-scores RUN_ID`: prints an optimization run's initial and optimized
validation scores. Plugins' click commands appear under `promptomatix` like the built-in ones.
"""

import click

from promptomatix.cli import register_command


@click.command("run-scores")
@click.argument("run_id")
def run_scores(run_id: str) -> None:
    """Print the initial and optimized scores of an optimization run."""
    import mlflow

    metrics = mlflow.get_run(run_id).data.metrics
    click.echo(f"{run_id}: {metrics['initial_score']:.3f} -> {metrics['optimized_score']:.3f}")


def register(*, replace: bool = False):
    return register_command(run_scores, replace=replace)
