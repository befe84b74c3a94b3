"""Long-lived process benchmark: N small optimizations one after another in this one process.

    python -m benchmarks.longlived --runs 200
    python -m benchmarks.longlived --runs 200 --tracking-uri sqlite:////tmp/x/mlflow.db

Every optimization goes through `promptomatix.optimize` (meta-prompt backend, user data, traces
on, registration on: one registered prompt version per run, distinct names) against the scripted
OpenAI-compatible endpoint of `benchmarks/stub.py` on a loopback port, on a real sqlite store (a
temp dir unless `--tracking-uri`). After `--warmup` runs (one-off imports, lazily opened files,
pools that start on first use) and at the end it samples the process: RSS (VmRSS), threads
(/proc/self/status Threads and `threading.active_count()`), open file descriptors
(/proc/self/fd). It prints one Markdown table row, and exits 1 when RSS grew by more than
`--max-rss-growth` MB (default 100), threads grew, or file descriptors grew by more than `--slack`
(default 3: a connection or file opened once after the warm-up, not per run).
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from benchmarks.common import write_jsonl
from benchmarks.stub import StubServer
from benchmarks.throughput import sample_data

HEADER = ("| runs | seconds | RSS start MB | RSS end MB | RSS growth MB | threads start | threads end "
          "| fds start | fds end | RSS growth / 100 runs MB | fds growth / 100 runs |\n"
          "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")


@dataclass(frozen=True)
class Sample:
    rss_mb: float
    threads: int  # the kernel's count (/proc/self/status), native threads included
    py_threads: int  # threading.active_count()
    fds: int

    @classmethod
    def now(cls) -> Sample:
        gc.collect()
        status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
        return cls(rss_mb=int(status["VmRSS"].split()[0]) / 1024, threads=int(status["Threads"]),
                   py_threads=threading.active_count(), fds=len(os.listdir("/proc/self/fd")))


@dataclass(frozen=True)
class Measure:
    runs: int  # measured runs (after the warm-up)
    seconds: float
    start: Sample
    end: Sample

    @property
    def rss_growth(self) -> float:
        return self.end.rss_mb - self.start.rss_mb

    @property
    def fds_growth(self) -> int:
        return self.end.fds - self.start.fds

    @property
    def threads_growth(self) -> int:
        return max(self.end.threads - self.start.threads, self.end.py_threads - self.start.py_threads)

    def row(self, total_runs: int) -> str:
        per = 100 / max(self.runs, 1)
        return (f"| {total_runs} | {self.seconds:.0f} | {self.start.rss_mb:.0f} | {self.end.rss_mb:.0f} | "
                f"{self.rss_growth:+.1f} | {self.start.threads} ({self.start.py_threads} Python) | "
                f"{self.end.threads} ({self.end.py_threads} Python) | {self.start.fds} | {self.end.fds} | "
                f"{self.rss_growth * per:+.1f} | {self.fds_growth * per:+.1f} |")

    def __str__(self) -> str:
        return (f"{self.runs} runs after the warm-up in {self.seconds:.1f} s: RSS {self.start.rss_mb:.1f} -> "
                f"{self.end.rss_mb:.1f} MB ({self.rss_growth:+.1f}), threads {self.start.threads} -> "
                f"{self.end.threads} (Python {self.start.py_threads} -> {self.end.py_threads}), fds "
                f"{self.start.fds} -> {self.end.fds}")


@contextmanager
def store(tracking_uri: str | None):
    """A real MLflow store for the loop: `tracking_uri`, or a fresh sqlite file in a temp dir."""
    import mlflow

    with tempfile.TemporaryDirectory(prefix="bench-longlived-") as tmp:
        uri = tracking_uri or f"sqlite:///{Path(tmp) / 'mlflow.db'}"
        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(uri)
        yield Path(tmp)


def optimize_loop(runs: int, warmup: int, url: str, folder: Path, prefix: str,
                  on_run=None) -> Measure:
    """`warmup` + `runs` small optimizations against the endpoint at `url`; the process sampled
    after the warm-up and after the last run."""
    import promptomatix

    os.environ.setdefault("OPENAI_API_KEY", "stub-key-for-a-local-endpoint")  # LiteLLM insists on one
    data = sample_data(12)
    train = write_jsonl(folder / "train.jsonl", data[:6])
    valid = write_jsonl(folder / "valid.jsonl", data[6:])
    start = started = None
    for index in range(warmup + runs):
        if index == warmup:
            start, started = Sample.now(), time.perf_counter()
        result = promptomatix.optimize(
            raw_input="Classify the sentiment of the review as positive or negative.", train_data=str(train),
            valid_data=str(valid), task_type="classification", input_fields=("text",), output_fields=("label",),
            model="openai/stub-model", api_base=url, num_threads=2, iterations=1, candidates=2,
            name=f"{prefix}-{index}", register=True, show_progress=False)
        if on_run:
            on_run(index, result)
        result = None  # the last result must not keep its objects (and their pools) alive for the sample
    if start is None:  # no measured run
        start, started = Sample.now(), time.perf_counter()
    seconds = time.perf_counter() - started
    return Measure(runs, seconds, start, settled(start))


def settled(start: Sample, timeout: float = 5.0) -> Sample:
    """The end sample, once threads are back to `start` or `timeout` seconds have passed: thread
    pools MLflow makes per artifact repository (`MlflowLocalArtifactRepository_N`, for the
    downloads of registration) end when their repository is collected, a moment after a run, so
    a sample taken at once can count one or two threads that are on their way out."""
    deadline = time.monotonic() + timeout
    sample = Sample.now()
    while sample.threads > start.threads and time.monotonic() < deadline:
        time.sleep(0.1)
        sample = Sample.now()
    return sample


def problems(measure: Measure, max_rss_growth: float, slack: int) -> list[str]:
    found = []
    if measure.rss_growth > max_rss_growth:
        found.append(f"RSS grew {measure.rss_growth:.1f} MB (limit {max_rss_growth} MB)")
    if measure.threads_growth > 0:
        found.append(f"threads grew by {measure.threads_growth}")
    if measure.fds_growth > slack:
        found.append(f"open file descriptors grew by {measure.fds_growth} (slack {slack})")
    return found


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.longlived", description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=200, help="optimizations in all, warm-up included (default 200)")
    parser.add_argument("--warmup", type=int, default=3, help="runs before the first sample (default 3)")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per stub answer (default 0)")
    parser.add_argument("--tracking-uri", help="MLflow tracking URI (default: sqlite in a temp dir)")
    parser.add_argument("--max-rss-growth", type=float, default=100.0, help="MB (default 100)")
    parser.add_argument("--slack", type=int, default=3,
                        help="fds growth tolerated: files or sockets opened once after the warm-up (default 3)")
    args = parser.parse_args(argv)
    if args.runs <= args.warmup or args.warmup < 0:
        parser.error("--runs must be above --warmup")
    return args


def main(argv=None) -> int:
    import logging

    logging.basicConfig(level=logging.WARNING)
    for name in ("promptomatix.api", "promptomatix.run.preparation"):  # "too few validation rows", every run
        logging.getLogger(name).setLevel(logging.ERROR)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    args = parse_args(argv)
    stamp = time.strftime("%Y%m%d%H%M%S")

    def progress(index, result):
        if (index + 1) % 20 == 0:
            s = Sample.now()
            print(f"[{time.strftime('%H:%M:%S')}] run {index + 1}/{args.runs}: RSS {s.rss_mb:.0f} MB, threads "
                  f"{s.threads} ({s.py_threads} Python), fds {s.fds}", file=sys.stderr, flush=True)

    with store(args.tracking_uri) as folder, StubServer(args.latency) as stub:
        measure = optimize_loop(args.runs - args.warmup, args.warmup, stub.url, folder,
                                f"bench-longlived-{stamp}", on_run=progress)
    print(f"\n### long-lived process: {args.runs} optimizations ({args.warmup} warm-up), sampled after the "
          f"warm-up and at the end\n")
    print(HEADER)
    print(measure.row(args.runs), flush=True)
    found = problems(measure, args.max_rss_growth, args.slack)
    for line in found:
        print(f"FAIL: {line}", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
