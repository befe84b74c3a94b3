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

Generation sets (free-text answers scored by a metric) run the same way, with the input field,
the output field and the metric as arguments (known defaults for `samsum` and `gsm8k`):

    python -m benchmarks.quality --data samsum --train-rows 40 --val-rows 25 --budget 250 --test-limit 300
    python -m benchmarks.quality --data gsm8k --train-rows 40 --val-rows 25 --budget 250 --test-limit 300
    python -m benchmarks.quality --data path/to/dir --input-field article --output-field headline \
        --metric rouge_l --task-type summarization --instruction "Write the article's headline."

`samsum`: `dialogue` -> `summary`, ROUGE-L (promptomatix's `rouge_l`). `gsm8k`: `question` -> `answer`
(the final number), `numeric_match`. A folder with only `test.jsonl` (gsm8k) is shuffled with
`--split-seed` and split: its first train + validation rows are the optimization pool (shuffled
again with `--seed` into the two parts), the rest the test rows, so the test rows do not move
with `--seed`. Methods (classification names where they apply):

- `zero-shot`: the starting instruction, unoptimized, in promptomatix's prompt format
  (`Prompt`: instruction, `Dialogue: ...`, `Summary:`), answered through its answer path
  (`evaluation.answer`: the prompt's stop sequences, the output field parsed back).
- `lead` (summarization only): the first n words of the input, n the training references' mean
  length in words (SAMSum's lead baseline, by length rather than by utterances: its dialogues
  are stored on one line, turns not separable reliably).
- `random-search` (yardstick): random k-demo sets (k = 4, or fewer when the longest training
  examples would not fit the model's context beside the longest input), each scored on the
  validation rows, the best kept, as many sets as the budget pays for; the zero-shot format.
- `ours-metaprompt`: `promptomatix.optimize` on the user data (`task_type`, fields, the metric
  when it is not the task type's), registered and served as a user would.
- `ours-raw`: `promptomatix.optimize` from the task sentence alone (`--raw-input`; known for
  samsum and gsm8k), scored on the real test rows.
- `dspy-bfsrs-text`, `dspy-mipro-text`: plain DSPy through promptomatix's text adapter, as for
  classification, with the metric per example as the DSPy metric.

Zero-shot, random-search and the DSPy peers answer within one cap (`--answer-tokens`, default
fitted to the training references: 1.5x the 90th percentile of their length at 3.5 characters a
token, at least 16, the rule of promptomatix's free-text answers); ours answer as the package
serves them. Each row reports the metric on the test rows with its 95% interval
(`promptomatix.scoring.stats.score_estimate`: Wilson for 0/1 rows, the bootstrap otherwise), the mean
answer length beside the references' (words x 1.3, about the model's tokens), the model's
generated tokens per test call, seconds per call (optimization, and test answering), LLM calls,
refused calls and wall seconds.

The DSPy random search (both kinds of task) runs seed by seed (its `restrict`), each seed only
when the calls left pay for its evaluation on the validation set and a clean bootstrap; while a
seed bootstraps, teacher calls that would eat into its evaluation's calls are held back (raised
before the model is called, counted in the note): the compile fits the budget and never meets a
refused call. MIPROv2 on a generation set is sized for its worst case (every full evaluation
paid, no cache), with the same hold-back on its bootstrapping.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import random
import re
import sys
import tempfile
import threading
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
COLUMNS = [("method", "method"), ("accuracy", "test accuracy [95% CI]"), ("calls", "LLM calls"), ("refused", "refused"),
           ("tokens", "tokens"), ("seconds", "wall s"), ("note", "note")]
MLFLOW_MAX_EXAMPLES = 16  # more evaluation rows overflow the 4096-token context of its reflection prompt
TEXT_ANSWER_TOKENS = 8  # free-text answers are read by their first word: a few tokens hold it
YARDSTICK_DEMOS = 4
CLASSIFICATION_PEER_MAX_TOKENS = 32  # `--peer-max-tokens` for classification (see the README)

GEN_METHODS = ("zero-shot", "lead", "random-search", "ours-metaprompt", "ours-raw", "dspy-bfsrs-text",
               "dspy-mipro-text")
GEN_UNOPTIMIZED = ("zero-shot", "lead")
SUMMARIZATION_ONLY = ("lead",)  # in the default methods of summarization sets only
GEN_COLUMNS = [("method", "method"), ("score", "test score [95% CI]"), ("answer_tokens", "answer tok"),
               ("reference_tokens", "ref tok"), ("generated", "generated tok/call"), ("per_call", "s/call"),
               ("test_per_call", "s/answer (test)"), ("calls", "LLM calls"), ("refused", "refused"),
               ("seconds", "wall s"), ("note", "note")]
TOKENS_PER_WORD = 1.3  # about, for English text and this model's tokenizer
# Answer cap fitted to references, as promptomatix's free-text answers: 1.5x the 90th percentile.
ANSWER_CHARS_PER_TOKEN, ANSWER_HEADROOM, MIN_ANSWER_TOKENS = 3.5, 1.5, 16
MAX_CANDIDATE_PROGRAMS = 16  # DSPy's default `num_candidate_programs`: the random search's cap
MIPRO_CANDIDATES = 3
MIPRO_FULL_EVAL_STEPS = 5  # DSPy MIPROv2's default `minibatch_full_eval_steps`
NO_ERROR_LIMIT = 1_000_000  # DSPy `max_errors`: an unparseable or held-back answer scores 0, it never ends a compile


@dataclass(frozen=True)
class GenerationTask:
    """How a generation set is read and scored: the input and output fields, the promptomatix
    metric (`metric` with result key `score_key`), the task type given to `promptomatix.optimize`,
    the starting instruction and the task sentence for `ours-raw`."""

    input_field: str
    output_field: str
    metric: str
    score_key: str
    task_type: str
    instruction: str
    raw_input: str | None = None


GENERATION_SETS = {
    "samsum": GenerationTask("dialogue", "summary", "rouge_l", "rouge_l", "summarization",
                             "Summarize the chat dialogue in one or two sentences.",
                             "Summarize a chat conversation in one sentence"),
    "gsm8k": GenerationTask("question", "answer", "numeric_match", "numeric_match", "math",
                            "Solve the math word problem. Answer with the final number only.",
                            "Solve a grade-school math word problem and answer with the final number"),
}


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
    estimate: object = None  # generation: the test score with its interval (`promptomatix.scoring.stats.Estimate`)

    def row(self) -> dict:
        e = self.estimate
        score = "-" if self.accuracy is None else f"{self.accuracy:.3f}" if e is None else \
            f"{e.value:.3f} [{e.low:.3f}, {e.high:.3f}]"
        return {"method": self.method, "accuracy": score,
                "calls": self.calls, "refused": self.refused, "tokens": self.tokens,
                "seconds": f"{self.seconds:.1f}", "note": self.note}

    def gen_row(self) -> dict:
        """The row of a generation table (`GEN_COLUMNS`)."""
        def number(key: str, spec: str) -> str:
            value = self.extra.get(key)
            return "-" if value is None else f"{value:{spec}}"

        e = self.estimate
        return {"method": self.method, "score": "-" if e is None else f"{e.value:.3f} [{e.low:.3f}, {e.high:.3f}]",
                "answer_tokens": number("answer_tokens", ".1f"), "reference_tokens": number("reference_tokens", ".1f"),
                "generated": number("test_completion_tokens_per_call", ".1f"),
                "per_call": f"{self.seconds / self.calls:.2f}" if self.calls else "-",
                "test_per_call": number("test_seconds_per_call", ".2f"), "calls": self.calls,
                "refused": self.refused, "seconds": f"{self.seconds:.1f}", "note": self.note}


def data_path(value: str) -> Path:
    """A folder path, or a bare name under `../shared/data/` next to the repository (unchecked)."""
    path = Path(value)
    if not path.exists() and "/" not in value:
        path = REPO.parent / "shared" / "data" / value
    return path


def resolve_data(value: str) -> Path:
    """A folder path, or a bare name under `../shared/data/` next to the repository."""
    path = data_path(value)
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


@dataclass
class GenData:
    """A generation data set: rows keep the task's field names (`task.input_field`,
    `task.output_field`), as the prompts show them; `split` says where train and test came from."""

    name: str
    train: list[dict]
    valid: list[dict]
    test: list[dict]
    task: GenerationTask
    pool: list[dict] = field(default_factory=list)
    split: str = ""
    labels: tuple[str, ...] = ()

    @property
    def instruction(self) -> str:
        return self.task.instruction

    @property
    def raw_input(self) -> str | None:
        return self.task.raw_input


def generation_task(name: str, args: argparse.Namespace) -> GenerationTask | None:
    """The generation task for data set `name`: a known set's (`GENERATION_SETS`) with what the
    arguments override, or one the arguments describe; None for a classification set (neither,
    or `--task-type classification`)."""
    from promptomatix.errors import PromptomatixError
    from promptomatix.task.types import get_task_type

    keys = ("input_field", "output_field", "metric", "task_type", "instruction")
    given = {k: getattr(args, k, None) for k in keys if getattr(args, k, None)}
    known = GENERATION_SETS.get(name)
    classification = name in RAW_INPUTS and not (given.get("input_field") or given.get("output_field"))
    if given.get("task_type") == "classification" or classification or (known is None and not given):
        return None
    if known is None and not (given.get("input_field") and given.get("output_field")):
        raise BenchmarkError(f"{name}: a generation set needs --input-field and --output-field "
                             f"(known sets: {', '.join(GENERATION_SETS)})")
    task_type = given.get("task_type") or (known.task_type if known else "generation")
    try:
        kind = get_task_type(task_type)
    except (PromptomatixError, KeyError, LookupError) as exc:
        raise BenchmarkError(f"--task-type {task_type!r}: {exc}") from None
    if "metric" in given:
        metric = given["metric"]
        score_key = getattr(args, "score_key", None) or (kind.score_key if metric == kind.metric else metric)
    elif known and "task_type" not in given:
        metric, score_key = known.metric, getattr(args, "score_key", None) or known.score_key
    else:
        metric, score_key = kind.metric, getattr(args, "score_key", None) or kind.score_key
    inp = given.get("input_field") or known.input_field
    out = given.get("output_field") or known.output_field
    instruction = given.get("instruction") or (known.instruction if known else
                                               f"Write the {out.replace('_', ' ')} for the {inp.replace('_', ' ')}.")
    raw_input = getattr(args, "raw_input", None) or (known.raw_input if known else None)
    return GenerationTask(inp, out, metric, score_key, task_type, instruction, raw_input)


def load_generation(value: str, task: GenerationTask, valid_size: int, train_size: int, test_limit: int,
                    seed: int, split_seed: int = 0) -> GenData:
    """The rows of a generation set: train.jsonl shuffled (`seed`) into validation and training
    parts, test.jsonl for test; with no train.jsonl, test.jsonl shuffled (`split_seed`) and cut:
    the first `valid_size + train_size` rows are the pool, the rest the test rows."""
    path = data_path(value)
    if not (path / "test.jsonl").is_file():
        raise BenchmarkError(f"{value}: expected a folder holding test.jsonl, and train.jsonl unless the benchmark "
                             f"is to split test.jsonl (looked in {path})")
    inp, out = task.input_field, task.output_field

    def rows(file: str) -> list[dict]:
        found = []
        for number, row in enumerate(read_jsonl(path / file), 1):
            if inp not in row or out not in row:
                raise BenchmarkError(f"{path / file}: line {number} lacks {inp!r} or {out!r} "
                                     f"(it has: {', '.join(row)}); pass --input-field/--output-field")
            found.append({inp: " ".join(str(row[inp]).split()), out: " ".join(str(row[out]).split())})
        return found

    if (path / "train.jsonl").is_file():
        pool, test = rows("train.jsonl"), rows("test.jsonl")
        split = "train.jsonl and test.jsonl"
    else:
        everything = rows("test.jsonl")
        random.Random(split_seed).shuffle(everything)
        cut = valid_size + train_size
        pool, test = everything[:cut], everything[cut:]
        split = f"test.jsonl split with seed {split_seed}: {len(pool)} rows to optimize on, {len(test)} to test"
    random.Random(seed).shuffle(pool)
    if len(pool) < valid_size + 2:
        raise BenchmarkError(f"{path}: {len(pool)} examples to optimize on, need at least {valid_size + 2}")
    test = test[:test_limit]
    if not test:
        raise BenchmarkError(f"{path}: no test rows left (the split took {len(pool)})")
    valid, train = pool[:valid_size], pool[valid_size:valid_size + train_size]
    return GenData(path.name, train, valid, test, task, pool, split)


def approx_tokens(text: str) -> float:
    return len(str(text).split()) * TOKENS_PER_WORD


def answer_room(references) -> int:
    """The answer cap fitted to `references` (texts): 1.5x the 90th percentile of their length at
    3.5 characters a token, at least 16 (promptomatix's rule for free-text answers)."""
    sizes = sorted(len(str(r)) for r in references)
    if not sizes:
        return 256
    usual = sizes[min(len(sizes) - 1, math.ceil(0.9 * len(sizes)) - 1)]
    return max(MIN_ANSWER_TOKENS, math.ceil(usual / ANSWER_CHARS_PER_TOKEN * ANSWER_HEADROOM))


# --- sizes that fit the budget -------------------------------------------------------------------

def valid_size_for(budget: int) -> int:
    return max(4, min(50, budget // 10))


# --- the methods ---------------------------------------------------------------------------------

def held_out_note(outcome: Outcome, test_score: float) -> None:
    """For our rows with the in-run check (`check_*`, the user's rows the search never saw): that
    estimate beside the test score, whether its interval holds the test score, and the
    validation score's optimism (validation minus test), in the note and the extras."""
    extra = outcome.extra
    if "valid_score" in extra:
        extra["valid_optimism"] = extra["valid_score"] - test_score
    if "check_score" not in extra:
        return
    extra["check_holds_test"] = float(extra["check_low"] <= test_score <= extra["check_high"])
    outcome.note = (outcome.note + "; " if outcome.note else "") + (
        f"held-out {extra['check_score']:.3f} [{extra['check_low']:.3f}, {extra['check_high']:.3f}] "
        f"n={extra['check_rows']} ({'holds' if extra['check_holds_test'] else 'MISSES'} the test score), gain "
        f"{extra['check_gain']:+.3f} [{extra['check_gain_low']:+.3f}, {extra['check_gain_high']:+.3f}]; "
        f"validation optimism {extra.get('valid_optimism', 0.0):+.3f}")


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
        outcome, predict = self._spend(method, budget)
        if predict is not None:
            test_budget = self.counter.start(None)
            with redirect_stdout(sys.stderr):
                predictions = [self.data.label_alias(str(p)) for p in predict([r["text"] for r in self.data.test])]
            outcome.accuracy = accuracy(predictions, [r["label"] for r in self.data.test])
            from promptomatix.scoring.stats import wilson

            outcome.estimate = wilson(round(outcome.accuracy * len(predictions)), len(predictions))
            outcome.extra |= {"accuracy_low": outcome.estimate.low, "accuracy_high": outcome.estimate.high}
            held_out_note(outcome, outcome.accuracy)
            outcome.extra["test_calls"] = test_budget.calls
            outcome.extra["test_empty"] = sum(1 for p in predictions if not first_word(p))
            outcome.predictions = [{"text": r["text"], "label": r["label"], "answer": p}
                                   for r, p in zip(self.data.test, predictions)]
        return outcome

    def _spend(self, method: str, budget: int | None):
        """Runs `method` under a fresh budget of `budget` calls: its outcome (calls, refused calls,
        tokens, seconds, note) and the function answering inputs with its result (None if it broke)."""
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
        return outcome, predict

    def calls_left(self) -> int:
        return self.budget - self.counter.budget.calls

    # --- unoptimized and yardsticks: the plain prompt, read as text or as a label

    def _prompt(self, demos=(), labels: bool = False):
        from promptomatix.task.prompt import Prompt

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
        from promptomatix.scoring.evaluator import answer

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
            options |= self._data_options()
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
        held = result.extra.get("held_out")
        if held is not None:  # the in-run check on the user's rows the search never saw
            outcome.extra |= {"check_rows": held.n, "check_score": held.b.value, "check_low": held.b.low,
                              "check_high": held.b.high, "check_gain": held.difference.value,
                              "check_gain_low": held.difference.low, "check_gain_high": held.difference.high}
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

    def _data_options(self) -> dict:
        """`promptomatix.optimize`'s options for the user data."""
        return dict(raw_input=self.data.instruction, train_data=str(self.train_path), valid_data=str(self.valid_path),
                    task_type="classification", input_fields=("text",), output_fields=("label",))

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

        from promptomatix.backends.search import draw_demos
        from promptomatix.run.checkpoints import read_saved
        from promptomatix.scoring import Metric
        from promptomatix.scoring.evaluator import Evaluator
        from promptomatix.scoring.labels import batch_calibration, calibrated

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

    def _dspy_task(self) -> dict:
        """The DSPy task: signature, instruction, input and output field, the text adapter's
        options, and the metric `metric(example, prediction, trace=None)`."""
        def metric(example, prediction, trace=None):
            return is_correct(getattr(prediction, "label", ""), example.label)

        return {"signature": "text -> label", "instruction": self.data.instruction, "input": "text",
                "output": "label", "adapter": {"single_line": ("label",)}, "metric": metric}

    def _dspy(self, outcome: Outcome, make_optimizer=None, *, text_adapter: bool, compile_options=None,
              compile=None):
        """A plain DSPy program compiled by `make_optimizer(metric).compile(...)`, or by
        `compile(program, metric, trainset, valset)`, served as compiled."""
        import dspy

        from promptomatix.backends.dspy.adapter import TextAdapter
        from promptomatix.models.providers import import_litellm

        import_litellm()  # registers the embedded provider with LiteLLM, which dspy.LM calls
        dspy.configure_cache(enable_disk_cache=False, enable_memory_cache=True)
        task = self._dspy_task()
        lm = dspy.LM(self.model, temperature=0.0, max_tokens=self.peer_max_tokens)
        adapter = TextAdapter(**task["adapter"]) if text_adapter else dspy.ChatAdapter()
        dspy.configure(lm=lm, adapter=adapter)
        program = dspy.Predict(dspy.Signature(task["signature"], task["instruction"]))
        metric, field_in, field_out = task["metric"], task["input"], task["output"]

        trainset = [dspy.Example(**r).with_inputs(field_in) for r in self.data.train]
        valset = [dspy.Example(**r).with_inputs(field_in) for r in self.data.valid]
        failures = {"n": 0}

        def serve(prog):
            def predict(texts):
                out = []
                for text in texts:
                    try:
                        out.append(str(getattr(prog(**{field_in: text}), field_out)))
                    except Exception:  # an answer the adapter cannot parse: no answer
                        failures["n"] += 1
                        out.append("")
                outcome.extra["test_parse_failures"] = failures["n"]
                return out
            return predict

        try:
            if compile is not None:
                compiled = compile(program, metric, trainset, valset)
            else:
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
        return self._dspy(outcome, compile=lambda program, metric, trainset, valset: self._bfsrs_within_budget(
            outcome, program, metric, trainset, valset), text_adapter=True)

    def _bfsrs_within_budget(self, outcome: Outcome, program, metric, trainset, valset):
        """`dspy.BootstrapFewShotWithRandomSearch` (4 demos), run seed by seed (`restrict`) in
        its own order (-3 zero-shot, -2 labelled demos, -1 bootstrapped, 0.. shuffled
        bootstraps of random size), each only when the calls left pay for its evaluation on the
        validation set and a clean bootstrap; the best on validation kept, as DSPy keeps it (the
        first of equal scores). While a seed bootstraps, teacher calls that would leave fewer
        calls than its evaluation needs are held back (see `TeacherGuard`), so no call is ever
        refused and the compile cannot die on the budget. (Sized up front it could: a bootstrap
        that keeps failing runs through the whole training set, which took AG News at 50 calls
        past its budget, and the refused answers then ended the compile.)"""
        import dspy

        guard = TeacherGuard(self, self.peer_max_tokens)
        best, best_score, seeds = program, None, []
        for seed in range(-3, MAX_CANDIDATE_PROGRAMS):
            demos = 0 if seed < -1 else YARDSTICK_DEMOS if seed == -1 else \
                random.Random(seed).randint(1, YARDSTICK_DEMOS)  # the size DSPy draws for the seed
            if self.calls_left() < len(valset) + demos:
                break
            guard.reserve = len(valset)
            optimizer = dspy.BootstrapFewShotWithRandomSearch(
                metric=metric, max_bootstrapped_demos=YARDSTICK_DEMOS, max_labeled_demos=YARDSTICK_DEMOS,
                num_candidate_programs=max(0, seed + 1), num_threads=4, max_errors=NO_ERROR_LIMIT,
                teacher_settings={"lm": guard.lm})
            compiled = optimizer.compile(program, trainset=trainset, valset=valset, restrict=[seed])
            score = compiled.candidate_programs[0]["score"]
            seeds.append(seed)
            if best_score is None or score > best_score:
                best, best_score = compiled, score
        held = f"; {guard.held} teacher calls held back for the evaluations" if guard.held else ""
        outcome.note = (f"{len(seeds)} candidate programs (seeds {seeds[0]}..{seeds[-1]}; best {best_score:.1f} "
                        f"on validation){held}" if seeds else "no candidate program fits the budget: unoptimized")
        return best

    # MLflow's own optimizer, as its docs show: a registered prompt, predict_fn, a scorer
    def mlflow_metaprompt(self, outcome: Outcome):
        import mlflow
        from mlflow.genai.optimize.optimizers import MetaPromptOptimizer
        from mlflow.genai.scorers import scorer

        from promptomatix.models.providers import import_litellm
        from promptomatix.task.prompt import Prompt

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


class GenerationMethods(Methods):
    """The methods on a generation set (`GEN_METHODS`): free-text answers in the task's fields,
    scored on the test rows by the task's promptomatix metric, with a 95% interval."""

    def __init__(self, data: GenData, model: str, counter: CallCounter, workdir: Path, *,
                 peer_max_tokens: int | None, answer_tokens: int | None, seed: int, stamp: str):
        from promptomatix.errors import PromptomatixError
        from promptomatix.scoring import Metric

        task = data.task
        self.answer_cap = answer_tokens or answer_room([r[task.output_field] for r in data.train + data.valid])
        super().__init__(data, model, counter, workdir, peer_max_tokens=peer_max_tokens or self.answer_cap,
                         seed=seed, stamp=stamp)
        try:
            self.metric = Metric(task.metric, task.score_key)
        except PromptomatixError as exc:
            raise BenchmarkError(f"--metric {task.metric!r}: {exc}") from None
        self._metric_lock = threading.Lock()  # an `evaluate` module is not thread-safe; DSPy scores in threads

    def run(self, method: str, budget: int | None) -> Outcome:
        from promptomatix.scoring.stats import score_estimate

        outcome, predict = self._spend(method, budget)
        if predict is None:
            return outcome
        task, test = self.data.task, self.data.test
        test_budget = self.counter.start(None)
        try:
            with stopwatch() as elapsed, redirect_stdout(sys.stderr):
                answers = ["" if a is None else str(a) for a in predict([r[task.input_field] for r in test])]
        except Exception as exc:  # the other rows are still worth having
            outcome.note = (outcome.note + "; " if outcome.note else "") + \
                f"test answers failed: {type(exc).__name__}: {str(exc)[:120]}"
            traceback.print_exc(limit=3, file=sys.stderr)
            return outcome
        seconds = elapsed()
        scores = self.per_row(answers, test)
        outcome.estimate = score_estimate(scores, seed=self.seed)
        outcome.accuracy = outcome.estimate.value
        held_out_note(outcome, outcome.accuracy)
        calls = test_budget.calls
        outcome.extra |= {
            "score_low": outcome.estimate.low, "score_high": outcome.estimate.high, "test_calls": calls,
            "test_seconds": seconds, "test_seconds_per_call": seconds / calls if calls else None,
            "test_completion_tokens_per_call": test_budget.completion_tokens / calls if calls else None,
            "test_empty": sum(1 for a in answers if not a.strip()),
            "answer_tokens": sum(approx_tokens(a) for a in answers) / len(answers),
            "reference_tokens": sum(approx_tokens(r[task.output_field]) for r in test) / len(test)}
        outcome.predictions = [{task.input_field: r[task.input_field], task.output_field: r[task.output_field],
                                "answer": a, "score": score} for r, a, score in zip(test, answers, scores)]
        return outcome

    def per_row(self, answers, rows) -> list[float]:
        """The metric's score of each answer against its row's reference."""
        out = self.data.task.output_field
        with self._metric_lock:
            scored = self.metric.score_records([{out: a} for a in answers], list(rows), (out,))
        return [float(x) for x in scored.per_example]

    # --- unoptimized and yardsticks: promptomatix's prompt format and answer path

    def _prompt(self, demos=(), labels: bool = False):
        from promptomatix.task.prompt import Prompt

        task = self.data.task
        return Prompt(task.instruction, (task.input_field,), (task.output_field,), tuple(demos))

    def _asker(self, prompt):
        """A function answering inputs with `prompt` through `promptomatix.scoring.evaluator.answer`
        (the prompt's stop sequences, the output field parsed back), answers capped at
        `answer_cap` tokens."""
        from promptomatix.scoring.evaluator import answer

        lm = self._lm(self.answer_cap)
        task = self.data.task
        return lambda texts: [answer(prompt, lm, {task.input_field: t}).outputs[task.output_field] for t in texts]

    def zero_shot(self, outcome: Outcome):
        prompt = self._prompt()
        outcome.prompt = prompt.template
        outcome.note = f"the starting instruction; answers up to {self.answer_cap} tokens"
        return self._asker(prompt)

    def lead(self, outcome: Outcome):
        task = self.data.task
        references = [r[task.output_field] for r in self.data.train + self.data.valid]
        words = max(1, round(sum(len(r.split()) for r in references) / len(references)))
        outcome.note = f"the first {words} words of the {task.input_field} (the training references' mean length)"
        outcome.prompt = outcome.note
        return lambda texts: [" ".join(str(t).split()[:words]) for t in texts]

    def random_search(self, outcome: Outcome):
        from promptomatix.backends.search import demos_that_fit, draw_demos
        from promptomatix.models.lm import context_tokens

        rng = random.Random(self.seed)
        task, valid = self.data.task, self.data.valid
        fit = demos_that_fit(self._prompt(), self.data.train, valid + self.data.test, context_tokens(self.model))
        k = max(0, min(YARDSTICK_DEMOS, fit, len(self.data.train)))
        sets = max(1, self.budget // max(1, len(valid))) if k else 1
        best, best_score = None, -1.0
        for _ in range(sets):
            prompt = self._prompt(draw_demos(self.data.train, k, None, (), rng))
            scores = self.per_row(self._asker(prompt)([r[task.input_field] for r in valid]), valid)
            score = sum(scores) / len(scores)
            if score > best_score:
                best, best_score = prompt, score
        outcome.note = (f"best of {sets} random {k}-demo sets ({best_score:.3f} on validation; the context holds "
                        f"{fit} of the longest demos)")
        outcome.prompt = best.template
        return self._asker(best)

    # --- ours

    def _data_options(self) -> dict:
        from promptomatix.task.types import get_task_type

        task = self.data.task
        options = dict(raw_input=task.instruction, train_data=str(self.train_path), valid_data=str(self.valid_path),
                       task_type=task.task_type, input_fields=(task.input_field,), output_fields=(task.output_field,))
        kind = get_task_type(task.task_type)
        if (task.metric, task.score_key) != (kind.metric, kind.score_key):
            options["metric_weights"] = {f"{task.metric}:{task.score_key}": 1.0}
        return options

    def ours_raw(self, outcome: Outcome):
        if not self.data.raw_input:
            raise BenchmarkError(f"{self.data.name}: ours-raw needs the task sentence: pass --raw-input")
        return self._ours(outcome, data=False, raw_input=self.data.raw_input)

    # --- plain DSPy

    def _dspy_task(self) -> dict:
        task = self.data.task

        def metric(example, prediction, trace=None):
            row = {task.input_field: example[task.input_field], task.output_field: example[task.output_field]}
            return self.per_row([str(getattr(prediction, task.output_field, "") or "")], [row])[0]

        return {"signature": f"{task.input_field} -> {task.output_field}", "instruction": task.instruction,
                "input": task.input_field, "output": task.output_field, "adapter": {}, "metric": metric}

    def dspy_mipro_text(self, outcome: Outcome):
        """MIPROv2 (3 candidates, 4 demos) with `num_trials` sized for its worst case: the
        default program's full evaluation, every trial's minibatch, and a full evaluation every
        `MIPRO_FULL_EVAL_STEPS` trials and at the end, none of them from the cache; the proposals
        (a dataset summary per 10 training rows, the program's description, an instruction per
        candidate, with room for the text adapter's follow-up calls) and a clean bootstrap before.
        Its bootstrapping teacher is held back (`TeacherGuard`) before it eats into those."""
        import dspy

        valid, train = len(self.data.valid), len(self.data.train)
        minibatch = min(valid, 10)
        proposals = math.ceil(train / 10) + 4 + 2 * MIPRO_CANDIDATES

        def cost(trials: int) -> int:
            return valid + trials * minibatch + (math.ceil(trials / MIPRO_FULL_EVAL_STEPS) + 1) * valid

        room = self.budget - proposals - YARDSTICK_DEMOS
        fitting = [t for t in range(1, 101) if cost(t) <= room]
        if not fitting:
            outcome.note = (f"not run: its smallest run (1 trial) needs about {cost(1) + proposals + YARDSTICK_DEMOS} "
                            f"calls; scored the unoptimized program")
            return self._dspy(outcome, compile=lambda program, *_: program, text_adapter=True)
        trials = fitting[-1]

        def compile(program, metric, trainset, valset):
            guard = TeacherGuard(self, self.peer_max_tokens)
            guard.reserve = proposals + cost(trials)
            optimizer = dspy.MIPROv2(metric=metric, auto=None, num_candidates=MIPRO_CANDIDATES,
                                     max_bootstrapped_demos=YARDSTICK_DEMOS, max_labeled_demos=YARDSTICK_DEMOS,
                                     num_threads=4, seed=self.seed, verbose=False, max_errors=NO_ERROR_LIMIT,
                                     teacher_settings={"lm": guard.lm})
            compiled = optimizer.compile(program, trainset=trainset, valset=valset, num_trials=trials,
                                         minibatch_size=minibatch, minibatch_full_eval_steps=MIPRO_FULL_EVAL_STEPS)
            if guard.held:
                outcome.note += f"; {guard.held} teacher calls held back"
            return compiled

        outcome.note = f"{trials} trials on minibatches of {minibatch} (sized for the worst case)"
        return self._dspy(outcome, compile=compile, text_adapter=True)


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


class HeldBack(RuntimeError):
    """A teacher call not made: the calls left are kept for an evaluation (`TeacherGuard`)."""


class TeacherGuard:
    """A DSPy LM for the bootstrapping teacher (`teacher_settings={"lm": guard.lm}`), the same
    model and settings as the task's, that raises `HeldBack` instead of calling the model once
    no more than `reserve` calls of the method's budget are left: those are kept for what comes
    after the bootstrap (an evaluation). DSPy counts the raise as a failed bootstrap example and
    goes on (with `max_errors` out of the way); no call is made, none is refused."""

    def __init__(self, methods: Methods, max_tokens: int):
        import dspy

        self.reserve, self.held = 0, 0
        guard = self

        class GuardedLM(dspy.LM):
            def __call__(self, *args, **kwargs):
                guard.check()
                return super().__call__(*args, **kwargs)

            async def acall(self, *args, **kwargs):
                guard.check()
                return await super().acall(*args, **kwargs)

        self.methods = methods
        self.lm = GuardedLM(methods.model, temperature=0.0, max_tokens=max_tokens)

    def check(self) -> None:
        if self.methods.calls_left() <= self.reserve:
            self.held += 1
            raise HeldBack(f"{self.reserve} calls are kept for the evaluation")


# --- command line --------------------------------------------------------------------------------

def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.quality", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", action="append", help="data set folder or name under ../shared/data "
                        "(repeatable; default: sst2 and agnews; samsum and gsm8k are generation sets)")
    parser.add_argument("--text-field", default="text", help="classification: the input field")
    parser.add_argument("--label-field", default="label", help="classification: the label field")
    parser.add_argument("--input-field", help="generation: the input field (default: known for samsum and gsm8k); "
                        "giving it (or --output-field, --metric, --task-type) makes a data set a generation set")
    parser.add_argument("--output-field", help="generation: the output field, the reference")
    parser.add_argument("--metric", help="generation: a promptomatix metric, e.g. rouge_l, numeric_match, token_f1, "
                        "chrf, exact_match (default: the task type's)")
    parser.add_argument("--score-key", help="generation: the metric's result key (default: the metric's name)")
    parser.add_argument("--task-type", help="generation: the promptomatix task type given to ours, e.g. "
                        "summarization, math, qa, generation (default: known, else generation)")
    parser.add_argument("--instruction", help="generation: the starting instruction (default: known for samsum "
                        "and gsm8k)")
    parser.add_argument("--raw-input", help="the task sentence for ours-raw (default: known for sst2, agnews, "
                        "samsum and gsm8k)")
    parser.add_argument("--budget", default="150",
                        help="maximum LLM calls per method, or a comma-separated list of budgets (default 150)")
    parser.add_argument("--test-limit", type=int, default=200, help="test examples scored (default 200)")
    parser.add_argument("--train-size", "--train-rows", type=int, default=40,
                        help="training examples given to each method")
    parser.add_argument("--valid-size", "--val-rows", type=int, help="validation examples (default: budget/10, 4..50)")
    parser.add_argument("--split-seed", type=int, default=0, help="generation: a folder with only test.jsonl is "
                        "shuffled with this seed; its first train + validation rows are optimized on, the rest tested")
    parser.add_argument("--answer-tokens", type=int, help="generation: answer cap of zero-shot, random-search and "
                        "the DSPy peers (default: fitted to the training references)")
    parser.add_argument("--methods", help=f"comma-separated subset of {', '.join(METHODS)} (classification; "
                        f"default all) or {', '.join(GEN_METHODS)} (generation; default all, lead for "
                        f"summarization only)")
    parser.add_argument("--model", default="embedded/gemma-3-270m", help="task and optimizer model of every method")
    parser.add_argument("--provider", help="LiteLLM custom provider whose calls are counted (default: the model's)")
    parser.add_argument("--peer-max-tokens", type=int,
                        help="max tokens per answer for the peers' task calls (they set no stop sequence; default "
                             f"{CLASSIFICATION_PEER_MAX_TOKENS} for classification, the answer cap for generation)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tracking-uri", help="MLflow tracking URI (default: MLFLOW_TRACKING_URI or MLflow's default)")
    parser.add_argument("--quiet", action="store_true", help="less logging from the libraries")
    args = parser.parse_args(argv)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()] if args.methods is not None else None
    known = dict.fromkeys(METHODS + GEN_METHODS)
    unknown = [m for m in methods or () if m not in known]
    if unknown:
        parser.error(f"unknown method {unknown[0]!r}; choose from {', '.join(known)}")
    if methods is not None and not methods:
        parser.error("--methods names no method")
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
            task = generation_task(data_path(value).name, args)
            if task is not None:
                name, outcomes = _run_generation(value, task, args, counter, Path(tmp), host, stamp, out)
                results[name] = outcomes
                continue
            outcomes = []
            chosen = _chosen(args.methods, METHODS, METHODS, data_path(value).name)
            for budget in args.budgets:
                valid_size = args.valid_size or valid_size_for(budget)
                data = load_data(value, args.text_field, args.label_field, valid_size, args.train_size,
                                 args.test_limit, args.seed, args.raw_input)
                peer_max_tokens = args.peer_max_tokens or CLASSIFICATION_PEER_MAX_TOKENS
                methods = Methods(data, args.model, counter, Path(tmp), peer_max_tokens=peer_max_tokens,
                                  seed=args.seed, stamp=stamp)
                rows = []
                for method in chosen:
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


def _chosen(given: list[str] | None, allowed: tuple[str, ...], default: tuple[str, ...], name: str) -> list[str]:
    """The methods to run on data set `name`: those given that apply to its kind of task (the
    others named on stderr), or the kind's default."""
    if given is None:
        return list(default)
    skipped = [m for m in given if m not in allowed]
    if skipped:
        print(f"{name}: skipping {', '.join(skipped)} (not a method for this kind of task)", file=sys.stderr)
    return [m for m in given if m in allowed]


def _run_generation(value: str, task: GenerationTask, args, counter: CallCounter, workdir: Path, host: dict,
                    stamp: str, out) -> tuple[str, list[Outcome]]:
    """Every chosen method on generation set `value` at every budget; prints a table per budget."""
    name = data_path(value).name
    default = tuple(m for m in GEN_METHODS if m not in SUMMARIZATION_ONLY or task.task_type == "summarization")
    chosen = _chosen(args.methods, GEN_METHODS, default, name)
    outcomes = []
    for budget in args.budgets:
        valid_size = args.valid_size or valid_size_for(budget)
        data = load_generation(value, task, valid_size, args.train_size, args.test_limit, args.seed, args.split_seed)
        methods = GenerationMethods(data, args.model, counter, workdir, peer_max_tokens=args.peer_max_tokens,
                                    answer_tokens=args.answer_tokens, seed=args.seed, stamp=stamp)
        rows = []
        for method in chosen:
            unoptimized = method in GEN_UNOPTIMIZED
            if unoptimized and budget != args.budgets[0]:
                continue
            outcome = _run_one(methods, method, None if unoptimized else budget, data, args, host)
            outcomes.append(outcome)
            rows.append(outcome)
        references = sum(approx_tokens(r[task.output_field]) for r in data.test) / len(data.test)
        print(f"\n### {data.name}: {task.task_type}, {task.input_field} -> {task.output_field}, "
              f"{task.metric}:{task.score_key}; budget {budget} LLM calls per method, train {len(data.train)}, "
              f"validation {len(data.valid)}, test {len(data.test)} ({data.split}); answers capped at "
              f"{methods.answer_cap} tokens (references {references:.1f} tokens on average), model {args.model}\n",
              file=out)
        print(table([o.gen_row() for o in rows], GEN_COLUMNS), file=out, flush=True)
    return name, outcomes


def _run_one(methods: Methods, method: str, budget: int | None, data: DataSet, args, host: dict) -> Outcome:
    print(f"[{time.strftime('%H:%M:%S')}] {data.name}: {method} (budget {budget}) ...", file=sys.stderr, flush=True)
    outcome = methods.run(method, budget)
    print(f"[{time.strftime('%H:%M:%S')}] {data.name}: {method}: {outcome.row()} {outcome.extra}",
          file=sys.stderr, flush=True)
    if isinstance(data, GenData):
        _log_generation(methods, outcome, data, args, host)
        return outcome
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


def _log_generation(methods: GenerationMethods, outcome: Outcome, data: GenData, args, host: dict) -> None:
    """A generation row as a run of the experiment `benchmarks`."""
    task, budget = data.task, outcome.budget
    e = outcome.estimate
    log_result("quality", {
        "run_name": f"{data.name}/{outcome.method}/{budget or 0}", "dataset": data.name, "method": outcome.method,
        "budget": budget or 0, "model": args.model, "task_type": task.task_type, "input_field": task.input_field,
        "output_field": task.output_field, "metric": f"{task.metric}:{task.score_key}",
        "instruction": task.instruction, "answer_cap": methods.answer_cap, "peer_max_tokens": methods.peer_max_tokens,
        "train_size": len(data.train), "valid_size": len(data.valid), "test_size": len(data.test),
        "split": data.split, "seed": args.seed, "note": outcome.note,
        **{f"machine.{k}": v for k, v in host.items()}},
        {"test_score": None if e is None else e.value, f"test_{task.score_key}": None if e is None else e.value,
         "llm_calls": outcome.calls, "refused_calls": outcome.refused, "tokens": outcome.tokens,
         "wall_seconds": outcome.seconds, "seconds_per_call": outcome.seconds / outcome.calls if outcome.calls else None,
         **{k: v for k, v in outcome.extra.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}},
        tags={"dataset": data.name, "method": outcome.method, "task": "generation"},
        texts={"prompt.txt": outcome.prompt or "",
               "test_predictions.jsonl": "".join(json.dumps(r, ensure_ascii=False) + "\n"
                                                 for r in outcome.predictions)})


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
