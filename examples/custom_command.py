"""A CLI command `promptomatix score RUN_ID`: prints an optimization run's initial and optimized
validation scores. Plugins' click commands appear under `promptomatix` like the built-in ones.
"""

import click

from promptomatix.cli import register_command


@click.command("score")
@click.argument("run_id")
def score(run_id: str) -> None:
    """Print the initial and optimized scores of an optimization run."""
    import mlflow

    metrics = mlflow.get_run(run_id).data.metrics
    click.echo(f"{run_id}: {metrics['initial_score']:.3f} -> {metrics['optimized_score']:.3f}")


def register(*, replace: bool = False):
    return register_command(score, replace=replace)
