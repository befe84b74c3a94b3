"""Quality benchmark: test accuracy of optimized prompts, ours against yardsticks and peers, at
equal budgets of LLM calls.

    python -m benchmarks.quality --budget 50,150,250 --test-limit 500     # sst2 and agnews
    python -m benchmarks.quality --data path/to/dir --text-field review --label-field stars \
        --raw-input "Classify a review as positive or negative"

Each data set is a folder with `train.jsonl` (optimization) and `test.jsonl` (scored once, outside
the budget); a bare name means `../shared/data/<name>` next to the repository. Every method gets
the same model, the same examples (a seeded shuffle of train.jsonl split into a training part and
a validation part) and, per budget, the same maximum number of LLM calls (one counter over task
and optimizer model calls, enforced at the model provider: calls past it are refused with an
empty answer; our methods are also given it as `max_calls`, and stop there themselves). Methods:

- `zero-shot-text`: the task instruction (`Text: ...` / `Label:`), unoptimized, answered in free
  text and read by its first word (as a plain completion call would be used).
- `zero-shot`: the same prompt as promptomatix serves it before optimizing: the answer is one of
  the labels (the embedded model scores each label), uncalibrated.
- `random-search` (yardstick): random label-balanced 4-demo sets, each scored on the validation
  set, the best kept, as many sets as the budget pays for; answers in free text (first word).
- `random-search-labels`: the same search with promptomatix's label answers: what the search
  adds over the answer format alone.
- `ours-raw`: `promptomatix.optimize` from the task sentence alone (`--raw-input`; no data: its
  synthetic data, labelled by the task model), scored on the real test set. Its synthetic labels
  are also judged against a reference classifier built from the real training data (the
  embedded model with three 8-demo sets of real examples, batch-calibrated), whose own test
  accuracy is reported beside.
- `ours-metaprompt`, `ours-dspy-mipro`, `ours-dspy-bootstrap`: `promptomatix.optimize` on the
  data, meta-prompt backend and DSPy backend (MIPROv2, BootstrapFewShot). Our methods are
  registered, then served through the registered MLflow model
  (`mlflow.pyfunc.load_model(...).predict`), as a user would.
- `dspy-mipro-light`: plain DSPy as its documentation shows it,
  `dspy.MIPROv2(metric, auto="light").compile(dspy.Predict(...))` with the default ChatAdapter.
- `dspy-mipro-text`, `dspy-bfsrs-text`: plain DSPy `MIPROv2` (sized to the budget) and
  `BootstrapFewShotWithRandomSearch` (as many candidate programs as the budget pays for) through
  promptomatix's text-completion adapter, so that a peer is not lost to the chat format alone.
- `mlflow-metaprompt`: `mlflow.genai.optimize_prompts(..., optimizer=MetaPromptOptimizer(...))`
  with a `predict_fn` that loads the registered prompt and calls the model through LiteLLM.

Prints a table per data set and budget (test accuracy, LLM calls, refused calls, tokens, wall
seconds) and logs each row as a run of the MLflow experiment `benchmarks`.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import re
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

METHODS = ("zero-shot-text", "zero-shot", "random-search", "random-search-labels", "ours-raw", "ours-metaprompt",
           "ours-dspy-mipro", "ours-dspy-bootstrap", "dspy-mipro-light", "dspy-mipro-text", "dspy-bfsrs-text",
           "mlflow-metaprompt")
UNOPTIMIZED = ("zero-shot-text", "zero-shot")  # no budget: run once per data set
DEFAULT_DATA = ("sst2", "agnews")
RAW_INPUTS = {  # the task sentence a user would type, for `ours-raw`
    "sst2": "Classify the sentiment of a movie review as positive or negative",
    "agnews": "Classify a news article as World, Sports, Business or Sci/Tech",
}
COLUMNS = [("method", "method"), ("accuracy", "test accuracy"), ("calls", "LLM calls"), ("refused", "refused"),
           ("tokens", "tokens"), ("seconds", "wall s"), ("note", "note")]
MLFLOW_MAX_EXAMPLES = 16  # more evaluation rows overflow the 4096-token context of its reflection prompt
TEXT_ANSWER_TOKENS = 8  # free-text answers are read by their first word: a few tokens hold it
YARDSTICK_DEMOS = 4


class BenchmarkError(Exception):
    """Bad arguments or data: printed as one line, exit status 2."""


@dataclass
class DataSet:
    """A benchmark data set, fields renamed to `text` and `label`; `pool` is all of train.jsonl
    (the reference judge draws from it), `raw_input` the task sentence for `ours-raw`."""

    name: str
    train: list[dict]
    valid: list[dict]
    test: list[dict]
    labels: tuple[str, ...]
    pool: list[dict] = field(default_factory=list)
    raw_input: str | None = None

    @property
    def instruction(self) -> str:
        return f"Classify the text into one of these labels: {', '.join(self.labels)}."

    def label_alias(self, label: str) -> str:
        """The data's label for a label an optimization chose (its intake may spell a label as
        the task sentence does, e.g. `Sci/Tech` for the data's `Tech`): the same label, or the
        one data label that is a word of it; else unchanged."""
        if label in self.labels:
            return label
        words = set(re.findall(r"[a-z0-9]+", label.lower()))
        same = [d for d in self.labels if d.lower() == label.lower()]
        inside = [d for d in self.labels if d.lower() in words]
        found = same or inside
        return found[0] if len(found) == 1 else label


@dataclass
class Outcome:
    method: str
    budget: int | None = None
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
              test_limit: int, seed: int, raw_input: str | None = None) -> DataSet:
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
    return DataSet(path.name, train, valid, test, labels, pool, raw_input or RAW_INPUTS.get(path.name))


# --- sizes that fit the budget -------------------------------------------------------------------

def valid_size_for(budget: int) -> int:
    return max(4, min(50, budget // 10))


# --- the methods ---------------------------------------------------------------------------------

class Methods:
    """Runs each method on one data set under `counter`; returns an `Outcome` per method."""

    def __init__(self, data: DataSet, model: str, counter: CallCounter, workdir: Path, *,
                 peer_max_tokens: int, seed: int, stamp: str):
        self.data, self.model, self.counter = data, model, counter
        self.workdir, self.peer_max_tokens, self.seed, self.stamp = workdir, peer_max_tokens, seed, stamp
        self.budget = 0
        self.train_path = write_jsonl(workdir / f"{data.name}-train.jsonl", data.train)
        self.valid_path = write_jsonl(workdir / f"{data.name}-valid.jsonl", data.valid)

    def run(self, method: str, budget: int | None) -> Outcome:
        outcome = Outcome(method, budget)
        self.budget = budget or 0
        spent = self.counter.start(budget or 0)
        try:  # the libraries print progress to stdout: keep stdout for the tables
            with stopwatch() as elapsed, redirect_stdout(sys.stderr), \
                    fresh_answer_cache(self.workdir / f"cache-{self.data.name}-{method}-{budget}"):
                predict = getattr(self, method.replace("-", "_"))(outcome)
            outcome.seconds = elapsed()
        except Exception as exc:  # a method that breaks is a result too: say why, go on
            outcome.seconds = elapsed()
            outcome.note = (outcome.note + "; " if outcome.note else "") + f"failed: {type(exc).__name__}: {exc}"
            logging.getLogger(__name__).debug("method %s failed", method, exc_info=True)
            traceback.print_exc(limit=3, file=sys.stderr)
            predict = None
        outcome.calls, outcome.refused, outcome.tokens = spent.calls, spent.refused, spent.tokens
        outcome.note = " ".join(outcome.note.split())[:240]
        if predict is not None:
            test_budget = self.counter.start(None)
            with redirect_stdout(sys.stderr):
                predictions = [self.data.label_alias(str(p)) for p in predict([r["text"] for r in self.data.test])]
            outcome.accuracy = accuracy(predictions, [r["label"] for r in self.data.test])
            outcome.extra["test_calls"] = test_budget.calls
            outcome.extra["test_empty"] = sum(1 for p in predictions if not first_word(p))
            outcome.predictions = [{"text": r["text"], "label": r["label"], "answer": p}
                                   for r, p in zip(self.data.test, predictions)]
        return outcome

    # --- unoptimized and yardsticks: the plain prompt, read as text or as a label

    def _prompt(self, demos=(), labels: bool = False):
        from promptomatix.prompts import Prompt

        return Prompt(self.data.instruction, ("text",), ("label",), tuple(demos), single_line=True,
                      labels=self.data.labels if labels else ())

    def _lm(self, max_tokens: int = 256):
        from promptomatix.config import ModelSettings
        from promptomatix.models.lm import LM
        from promptomatix.models.usage import UsageMeter

        return LM(ModelSettings(self.model, max_tokens=max_tokens), UsageMeter())

    def _asker(self, prompt):
        """A function answering texts with `prompt`: labels through promptomatix's answer
        reading, free text (a few tokens, read by their first word) otherwise."""
        from promptomatix.evaluation import answer

        lm = self._lm(TEXT_ANSWER_TOKENS if not prompt.labels else 256)
        return lambda texts: [answer(prompt, lm, {"text": t}).outputs["label"] for t in texts]

    def zero_shot_text(self, outcome: Outcome):
        prompt = self._prompt()
        outcome.prompt = prompt.template
        return self._asker(prompt)

    def zero_shot(self, outcome: Outcome):
        prompt = self._prompt(labels=True)
        outcome.prompt = prompt.template
        return self._asker(prompt)

    def _random_search(self, outcome: Outcome, labels: bool):
        from promptomatix.backends.search import draw_demos

        rng = random.Random(self.seed)
        sets = max(1, self.budget // max(1, len(self.data.valid)))
        valid_labels = [r["label"] for r in self.data.valid]
        best, best_score = None, -1.0
        for _ in range(sets):
            prompt = self._prompt(draw_demos(self.data.train, YARDSTICK_DEMOS, "label", self.data.labels, rng), labels)
            score = accuracy(self._asker(prompt)([r["text"] for r in self.data.valid]), valid_labels)
            if score > best_score:
                best, best_score = prompt, score
        outcome.note = f"best of {sets} random {YARDSTICK_DEMOS}-demo sets ({best_score:.3f} on validation)"
        outcome.prompt = best.template
        return self._asker(best)

    def random_search(self, outcome: Outcome):
        return self._random_search(outcome, labels=False)

    def random_search_labels(self, outcome: Outcome):
        return self._random_search(outcome, labels=True)

    # --- ours: promptomatix.optimize, registered, served as a user would

    def _ours(self, outcome: Outcome, *, data: bool = True, **options):
        import mlflow
        import pandas as pd

        import promptomatix

        if data:
            options |= dict(raw_input=self.data.instruction, train_data=str(self.train_path),
                            valid_data=str(self.valid_path), task_type="classification", input_fields=("text",),
                            output_fields=("label",))
        try:
            result = promptomatix.optimize(
                model=self.model, name=f"bench-{self.data.name}-{outcome.method}-{self.budget}-{self.stamp}",
                experiment=RUNS_EXPERIMENT, seed=self.seed, show_progress=False, max_calls=self.budget, **options)
        except promptomatix.PromptomatixError as exc:  # as for the peers: the user keeps the start
            note = outcome.note
            predict = self.zero_shot(outcome)
            outcome.note = f"{note + '; ' if note else ''}failed ({exc}); scored the starting prompt"
            return predict
        outcome.prompt = result.prompt
        outcome.extra |= {"run_id": result.run_id, "valid_score": result.optimized_score,
                          "initial_valid_score": result.initial_score, "parse_failures": result.usage.parse_failures,
                          "package_calls": result.usage.calls, "unmapped_answers": result.usage.unmapped_answers}
        outcome.note = (outcome.note + "; " if outcome.note else "") + \
            f"stopped by {result.extra.get('stopped_by')}; validation {result.initial_score:.2f} -> " \
            f"{result.optimized_score:.2f}"
        model = mlflow.pyfunc.load_model(result.model_uri)
        field = result.spec.output_fields[0]
        inputs = result.spec.input_fields
        return lambda texts: list(model.predict(pd.DataFrame({name: texts for name in inputs}))[field])

    def ours_raw(self, outcome: Outcome):
        if not self.data.raw_input:
            raise BenchmarkError(f"{self.data.name}: ours-raw needs the task sentence: pass --raw-input")
        predict = self._ours(outcome, data=False, raw_input=self.data.raw_input)
        run_id = outcome.extra.get("run_id")
        if run_id:
            with self.counter.suspended():
                outcome.extra |= self.judge_synthetic(run_id)
        return predict

    def judge_synthetic(self, run_id: str) -> dict:
        """How many of the run's synthetic labels a reference classifier agrees with: the
        embedded model with three 8-demo sets of real training examples, batch-calibrated on 25
        real inputs, averaged; its own accuracy on the first 100 test rows beside."""

        from promptomatix.answers import batch_calibration, calibrated
        from promptomatix.checkpoints import read_saved
        from promptomatix.backends.search import draw_demos
        from promptomatix.evaluation import Evaluator
        from promptomatix.scoring import Metric

        saved = read_saved(run_id)
        rows = list(saved.train) + list(saved.valid)
        text_field, label_field = saved.spec.input_fields[0], saved.spec.output_fields[0]
        rng = random.Random(self.seed + 1)
        evaluator = Evaluator(self._lm(), Metric("classification", "accuracy"), show_progress=False)
        unlabelled = [{"text": r["text"]} for r in rng.sample(self.data.pool, min(25, len(self.data.pool)))]
        judges = []
        for _ in range(3):
            prompt = self._prompt(draw_demos(self.data.pool, 8, "label", self.data.labels, rng), labels=True)
            offsets = batch_calibration([a.scores for a in evaluator.answers(prompt, unlabelled)])
            judges.append(prompt.with_(calibration=offsets))

        def judge(texts):
            totals = [[0.0] * len(self.data.labels) for _ in texts]
            for prompt in judges:
                for total, answer in zip(totals, evaluator.answers(prompt, [{"text": t} for t in texts])):
                    for i, value in enumerate(calibrated(answer.scores, prompt.calibration)):
                        total[i] += value
            return [self.data.labels[max(range(len(t)), key=t.__getitem__)] for t in totals]

        test = self.data.test[:100]
        judged = judge([r[text_field] for r in rows])
        return {"synthetic_examples": len(rows),
                "synthetic_label_accuracy": accuracy(judged, [self.data.label_alias(r[label_field]) for r in rows]),
                "judge_test_accuracy": accuracy(judge([r["text"] for r in test]), [r["label"] for r in test])}

    def ours_metaprompt(self, outcome: Outcome):
        return self._ours(outcome, backend="meta_prompt")

    def ours_dspy_mipro(self, outcome: Outcome):
        return self._ours(outcome, backend="dspy", optimizer="MIPROv2", iterations=1, candidates=2)

    def ours_dspy_bootstrap(self, outcome: Outcome):
        return self._ours(outcome, backend="dspy", optimizer="BootstrapFewShot", iterations=1)

    # --- plain DSPy

    def _dspy(self, outcome: Outcome, make_optimizer, *, text_adapter: bool, compile_options=None):
        import dspy

        from promptomatix.backends.dspy.adapter import TextAdapter
        from promptomatix.models.providers import import_litellm

        import_litellm()  # registers the embedded provider with LiteLLM, which dspy.LM calls
        dspy.configure_cache(enable_disk_cache=False, enable_memory_cache=True)
        lm = dspy.LM(self.model, temperature=0.0, max_tokens=self.peer_max_tokens)
        adapter = TextAdapter(single_line=("label",)) if text_adapter else dspy.ChatAdapter()
        dspy.configure(lm=lm, adapter=adapter)
        program = dspy.Predict(dspy.Signature("text -> label", self.data.instruction))

        def metric(example, prediction, trace=None):
            return is_correct(getattr(prediction, "label", ""), example.label)

        trainset = [dspy.Example(**r).with_inputs("text") for r in self.data.train]
        valset = [dspy.Example(**r).with_inputs("text") for r in self.data.valid]
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
            compiled = make_optimizer(metric).compile(program, trainset=trainset, valset=valset,
                                                      **(compile_options or {}))
        except Exception as exc:  # the user is left with the program they started with
            outcome.note = f"compile failed ({type(exc).__name__}: {str(exc)[:100]}); scored the unoptimized program"
            outcome.prompt = program.signature.instructions
            return serve(program)
        predictor = compiled.predictors()[0]
        outcome.prompt = predictor.signature.instructions + f"\n[{len(predictor.demos)} demos]"
        return serve(compiled)

    def dspy_mipro_light(self, outcome: Outcome):
        import dspy

        return self._dspy(outcome, lambda metric: dspy.MIPROv2(metric=metric, auto="light", num_threads=4,
                                                               seed=self.seed), text_adapter=False)

    def dspy_mipro_text(self, outcome: Outcome):
        import dspy

        # Sized to the budget as `ours-dspy-mipro` is: 3 instruction candidates, 3 bootstrapped
        # demo sets, and trials on minibatches of the validation set with the calls left.
        minibatch = min(len(self.data.valid), 10)
        trials = max(2, (self.budget - 3 * YARDSTICK_DEMOS - 6) // (minibatch + 1))
        outcome.note = f"{trials} trials on minibatches of {minibatch}"
        return self._dspy(outcome, lambda metric: dspy.MIPROv2(
            metric=metric, auto=None, num_candidates=3, max_bootstrapped_demos=YARDSTICK_DEMOS,
            max_labeled_demos=YARDSTICK_DEMOS, num_threads=4, seed=self.seed, verbose=False),
            text_adapter=True, compile_options={"num_trials": trials, "minibatch_size": minibatch})

    def dspy_bfsrs_text(self, outcome: Outcome):
        import dspy

        programs = max(1, self.budget // max(1, len(self.data.valid) + YARDSTICK_DEMOS) - 3)
        outcome.note = f"{programs} candidate programs"
        return self._dspy(outcome, lambda metric: dspy.BootstrapFewShotWithRandomSearch(
            metric=metric, max_bootstrapped_demos=YARDSTICK_DEMOS, max_labeled_demos=YARDSTICK_DEMOS,
            num_candidate_programs=programs, num_threads=4), text_adapter=True)

    # MLflow's own optimizer, as its docs show: a registered prompt, predict_fn, a scorer
    def mlflow_metaprompt(self, outcome: Outcome):
        import mlflow
        from mlflow.genai.optimize.optimizers import MetaPromptOptimizer
        from mlflow.genai.scorers import scorer

        from promptomatix.models.providers import import_litellm
        from promptomatix.prompts import Prompt

        litellm = import_litellm()
        start = Prompt(self.data.instruction, ("text",), ("label",), single_line=True).template
        registered = mlflow.genai.register_prompt(name=f"bench-{self.data.name}-mlflow-{self.budget}-{self.stamp}",
                                                  template=start)

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

    import mlflow
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
    parser.add_argument("--raw-input", help="the task sentence for ours-raw (default: known for sst2 and agnews)")
    parser.add_argument("--budget", default="150",
                        help="maximum LLM calls per method, or a comma-separated list of budgets (default 150)")
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
    try:
        budgets = [int(b) for b in str(args.budget).split(",") if b.strip()]
    except ValueError:
        parser.error(f"--budget must be whole numbers, got {args.budget!r}")
    if not budgets or min(budgets) < 10:
        parser.error("--budget must be at least 10")
    args.methods, args.budgets = methods, budgets
    return args


def run(args: argparse.Namespace, out=None) -> dict[str, list[Outcome]]:
    """Every method on every data set at every budget; prints the tables and logs the runs.
    Returns the outcomes per data set (the unoptimized methods once, first)."""
    import mlflow

    out = out or sys.stdout
    if args.tracking_uri:
        mlflow.set_tracking_uri(args.tracking_uri)
        mlflow.set_registry_uri(args.tracking_uri)
    host = machine()
    stamp = time.strftime("%Y%m%d%H%M%S")
    results: dict[str, list[Outcome]] = {}
    counter = CallCounter(provider_handler(args.provider or args.model.split("/", 1)[0]))
    with tempfile.TemporaryDirectory(prefix="bench-quality-") as tmp, counter:
        for value in args.data or DEFAULT_DATA:
            outcomes = []
            for budget in args.budgets:
                valid_size = args.valid_size or valid_size_for(budget)
                data = load_data(value, args.text_field, args.label_field, valid_size, args.train_size,
                                 args.test_limit, args.seed, args.raw_input)
                methods = Methods(data, args.model, counter, Path(tmp), peer_max_tokens=args.peer_max_tokens,
                                  seed=args.seed, stamp=stamp)
                rows = []
                for method in args.methods:
                    unoptimized = method in UNOPTIMIZED
                    if unoptimized and budget != args.budgets[0]:
                        continue
                    outcome = _run_one(methods, method, None if unoptimized else budget, data, args, host)
                    outcomes.append(outcome)
                    rows.append(outcome)
                print(f"\n### {data.name}: budget {budget} LLM calls per method, train {len(data.train)}, "
                      f"validation {len(data.valid)}, test {len(data.test)}, model {args.model}\n", file=out)
                print(table([o.row() for o in rows], COLUMNS), file=out, flush=True)
            results[data.name] = outcomes
    return results


def _run_one(methods: Methods, method: str, budget: int | None, data: DataSet, args, host: dict) -> Outcome:
    print(f"[{time.strftime('%H:%M:%S')}] {data.name}: {method} (budget {budget}) ...", file=sys.stderr, flush=True)
    outcome = methods.run(method, budget)
    print(f"[{time.strftime('%H:%M:%S')}] {data.name}: {method}: {outcome.row()} {outcome.extra}",
          file=sys.stderr, flush=True)
    log_result("quality", {
        "run_name": f"{data.name}/{method}/{budget or 0}", "dataset": data.name, "method": method,
        "budget": budget or 0, "model": args.model, "train_size": len(data.train),
        "valid_size": len(data.valid), "test_size": len(data.test), "seed": args.seed,
        "note": outcome.note, **{f"machine.{k}": v for k, v in host.items()}},
        {"test_accuracy": outcome.accuracy, "llm_calls": outcome.calls, "refused_calls": outcome.refused,
         "tokens": outcome.tokens, "wall_seconds": outcome.seconds,
         **{k: v for k, v in outcome.extra.items() if isinstance(v, (int, float))}},
        tags={"dataset": data.name, "method": method},
        texts={"prompt.txt": outcome.prompt or "",
               "test_predictions.jsonl": "".join(json.dumps(r, ensure_ascii=False) + "\n"
                                                 for r in outcome.predictions)})
    return outcome


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
