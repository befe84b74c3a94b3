"""Quality benchmark: test accuracy of optimized prompts, ours against the peers, at equal budget.

    python -m benchmarks.quality --budget 150 --test-limit 200          # sst2 and agnews
    python -m benchmarks.quality --data path/to/dir --text-field review --label-field stars

Each data set is a folder with `train.jsonl` (optimization) and `test.jsonl` (scored once, outside
the budget); a bare name means `../shared/data/<name>` next to the repository. Every method gets
the same model, the same examples (a seeded shuffle of train.jsonl split into a training part and
a validation part) and the same maximum number of LLM calls (`--budget`, one counter over task and
optimizer model calls, enforced at the model provider: calls past it are refused with an empty
answer). Methods:

- `zero-shot`: the starting prompt (the task instruction, `Text: ...` / `Label:`), unoptimized.
- `ours-metaprompt`, `ours-dspy-mipro`, `ours-dspy-bootstrap`: `promptomatix.optimize` with the
  meta-prompt backend and the DSPy backend (MIPROv2, BootstrapFewShot), registered, then served
  through the registered MLflow model (`mlflow.pyfunc.load_model(...).predict`), as a user would.
- `dspy-mipro-light`: plain DSPy, `dspy.MIPROv2(metric, auto="light").compile(dspy.Predict(...))`,
  as DSPy's documentation shows it (ChatAdapter, the default).
- `mlflow-metaprompt`: `mlflow.genai.optimize_prompts(..., optimizer=MetaPromptOptimizer(...))`
  with a `predict_fn` that loads the registered prompt and calls the model through LiteLLM.

Prints a table per data set (test accuracy, LLM calls, refused calls, tokens, wall seconds) and
logs each row as a run of the MLflow experiment `benchmarks`.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import sys
import tempfile
import time
import traceback
from contextlib import contextmanager, redirect_stdout
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.common import (REPO, RUNS_EXPERIMENT, CallCounter, accuracy, experiment_id, first_word,
                               fresh_answer_cache, is_correct,
                               log_result, machine, provider_handler, read_jsonl, stopwatch, table, write_jsonl)

METHODS = ("zero-shot", "ours-metaprompt", "ours-dspy-mipro", "ours-dspy-bootstrap", "dspy-mipro-light",
           "mlflow-metaprompt")
DEFAULT_DATA = ("sst2", "agnews")
COLUMNS = [("method", "method"), ("accuracy", "test accuracy"), ("calls", "LLM calls"), ("refused", "refused"),
           ("tokens", "tokens"), ("seconds", "wall s"), ("note", "note")]
MLFLOW_MAX_EXAMPLES = 16  # more evaluation rows overflow the 4096-token context of its reflection prompt


class BenchmarkError(Exception):
    """Bad arguments or data: printed as one line, exit status 2."""


@dataclass
class DataSet:
    """A benchmark data set, fields renamed to `text` and `label`."""

    name: str
    train: list[dict]
    valid: list[dict]
    test: list[dict]
    labels: tuple[str, ...]

    @property
    def instruction(self) -> str:
        return f"Classify the text into one of these labels: {', '.join(self.labels)}."


@dataclass
class Outcome:
    method: str
    accuracy: float | None = None
    calls: int = 0
    refused: int = 0
    tokens: int = 0
    seconds: float = 0.0
    note: str = ""
    prompt: str = ""
    extra: dict = field(default_factory=dict)
    predictions: list[dict] = field(default_factory=list)

    def row(self) -> dict:
        return {"method": self.method, "accuracy": "-" if self.accuracy is None else f"{self.accuracy:.3f}",
                "calls": self.calls, "refused": self.refused, "tokens": self.tokens,
                "seconds": f"{self.seconds:.1f}", "note": self.note}


def resolve_data(value: str) -> Path:
    """A folder path, or a bare name under `../shared/data/` next to the repository."""
    path = Path(value)
    if not path.exists() and "/" not in value:
        path = REPO.parent / "shared" / "data" / value
    if not (path / "train.jsonl").is_file() or not (path / "test.jsonl").is_file():
        raise BenchmarkError(f"{value}: expected a folder holding train.jsonl and test.jsonl (looked in {path})")
    return path


def load_data(value: str, text_field: str, label_field: str, valid_size: int, train_size: int,
              test_limit: int, seed: int) -> DataSet:
    path = resolve_data(value)

    def rows(file: str) -> list[dict]:
        out = []
        for number, row in enumerate(read_jsonl(path / file), 1):
            if text_field not in row or label_field not in row:
                raise BenchmarkError(f"{path / file}: line {number} lacks {text_field!r} or {label_field!r} "
                                     f"(it has: {', '.join(row)}); pass --text-field/--label-field")
            out.append({"text": " ".join(str(row[text_field]).split()), "label": str(row[label_field]).strip()})
        return out

    pool, test = rows("train.jsonl"), rows("test.jsonl")[:test_limit]
    random.Random(seed).shuffle(pool)
    if len(pool) < valid_size + 2:
        raise BenchmarkError(f"{path}/train.jsonl: {len(pool)} examples, need at least {valid_size + 2}")
    valid, train = pool[:valid_size], pool[valid_size:valid_size + train_size]
    labels = tuple(sorted({r["label"] for r in pool}))
    return DataSet(path.name, train, valid, test, labels)


# --- sizes that fit the budget -------------------------------------------------------------------

def valid_size_for(budget: int) -> int:
    return max(4, min(50, budget // 10))


def metaprompt_sizes(budget: int, valid: int) -> tuple[int, int]:
    """(iterations, candidates) so that intake (1) + start (valid) + each candidate (a rewrite, one
    retry of slack, and valid scoring calls) fit in `budget`."""
    total = max(1, (budget - 1 - valid) // (valid + 2))
    candidates = min(4, total)
    return max(1, total // candidates), candidates


# --- the methods ---------------------------------------------------------------------------------

class Methods:
    """Runs each method on one data set under `counter`; returns an `Outcome` per method."""

    def __init__(self, data: DataSet, model: str, budget: int, counter: CallCounter, workdir: Path, *,
                 peer_max_tokens: int, seed: int, stamp: str):
        self.data, self.model, self.budget, self.counter = data, model, budget, counter
        self.workdir, self.peer_max_tokens, self.seed, self.stamp = workdir, peer_max_tokens, seed, stamp
        self.train_path = write_jsonl(workdir / f"{data.name}-train.jsonl", data.train)
        self.valid_path = write_jsonl(workdir / f"{data.name}-valid.jsonl", data.valid)

    def run(self, method: str) -> Outcome:
        outcome = Outcome(method)
        budget = self.counter.start(0 if method == "zero-shot" else self.budget)
        try:  # the libraries print progress to stdout: keep stdout for the tables
            with stopwatch() as elapsed, redirect_stdout(sys.stderr), \
                    fresh_answer_cache(self.workdir / f"cache-{self.data.name}-{method}"):
                predict = getattr(self, method.replace("-", "_"))(outcome)
            outcome.seconds = elapsed()
        except Exception as exc:  # a method that breaks is a result too: say why, go on
            outcome.seconds = elapsed()
            outcome.note = (outcome.note + "; " if outcome.note else "") + f"failed: {type(exc).__name__}: {exc}"
            logging.getLogger(__name__).debug("method %s failed", method, exc_info=True)
            traceback.print_exc(limit=3, file=sys.stderr)
            predict = None
        outcome.calls, outcome.refused, outcome.tokens = budget.calls, budget.refused, budget.tokens
        outcome.note = " ".join(outcome.note.split())[:240]
        if predict is not None:
            test_budget = self.counter.start(None)
            with redirect_stdout(sys.stderr):
                predictions = predict([r["text"] for r in self.data.test])
            outcome.accuracy = accuracy(predictions, [r["label"] for r in self.data.test])
            outcome.extra["test_calls"] = test_budget.calls
            outcome.extra["test_empty"] = sum(1 for p in predictions if not first_word(p))
            outcome.predictions = [{"text": r["text"], "label": r["label"], "answer": p}
                                   for r, p in zip(self.data.test, predictions)]
        return outcome

    # zero-shot: the starting prompt through the serving code's plain-prompt path
    def zero_shot(self, outcome: Outcome):
        from promptomatix.config import ModelSettings
        from promptomatix.models.lm import LM
        from promptomatix.models.usage import UsageMeter
        from promptomatix.prompts import Prompt

        prompt = Prompt(self.data.instruction, ("text",), ("label",), single_line=True)
        outcome.prompt = prompt.template
        lm = LM(ModelSettings(self.model), UsageMeter())
        return lambda texts: [prompt.parse(lm.complete(prompt.render({"text": t}), stop=prompt.stop))["label"]
                              for t in texts]

    def _ours(self, outcome: Outcome, **options):
        import mlflow
        import pandas as pd

        import promptomatix

        try:
            result = promptomatix.optimize(
                raw_input=self.data.instruction, train_data=str(self.train_path), valid_data=str(self.valid_path),
                task_type="classification", input_fields=("text",), output_fields=("label",), model=self.model,
                name=f"bench-{self.data.name}-{outcome.method}-{self.stamp}", experiment=RUNS_EXPERIMENT,
                seed=self.seed, show_progress=False, **options)
        except promptomatix.PromptomatixError as exc:  # as for the peers: the user keeps the start
            note = outcome.note
            predict = self.zero_shot(outcome)
            outcome.note = f"{note + '; ' if note else ''}failed ({exc}); scored the starting prompt"
            return predict
        outcome.prompt = result.prompt
        outcome.extra |= {"run_id": result.run_id, "valid_score": result.optimized_score,
                          "initial_valid_score": result.initial_score, "parse_failures": result.usage.parse_failures,
                          "package_calls": result.usage.calls}
        model = mlflow.pyfunc.load_model(result.model_uri)
        return lambda texts: list(model.predict(pd.DataFrame({"text": texts}))["label"])

    def ours_metaprompt(self, outcome: Outcome):
        iterations, candidates = metaprompt_sizes(self.budget, len(self.data.valid))
        outcome.note = f"{iterations} iterations x {candidates} candidates"
        return self._ours(outcome, backend="meta_prompt", iterations=iterations, candidates=candidates)

    def ours_dspy_mipro(self, outcome: Outcome):
        # Sized (2 instruction candidates, 2 trials) rather than auto="light": see the README.
        outcome.note = "1 iteration x 2 candidates"
        return self._ours(outcome, backend="dspy", optimizer="MIPROv2", iterations=1, candidates=2)

    def ours_dspy_bootstrap(self, outcome: Outcome):
        return self._ours(outcome, backend="dspy", optimizer="BootstrapFewShot", iterations=1)

    # plain DSPy, as its docs show: dspy.LM, dspy.Predict, MIPROv2(auto="light")
    def dspy_mipro_light(self, outcome: Outcome):
        import dspy

        from promptomatix.models.providers import import_litellm

        import_litellm()  # registers the embedded provider with LiteLLM, which dspy.LM calls
        dspy.configure_cache(enable_disk_cache=False, enable_memory_cache=True)
        lm = dspy.LM(self.model, temperature=0.0, max_tokens=self.peer_max_tokens)
        dspy.configure(lm=lm)
        program = dspy.Predict(dspy.Signature("text -> label", self.data.instruction))

        def metric(example, prediction, trace=None):
            return is_correct(getattr(prediction, "label", ""), example.label)

        trainset = [dspy.Example(**r).with_inputs("text") for r in self.data.train]
        valset = [dspy.Example(**r).with_inputs("text") for r in self.data.valid]
        optimizer = dspy.MIPROv2(metric=metric, auto="light", num_threads=4, seed=self.seed)
        failures = {"n": 0}

        def serve(prog):
            def predict(texts):
                out = []
                for text in texts:
                    try:
                        out.append(str(prog(text=text).label))
                    except Exception:  # an answer the adapter cannot parse: no label
                        failures["n"] += 1
                        out.append("")
                outcome.extra["test_parse_failures"] = failures["n"]
                return out
            return predict

        try:
            compiled = optimizer.compile(program, trainset=trainset, valset=valset)
        except Exception as exc:  # the user is left with the program they started with
            outcome.note = f"compile failed ({type(exc).__name__}: {str(exc)[:100]}); scored the unoptimized program"
            outcome.prompt = program.signature.instructions
            return serve(program)
        predictor = compiled.predictors()[0]
        outcome.prompt = predictor.signature.instructions + f"\n[{len(predictor.demos)} demos]"
        return serve(compiled)

    # MLflow's own optimizer, as its docs show: a registered prompt, predict_fn, a scorer
    def mlflow_metaprompt(self, outcome: Outcome):
        import mlflow
        from mlflow.genai.optimize.optimizers import MetaPromptOptimizer
        from mlflow.genai.scorers import scorer

        from promptomatix.models.providers import import_litellm
        from promptomatix.prompts import Prompt

        litellm = import_litellm()
        start = Prompt(self.data.instruction, ("text",), ("label",), single_line=True).template
        registered = mlflow.genai.register_prompt(name=f"bench-{self.data.name}-mlflow-{self.stamp}", template=start)

        def make_predict_fn(uri):
            def predict_fn(text: str) -> str:
                prompt = mlflow.genai.load_prompt(uri)
                response = litellm.completion(model=self.model, temperature=0.0, max_tokens=self.peer_max_tokens,
                                              messages=[{"role": "user", "content": prompt.format(text=text)}])
                return response.choices[0].message.content or ""
            return predict_fn

        @scorer
        def exact_label(outputs, expectations) -> float:
            return float(is_correct(outputs, expectations["expected_response"]))

        size = min((self.budget - 1) // 2, MLFLOW_MAX_EXAMPLES)
        rows = (self.data.train + self.data.valid)[:size]
        train_data = [{"inputs": {"text": r["text"]}, "expectations": {"expected_response": r["label"]}} for r in rows]
        provider, _, name = self.model.partition("/")
        warnings = _Collect("mlflow.genai.optimize.optimizers.metaprompt_optimizer")
        with warnings, active_experiment(experiment_id(RUNS_EXPERIMENT)):  # where its own run goes
            result = mlflow.genai.optimize_prompts(
                predict_fn=make_predict_fn(registered.uri), train_data=train_data, prompt_uris=[registered.uri],
                optimizer=MetaPromptOptimizer(reflection_model=f"{provider}:/{name}",
                                              lm_kwargs={"temperature": 0.7, "max_tokens": 512}),
                scorers=[exact_label])
        optimized = result.optimized_prompts[0]
        outcome.prompt = optimized.template
        failed = [m for m in warnings.messages if "failed" in m.lower()]
        notes = [f"{size} train rows"]
        if failed:
            notes.append(f"optimizer fell back to the original prompt ({failed[0][:150]})")
        elif optimized.template == start:
            notes.append("optimized prompt unchanged")
        outcome.note = "; ".join(notes)
        return lambda texts: [make_predict_fn(optimized.uri)(t) for t in texts]


@contextmanager
def active_experiment(experiment_id: str):
    """`mlflow.set_experiment` for the block only: it sets a process-wide default and the
    MLFLOW_EXPERIMENT_ID variable (which child processes inherit); both are put back after."""
    import os

    from mlflow.tracking import fluent

    saved = fluent._active_experiment_id, os.environ.get("MLFLOW_EXPERIMENT_ID")
    mlflow.set_experiment(experiment_id=experiment_id)
    try:
        yield
    finally:
        fluent._active_experiment_id = saved[0]
        if saved[1] is None:
            os.environ.pop("MLFLOW_EXPERIMENT_ID", None)
        else:
            os.environ["MLFLOW_EXPERIMENT_ID"] = saved[1]


class _Collect(logging.Handler):
    """Collects a logger's warning messages inside a `with` block."""

    def __init__(self, logger: str):
        super().__init__(logging.WARNING)
        self.logger = logging.getLogger(logger)
        self.messages: list[str] = []

    def emit(self, record):
        self.messages.append(record.getMessage())

    def __enter__(self):
        self.logger.addHandler(self)
        return self

    def __exit__(self, *exc):
        self.logger.removeHandler(self)


# --- command line --------------------------------------------------------------------------------

def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.quality", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", action="append", help="data set folder or name under ../shared/data "
                        "(repeatable; default: sst2 and agnews)")
    parser.add_argument("--text-field", default="text")
    parser.add_argument("--label-field", default="label")
    parser.add_argument("--budget", type=int, default=150, help="maximum LLM calls per method (default 150)")
    parser.add_argument("--test-limit", type=int, default=200, help="test examples scored (default 200)")
    parser.add_argument("--train-size", type=int, default=40, help="training examples given to each method")
    parser.add_argument("--valid-size", type=int, help="validation examples (default: budget/10, 4..50)")
    parser.add_argument("--methods", default=",".join(METHODS), help=f"comma-separated subset of {', '.join(METHODS)}")
    parser.add_argument("--model", default="embedded/gemma-3-270m", help="task and optimizer model of every method")
    parser.add_argument("--provider", help="LiteLLM custom provider whose calls are counted (default: the model's)")
    parser.add_argument("--peer-max-tokens", type=int, default=32,
                        help="max tokens per answer for the peers' task calls (they set no stop sequence)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tracking-uri", help="MLflow tracking URI (default: MLFLOW_TRACKING_URI or MLflow's default)")
    parser.add_argument("--quiet", action="store_true", help="less logging from the libraries")
    args = parser.parse_args(argv)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        parser.error(f"unknown method {unknown[0]!r}; choose from {', '.join(METHODS)}")
    if args.budget < 10:
        parser.error("--budget must be at least 10")
    args.methods = methods
    return args


def run(args: argparse.Namespace, out=None) -> dict[str, list[Outcome]]:
    """Every method on every data set; prints the tables and logs the runs. Returns the outcomes."""
    import mlflow

    out = out or sys.stdout
    if args.tracking_uri:
        mlflow.set_tracking_uri(args.tracking_uri)
        mlflow.set_registry_uri(args.tracking_uri)
    valid_size = args.valid_size or valid_size_for(args.budget)
    host = machine()
    stamp = time.strftime("%Y%m%d%H%M%S")
    results: dict[str, list[Outcome]] = {}
    counter = CallCounter(provider_handler(args.provider or args.model.split("/", 1)[0]))
    with tempfile.TemporaryDirectory(prefix="bench-quality-") as tmp, counter:
        for value in args.data or DEFAULT_DATA:
            data = load_data(value, args.text_field, args.label_field, valid_size, args.train_size,
                             args.test_limit, args.seed)
            methods = Methods(data, args.model, args.budget, counter, Path(tmp), peer_max_tokens=args.peer_max_tokens,
                              seed=args.seed, stamp=stamp)
            outcomes = []
            for method in args.methods:
                print(f"[{time.strftime('%H:%M:%S')}] {data.name}: {method} ...", file=sys.stderr, flush=True)
                outcome = methods.run(method)
                outcomes.append(outcome)
                print(f"[{time.strftime('%H:%M:%S')}] {data.name}: {method}: {outcome.row()} {outcome.extra}",
                      file=sys.stderr, flush=True)
                log_result("quality", {
                    "run_name": f"{data.name}/{method}", "dataset": data.name, "method": method,
                    "budget": args.budget, "model": args.model, "train_size": len(data.train),
                    "valid_size": len(data.valid), "test_size": len(data.test), "seed": args.seed,
                    "note": outcome.note, **{f"machine.{k}": v for k, v in host.items()}},
                    {"test_accuracy": outcome.accuracy, "llm_calls": outcome.calls, "refused_calls": outcome.refused,
                     "tokens": outcome.tokens, "wall_seconds": outcome.seconds,
                     **{k: v for k, v in outcome.extra.items() if isinstance(v, (int, float))}},
                    tags={"dataset": data.name, "method": method},
                    texts={"prompt.txt": outcome.prompt or "",
                           "test_predictions.jsonl": "".join(json.dumps(r, ensure_ascii=False) + "\n"
                                                             for r in outcome.predictions)})
            results[data.name] = outcomes
            print(f"\n### {data.name}: budget {args.budget} LLM calls per method, train {len(data.train)}, "
                  f"validation {len(data.valid)}, test {len(data.test)}, model {args.model}\n", file=out)
            print(table([o.row() for o in outcomes], COLUMNS), file=out, flush=True)
    return results


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        run(args)
    except BenchmarkError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
