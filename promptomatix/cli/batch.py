"""Click command for batch scoring: `promptomatix score`, a thin layer over `promptomatix.lifecycle.batch`.

Typed errors become one line and an exit status in the group the command is added to
(`promptomatix.cli.cli`); `add_to(group)` adds it.
"""

from __future__ import annotations

import click


@click.command("score")
@click.argument("ref", metavar="NAME@ALIAS|NAME@VERSION")
@click.option("--data", required=True,
              help="The table to score: .parquet, .csv or .jsonl, with the version's input fields as columns.")
@click.option("--out", required=True, help="Where to write the table with the answers added: .parquet, .csv or .jsonl.")
@click.option("--batch-size", type=int, default=100, show_default=True,
              help="Rows per batch; each finished batch is saved, so a rerun resumes after the last one.")
@click.option("--concurrency", type=int, default=8, show_default=True,
              help="Model calls in flight at once (with --spark: the local session's task slots).")
@click.option("--spark", is_flag=True, help="Score through mlflow.pyfunc.spark_udf on the active Spark session, "
                                            "or a local one.")
@click.option("--spark-master", help="Master of the Spark session to start when none is active [default: local[CONCURRENCY]].")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def score(ref: str, data: str, out: str, batch_size: int, concurrency: int, spark: bool, spark_master: str | None,
          quiet: bool) -> None:
    """Apply a registered version to every row of a table, in batches, and write the table with
    one column per output field added.

    \b
    Rerunning the same command after a crash goes on from the saved batches (OUT.parts/):
    rows already scored are not asked of the model again.
    """
    from promptomatix.lifecycle.batch import score as run_scoring

    click.echo(run_scoring(ref, data, out, batch_size=batch_size, concurrency=concurrency, spark=spark,
                           spark_master=spark_master, show_progress=not quiet).summary())


def add_to(group: click.Group) -> click.Group:
    group.add_command(score)
    return group
