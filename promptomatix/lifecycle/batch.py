"""Batch scoring: apply a registered version to a table, locally or on Spark.

    promptomatix.score("reviews@champion", "rows.parquet", "scored.parquet")          # -> ScoreReport
    promptomatix.score("reviews@champion", "rows.csv", "scored.csv", spark=True)

In: a version reference (`name@alias`, `name@3`, `models:/name/3`), a table (`.parquet`, `.csv`
or `.jsonl`) holding the version's input fields as columns, and an output path of one of those
kinds. Out: the table with one column per output field added, in the input's row order, and a
`ScoreReport`.

The rows are cut into batches of `batch_size`. Each finished batch is saved at once under
`<out>.parts/` (with `job.json`, naming the version and the data), so a job that dies is
resumed by running the same command again: saved batches are not asked of the model again.
When all are done the output file is written whole (a temporary file renamed into place) and
the parts are removed.

Locally, the version's pyfunc model answers the rows in a pool of `concurrency` threads, so at
most that many model calls are in flight. With `spark=True` the same batches go through
`mlflow.pyfunc.spark_udf` on the active Spark session, or a local one (`local[concurrency]`)
when there is none: on a cluster (`spark-submit`) the same command runs there, its concurrency
being the executors' task slots.

Bad input (unknown version, unreadable data, missing or clashing columns, empty values,
unknown formats, a parts folder of another job) raises a UsageError before any model call.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from promptomatix.errors import ConfigError, DataError

if TYPE_CHECKING:  # at run time, pandas is imported in the functions that use it
    import pandas as pd

FORMATS = (".parquet", ".csv", ".jsonl")
PARTS_SUFFIX = ".parts"
JOB_FILE = "job.json"


@dataclass(frozen=True)
class ScoreReport:
    """What `score` did: `rows` in the table, `asked` of the model by this call, `resumed`
    taken from the saved batches of an earlier call that did not finish."""

    model_uri: str
    rows: int
    asked: int
    resumed: int
    batches: int
    engine: str
    seconds: float
    out: str

    @property
    def rows_per_second(self) -> float:
        return self.asked / self.seconds if self.seconds else 0.0

    def summary(self) -> str:
        resumed = f", {self.resumed} from an earlier interrupted run" if self.resumed else ""
        return (f"scored {self.rows} rows with {self.model_uri} ({self.asked} asked{resumed}) "
                f"in {self.batches} batches on {self.engine} in {self.seconds:.1f} s "
                f"({self.rows_per_second:.1f} rows/s); wrote {self.out}")


@dataclass(frozen=True)
class _Job:
    model_uri: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    table: pd.DataFrame  # the input table as read
    digest: str
    batch_size: int
    out: Path

    @property
    def parts(self) -> Path:
        return self.out.with_name(self.out.name + PARTS_SUFFIX)

    @property
    def batch_count(self) -> int:
        return -(-len(self.table) // self.batch_size)

    def rows_of(self, batch: int):
        return self.table.iloc[batch * self.batch_size:(batch + 1) * self.batch_size]

    def part(self, batch: int) -> Path:
        return self.parts / f"part-{batch:06d}.parquet"

    def manifest(self) -> dict:
        return {"model_uri": self.model_uri, "data_digest": self.digest, "rows": len(self.table),
                "batch_size": self.batch_size, "inputs": list(self.inputs), "outputs": list(self.outputs)}


def score(ref: str, data: str | os.PathLike, out: str | os.PathLike, *, batch_size: int = 100,
          concurrency: int = 8, spark: bool = False, spark_master: str | None = None,
          show_progress: bool = True) -> ScoreReport:
    """Score every row of `data` with the version `ref` names and write `out` (see the module
    docstring). Raises UsageError subclasses for bad input, before any model call; a model
    failure (LLMError) after its retries stops the job with the finished batches saved."""
    if batch_size < 1:
        raise ConfigError(f"--batch-size must be at least 1, got {batch_size}")
    if concurrency < 1:
        raise ConfigError(f"--concurrency must be at least 1, got {concurrency}")
    if spark_master and not spark:
        raise ConfigError("--spark-master applies to --spark: give --spark too")
    job = _prepare(ref, Path(data), Path(out), batch_size)
    started = time.perf_counter()
    pending = _resume(job)
    resumed = sum(len(job.rows_of(b)) for b in range(job.batch_count) if b not in pending)
    asked = sum(len(job.rows_of(b)) for b in pending)
    from promptomatix.run.progress import progress_bar

    with progress_bar(total=len(job.table), desc=f"scoring with {job.model_uri}", unit="row",
                      enabled=show_progress) as bar:
        bar.update(resumed)
        if pending:
            runner = _score_on_spark if spark else _score_locally
            runner(job, pending, concurrency, bar, spark_master)
    _assemble(job)
    return ScoreReport(job.model_uri, len(job.table), asked, resumed, job.batch_count,
                       "spark" if spark else "local", time.perf_counter() - started, str(job.out))


# --- checking the input ------------------------------------------------------------------------

def _format_of(path: Path, what: str) -> str:
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise DataError(f"{what} {str(path)!r} must end in {', '.join(FORMATS)}")
    return suffix


def read_table(path: Path):
    """The table at `path` (`.parquet`, `.csv` or `.jsonl`) as a pandas DataFrame; CSV cells
    stay text, empty cells empty strings."""
    import pandas as pd

    suffix = _format_of(path, "--data")
    if not path.is_file():
        raise DataError(f"data file {str(path)!r} does not exist")
    try:
        if suffix == ".parquet":
            return pd.read_parquet(path)
        if suffix == ".csv":
            return pd.read_csv(path, dtype=str, keep_default_na=False)
        return pd.read_json(path, lines=True, dtype=False)
    except (ValueError, OSError, UnicodeDecodeError) as exc:  # pyarrow's and pandas' parse errors are ValueErrors
        reason = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise DataError(f"cannot read {str(path)!r} as {suffix[1:]}: {reason}") from None


def write_table(frame, path: Path) -> None:
    """Write `frame` to `path` in the format its suffix names, whole or not at all."""
    suffix = _format_of(path, "--out")
    temporary = path.with_name(f".{path.name}.tmp")
    if suffix == ".parquet":
        frame.to_parquet(temporary, index=False)
    elif suffix == ".csv":
        frame.to_csv(temporary, index=False)
    else:
        frame.to_json(temporary, orient="records", lines=True, force_ascii=False)
    os.replace(temporary, path)


def _prepare(ref: str, data: Path, out: Path, batch_size: int) -> _Job:
    import pandas as pd

    from promptomatix.lifecycle.version_evaluation import model_fields
    from promptomatix.lifecycle.versions import resolve

    _format_of(out, "--out")
    if out.resolve() == data.resolve():
        raise DataError(f"--out {str(out)!r} is the data file itself: write the scores elsewhere")
    if not out.parent.is_dir():
        raise DataError(f"the folder of --out {str(out)!r} does not exist")
    version = resolve(ref)
    inputs, outputs = model_fields(version)
    table = read_table(data)
    if table.empty:
        raise DataError(f"{str(data)!r} has no rows")
    missing = [f for f in inputs if f not in table.columns]
    if missing:
        raise DataError(f"{str(data)!r} has no column {', '.join(map(repr, missing))}, which "
                        f"{version.name} v{version.version} reads (columns: {', '.join(map(str, table.columns))})")
    clashing = [f for f in outputs if f in table.columns]
    if clashing:
        raise DataError(f"{str(data)!r} already has a column {', '.join(map(repr, clashing))}, which the scores "
                        f"would be written to: rename or drop it first")
    for field in inputs:
        empty = table[field].isna()
        if empty.any():
            raise DataError(f"{str(data)!r}: row {int(empty.to_numpy().argmax()) + 1} has no value in column {field!r}")
    table = table.reset_index(drop=True)
    # The model's signature takes strings: numbers and the like are scored as their text.
    values = pd.DataFrame({f: table[f].astype(str) for f in inputs})
    digest = hashlib.sha256(pd.util.hash_pandas_object(values, index=False).to_numpy().tobytes()).hexdigest()[:16]
    return _Job(f"models:/{version.name}/{version.version}", inputs, outputs, table, digest, batch_size, out)


def _resume(job: _Job) -> list[int]:
    """The batches still to score: all, or those a previous run of the same job left undone."""
    manifest = job.parts / JOB_FILE
    if job.parts.exists():
        try:
            saved = json.loads(manifest.read_text())
        except (OSError, ValueError):
            saved = None
        if saved != job.manifest():
            what = (f"{saved.get('model_uri')} on data {saved.get('data_digest')}, batch size {saved.get('batch_size')}"
                    if isinstance(saved, dict) else "unreadable job.json")
            raise DataError(f"{str(job.parts)!r} holds the unfinished output of another scoring job ({what}); "
                            f"remove it or write to another --out")
    else:
        job.parts.mkdir()
        manifest.write_text(json.dumps(job.manifest(), indent=1))
    return [b for b in range(job.batch_count) if not job.part(b).exists()]


def _save_part(job: _Job, batch: int, answers) -> None:
    """One finished batch, written whole (renamed into place) so a crash leaves no half part."""
    path = job.part(batch)
    temporary = path.with_suffix(".tmp")
    answers.reset_index(drop=True).to_parquet(temporary, index=False)
    os.replace(temporary, path)


def _assemble(job: _Job) -> None:
    import pandas as pd

    answers = pd.concat([pd.read_parquet(job.part(b)) for b in range(job.batch_count)], ignore_index=True)
    frame = job.table.copy()
    for field in job.outputs:
        frame[field] = answers[field].to_numpy()
    write_table(frame, job.out)
    shutil.rmtree(job.parts)


# --- engines -----------------------------------------------------------------------------------

def _score_locally(job: _Job, pending: list[int], concurrency: int, bar, spark_master) -> None:
    """Rows answered by the pyfunc model in `concurrency` threads, one model call each; new rows
    are handed out as others finish (no pause between batches), batches saved as they complete."""
    import mlflow
    import pandas as pd

    model = mlflow.pyfunc.load_model(job.model_uri)
    outputs = list(job.outputs)

    def answer(row: dict) -> dict:
        frame = model.predict(pd.DataFrame([row], columns=list(job.inputs)))
        return {f: str(frame.iloc[0][f]) for f in outputs}

    def rows() -> Iterator[tuple[int, int, dict]]:
        for batch in pending:
            for offset, row in enumerate(job.rows_of(batch)[list(job.inputs)].astype(str).to_dict("records")):
                yield batch, offset, row

    results: dict[int, dict[int, dict]] = {b: {} for b in pending}
    sizes = {b: len(job.rows_of(b)) for b in pending}
    queue = rows()
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="score") as pool:
        running = {}
        try:
            while True:
                for batch, offset, row in queue:
                    running[pool.submit(answer, row)] = (batch, offset)
                    if len(running) >= 2 * concurrency:  # enough queued to keep every thread busy
                        break
                if not running:
                    return
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    batch, offset = running.pop(future)
                    results[batch][offset] = future.result()  # a failed call raises here
                    bar.update(1)
                    if len(results[batch]) == sizes[batch]:
                        _save_part(job, batch, pd.DataFrame([results[batch][i] for i in range(sizes[batch])],
                                                            columns=outputs))
                        del results[batch]
        finally:
            for future in running:
                future.cancel()


def _score_on_spark(job: _Job, pending: list[int], concurrency: int, bar, spark_master: str | None) -> None:
    """The pending batches through `mlflow.pyfunc.spark_udf`, a wave of batches per Spark job
    (one wave fills the session's task slots); each batch is saved when its wave returns."""
    import pandas as pd

    session, owned = _spark_session(spark_master or f"local[{concurrency}]")
    try:
        import mlflow
        from pyspark.sql.functions import col, struct
        from pyspark.sql.types import StringType, StructField, StructType

        udf = mlflow.pyfunc.spark_udf(session, job.model_uri, env_manager="local",
                                      result_type=StructType([StructField(f, StringType()) for f in job.outputs]))
        slots = max(1, session.sparkContext.defaultParallelism)
        for start in range(0, len(pending), slots):
            wave = pending[start:start + slots]
            rows = pd.concat([job.rows_of(b)[list(job.inputs)].astype(str).assign(
                _batch=b, _offset=range(len(job.rows_of(b)))) for b in wave], ignore_index=True)
            frame = session.createDataFrame(rows).repartition(min(slots, len(rows)))
            scored = frame.select("_batch", "_offset", udf(struct(*[col(f) for f in job.inputs])).alias("_answer"))
            answers = scored.select("_batch", "_offset", *[col(f"_answer.{f}").alias(f) for f in job.outputs]).toPandas()
            for batch, part in answers.groupby("_batch"):
                _save_part(job, int(batch), part.sort_values("_offset")[list(job.outputs)])
                bar.update(len(part))
    finally:
        if owned:
            session.stop()


def _spark_session(master: str):
    """(session, whether we started it): the active Spark session (a cluster's, under
    spark-submit), else a local one on `master` whose Python workers run this interpreter."""
    try:
        from pyspark.errors import PySparkRuntimeError
        from pyspark.sql import SparkSession
    except ImportError:
        raise ConfigError("--spark needs PySpark: pip install 'promptomatix[team]' (and a Java runtime)") from None
    active = SparkSession.getActiveSession()
    if active is not None:
        return active, False
    import sys

    # PySpark reads the workers' interpreter from PYSPARK_PYTHON when the context starts (default
    # `python3`, which may lack promptomatix): this one, unless the user chose one; set for the
    # start only, so the process's environment is left as it was.
    chosen = os.environ.get("PYSPARK_PYTHON")
    os.environ["PYSPARK_PYTHON"] = chosen or sys.executable
    try:
        session = (SparkSession.builder.master(master).appName("promptomatix-score")
                   .config("spark.ui.enabled", "false")
                   .config("spark.sql.execution.arrow.pyspark.enabled", "true")
                   .getOrCreate())
    except PySparkRuntimeError as exc:  # no Java runtime, or a JVM that would not start
        reason = " ".join(str(exc).split())[:300]
        raise ConfigError(f"Spark could not start (it needs a Java runtime, e.g. Debian's "
                          f"default-jre-headless): {reason}") from None
    finally:
        if chosen is None:
            del os.environ["PYSPARK_PYTHON"]
    return session, True
