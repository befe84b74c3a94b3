"""Batch scoring benchmark: `promptomatix.score` on a table, against a stub endpoint with a fixed latency.

    python -m benchmarks.batch                          # 2000 rows, 100 ms, local 1,8,32 and Spark 2,4
    python -m benchmarks.batch --rows 500 --concurrency 4 --spark-concurrency 2

A registered version (a plain classification prompt whose model is `openai/stub-model` on the
stub, `benchmarks/stub.py`) scores `--rows` rows. Each row is one model call, so the fastest the
job can go is the latency limit, rows x latency / concurrency. Per engine and concurrency the
table shows the wall time (everything `score` does: loading the model, reading and writing the
tables, and on Spark starting the session and its Python workers), the limit, wall / limit, rows
per second and the CPU time of this process (near the wall time: CPU-bound, not waiting on the
model). On Spark, concurrency is the local session's task slots (`local[N]`): one Python
worker process per slot, each asking its rows one after another.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import RUNS_EXPERIMENT, experiment_id, log_result, machine, table
from benchmarks.stub import StubServer

COLUMNS = [("engine", "engine"), ("concurrency", "concurrency"), ("rows", "rows"), ("calls", "LLM calls"),
           ("wall", "wall s"), ("limit", "limit s"), ("ratio", "wall / limit"), ("rows_per_s", "rows/s"),
           ("limit_rows_per_s", "limit rows/s"), ("cpu", "CPU s (this process)")]


def sample_rows(count: int):
    import pandas as pd

    words = ("good", "dull", "good and bright", "slow", "good fun", "weak")
    return pd.DataFrame({"id": range(count), "text": [f"review {i}: the film was {words[i % len(words)]}"
                                                      for i in range(count)]})


def register_stub_version(stub: StubServer, name: str) -> str:
    import mlflow

    from promptomatix.config import ModelSettings
    from promptomatix.run.registration import register
    from promptomatix.task.prompt import Prompt

    prompt = Prompt("Label the review as positive or negative.", ("text",), ("label",))
    with mlflow.start_run(experiment_id=experiment_id(RUNS_EXPERIMENT), run_name=f"{name} (for the batch benchmark)"):
        done = register(name, prompt, ModelSettings(model="openai/stub-model", api_base=stub.url),
                        tags={"task_type": "classification"}, change="batch scoring benchmark",
                        task="Label the review as positive or negative.")
    return f"models:/{done.model_name}/{done.model_version}"


def run(args: argparse.Namespace, out=None) -> list[dict]:
    import mlflow

    import promptomatix

    out = out or sys.stdout
    if args.tracking_uri:
        mlflow.set_tracking_uri(args.tracking_uri)
        mlflow.set_registry_uri(args.tracking_uri)
    os.environ.setdefault("OPENAI_API_KEY", "stub-key-for-a-local-endpoint")  # LiteLLM insists on one
    host = machine()
    runs = [("local", c) for c in args.concurrency] + [("spark", c) for c in args.spark_concurrency]
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-batch-") as tmp, StubServer(args.latency) as stub:
        data = Path(tmp) / "rows.parquet"
        sample_rows(args.rows).to_parquet(data, index=False)
        ref = register_stub_version(stub, f"bench-batch-{time.strftime('%Y%m%d%H%M%S')}")
        for engine, concurrency in runs:
            before = stub.requests
            cpu_before = time.process_time()
            started = time.perf_counter()
            report = promptomatix.score(ref, data, Path(tmp) / f"scored-{engine}-{concurrency}.parquet",
                                        batch_size=args.batch_size, concurrency=concurrency,
                                        spark=engine == "spark", show_progress=False)
            wall = time.perf_counter() - started
            cpu = time.process_time() - cpu_before  # on Spark the workers' CPU is not in it
            calls = stub.requests - before
            limit = calls * args.latency / concurrency
            row = {"engine": engine, "concurrency": concurrency, "rows": report.rows, "calls": calls,
                   "wall": round(wall, 2), "limit": round(limit, 2), "ratio": round(wall / limit, 2) if limit else None,
                   "rows_per_s": round(report.rows / wall, 1), "limit_rows_per_s": round(concurrency / args.latency, 1),
                   "cpu": round(cpu, 1)}
            rows.append(row)
            print(f"[{time.strftime('%H:%M:%S')}] {row}", file=sys.stderr, flush=True)
            log_result("batch", {
                "run_name": f"batch/{engine}/c{concurrency}", "engine": engine, "concurrency": concurrency,
                "rows": args.rows, "latency": args.latency, "batch_size": args.batch_size,
                **{f"machine.{k}": v for k, v in host.items()}},
                {"llm_calls": calls, "wall_seconds": wall, "limit_seconds": limit,
                 "wall_over_limit": wall / limit if limit else None, "rows_per_second": report.rows / wall,
                 "cpu_seconds": cpu},
                tags={"engine": engine})
    print(f"\n### batch scoring: {args.rows} rows, latency {args.latency * 1000:.0f} ms, "
          f"batches of {args.batch_size}\n", file=out)
    print(table(rows, COLUMNS), file=out, flush=True)
    return rows


def _numbers(text: str) -> list[int]:
    return [int(c) for c in text.split(",") if c.strip()]


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.batch", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--latency", type=float, default=0.1, help="seconds per stub answer (default 0.1)")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--concurrency", default="1,8,32", help="local engine: comma-separated thread counts")
    parser.add_argument("--spark-concurrency", default="2,4",
                        help="Spark: comma-separated local[N] slot counts ('' for none)")
    parser.add_argument("--tracking-uri", help="MLflow tracking URI (default: MLFLOW_TRACKING_URI or MLflow's default)")
    args = parser.parse_args(argv)
    try:
        args.concurrency, args.spark_concurrency = _numbers(args.concurrency), _numbers(args.spark_concurrency)
    except ValueError:
        parser.error("--concurrency and --spark-concurrency take whole numbers separated by commas")
    return args


def main(argv=None) -> int:
    import logging

    logging.basicConfig(level=logging.WARNING)
    run(parse_args(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
