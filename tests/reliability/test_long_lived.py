"""A long-lived process (issue 43): many optimizations in one Python process leave no threads,
open files or memory behind. The short version of `python -m benchmarks.longlived --runs 200`:
20 optimizations through `promptomatix.optimize` (scripted endpoint on loopback, a real sqlite
store, traces on, each registered), sampled after 3 warm-up runs and at the end."""

from __future__ import annotations

from benchmarks.longlived import optimize_loop
from benchmarks.stub import StubServer

WARMUP, RUNS = 3, 17  # 20 optimizations in all
FDS_SLACK = 3  # files opened lazily after the warm-up (a log, a cache), constant, not per run
RSS_LIMIT_MB = 50


def test_twenty_optimizations_leave_no_threads_files_or_memory_behind(tracking, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "stub-key-for-a-local-endpoint")
    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    versions = []
    with StubServer(latency=0.0) as stub:
        measure = optimize_loop(RUNS, WARMUP, stub.url, tmp_path, "long-lived",
                                on_run=lambda index, result: versions.append(result.prompt_version))
    print(measure)
    assert len(versions) == WARMUP + RUNS and all(versions), f"every run registers a version: {versions}"
    assert measure.end.threads <= measure.start.threads, f"threads grew: {measure}"
    assert measure.end.py_threads <= measure.start.py_threads, f"Python threads grew: {measure}"
    assert measure.fds_growth <= FDS_SLACK, f"open file descriptors grew: {measure}"
    assert measure.rss_growth < RSS_LIMIT_MB, f"RSS grew {measure.rss_growth:.1f} MB: {measure}"
