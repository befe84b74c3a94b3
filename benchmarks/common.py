"""What both benchmarks share: one enforced LLM-call budget, the scorer, tables, the machine
description, and logging results as MLflow runs of the experiment `benchmarks`.

    counter = CallCounter(provider_handler("embedded"))
    with counter:                          # every call to that provider now goes through it
        budget = counter.start(150)        # a fresh budget of 150 calls for one method
        ...run the method...
        budget.calls, budget.refused       # calls made; calls refused once the budget was spent
        counter.start(None)                # unlimited (test-set scoring, outside the budget)

A refused call is answered with an empty completion (no tokens, no time), so a method that hits
its budget runs to its end on empty answers instead of crashing: that is "stopped at the budget".
"""

from __future__ import annotations

import json
import os
import platform
import re
import string
import subprocess
import threading
import time
from collections.abc import Iterable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
EXPERIMENT = "benchmarks"
RUNS_EXPERIMENT = "benchmarks-optimizations"  # the methods' own runs, kept out of the results table


@dataclass
class Budget:
    """Calls allowed (`limit`, None for no limit) and what was used: calls that reached the
    model, the tokens they took, and calls refused because the budget was spent."""

    limit: int | None
    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    refused: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def take(self) -> bool:
        """Reserve one call; False (and counted as refused) once the limit is reached."""
        with self._lock:
            if self.limit is not None and self.calls >= self.limit:
                self.refused += 1
                return False
            self.calls += 1
            return True

    def add_tokens(self, prompt: int, completion: int) -> None:
        with self._lock:
            self.prompt_tokens += prompt
            self.completion_tokens += completion


@contextmanager
def fresh_answer_cache(folder: Path):
    """Point promptomatix's cross-run answer cache (`PROMPTOMATIX_CACHE`, where the package has
    one) at an empty `folder` for the block: answers from earlier runs or other methods must not
    count as free calls. Restores the previous setting after."""
    previous = os.environ.get("PROMPTOMATIX_CACHE")
    folder.mkdir(parents=True, exist_ok=True)
    os.environ["PROMPTOMATIX_CACHE"] = str(folder)
    try:
        yield folder
    finally:
        if previous is None:
            os.environ.pop("PROMPTOMATIX_CACHE", None)
        else:
            os.environ["PROMPTOMATIX_CACHE"] = previous


def provider_handler(provider: str):
    """The LiteLLM custom handler serving `provider/...` models (installed by promptomatix)."""
    from promptomatix.models.providers import import_litellm

    litellm = import_litellm()
    for entry in litellm.custom_provider_map:
        if entry["provider"] == provider:
            return entry["custom_handler"]
    raise LookupError(f"no LiteLLM custom provider {provider!r} is installed")


class CallCounter:
    """Counts (and limits) every completion a LiteLLM custom handler serves, whoever calls it:
    our package, DSPy, MLflow. Entering wraps the handler's `completion` (its `acompletion`
    runs `completion` in a thread for the providers used here); leaving restores it."""

    def __init__(self, handler):
        self.handler = handler
        self.budget = Budget(None)
        self._original = None

    def start(self, limit: int | None) -> Budget:
        self.budget = Budget(limit)
        return self.budget

    @contextmanager
    def suspended(self):
        """Calls inside the block count against no budget (a measurement beside a method)."""
        kept = self.budget
        self.budget = Budget(None)
        try:
            yield
        finally:
            self.budget = kept

    def __enter__(self) -> CallCounter:
        import litellm

        self._original = self.handler.__dict__.get("completion")
        bound = self.handler.completion

        def completion(*args, **kwargs):
            budget = self.budget
            if not budget.take():
                response = kwargs.get("model_response") or litellm.ModelResponse()
                response.choices[0].message.content = ""
                response.choices[0].finish_reason = "stop"
                response.usage = litellm.Usage(prompt_tokens=0, completion_tokens=0, total_tokens=0)
                response._hidden_params["response_cost"] = 0.0
                return response
            response = bound(*args, **kwargs)
            usage = getattr(response, "usage", None)
            budget.add_tokens(getattr(usage, "prompt_tokens", 0) or 0, getattr(usage, "completion_tokens", 0) or 0)
            return response

        self.handler.completion = completion
        return self

    def __exit__(self, *exc) -> None:
        if self._original is None:
            del self.handler.completion
        else:
            self.handler.completion = self._original


_PUNCT = str.maketrans("", "", string.punctuation)


def first_word(text: str) -> str:
    """The answer as the scorer reads it: first word, lower case, punctuation stripped."""
    words = str(text or "").strip().split()
    return words[0].translate(_PUNCT).lower() if words else ""


def is_correct(prediction: str, label: str) -> bool:
    """Label match after normalising case and whitespace, on the prediction's first word."""
    return first_word(prediction) == " ".join(str(label).split()).lower()


def accuracy(predictions: Sequence[str], labels: Sequence[str]) -> float:
    return sum(is_correct(p, label) for p, label in zip(predictions, labels)) / len(labels) if labels else 0.0


@contextmanager
def stopwatch():
    """`with stopwatch() as elapsed: ...`, then `elapsed()` is the seconds the block took."""
    started = time.perf_counter()
    end = []
    yield lambda: (end[0] if end else time.perf_counter()) - started
    end.append(time.perf_counter())


def table(rows: Sequence[dict], columns: Sequence[tuple[str, str]]) -> str:
    """A Markdown table of `rows` (dicts), `columns` as (key, heading); floats to 3 digits."""
    def cell(value):
        if isinstance(value, float):
            return f"{value:.3f}"
        return "" if value is None else str(value)

    lines = ["| " + " | ".join(h for _, h in columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(cell(row.get(k)) for k, _ in columns) + " |" for row in rows]
    return "\n".join(lines)


def machine() -> dict[str, str]:
    """Where the numbers came from: cores, CPU model, RAM, Python and the versions that matter."""
    cpu = ""
    try:
        cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                    if line.startswith("model name")), "")
    except OSError:
        pass
    ram = ""
    try:
        kb = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
        ram = f"{kb / 1024 / 1024:.1f} GiB"
    except (OSError, AttributeError):
        pass
    info = {"nproc": str(os.cpu_count()), "cpu": cpu or platform.processor(), "ram": ram,
            "python": platform.python_version(), "platform": platform.platform()}
    for package in ("promptomatix", "mlflow", "dspy", "litellm", "llama_cpp_python"):
        try:
            info[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            info[package] = "-"
    try:
        info["commit"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                                        text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        info["commit"] = ""
    return info


def experiment_id(name: str = EXPERIMENT) -> str:
    """The id of experiment `name`, created if new, without changing the active experiment."""
    import mlflow

    client = mlflow.MlflowClient()
    found = client.get_experiment_by_name(name)
    return found.experiment_id if found else client.create_experiment(name)


def log_result(kind: str, params: dict, metrics: dict, tags: dict | None = None,
               texts: dict[str, str] | None = None) -> str:
    """One result row as a finished run of the experiment `benchmarks`; returns the run id."""
    import mlflow

    with mlflow.start_run(experiment_id=experiment_id(), run_name=params.get("run_name"), nested=False) as run:
        mlflow.set_tags({"benchmark": kind, **(tags or {})})
        mlflow.log_params({k: str(v)[:6000] for k, v in params.items() if k != "run_name"})
        mlflow.log_metrics({k: float(v) for k, v in metrics.items() if v is not None})
        for path, text in (texts or {}).items():
            mlflow.log_text(text, path)
    return run.info.run_id


def read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def write_jsonl(path: Path, rows: Iterable[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path
