"""What an optimization will ask of its models, before it asks: the data size that fits a call
budget, and the plan `--dry-run` prints.

The numbers are upper bounds of model calls (answers from the cache are free). The budget is the
hard limit whatever the plan says: when it is spent the search stops and keeps the best prompt
so far.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

from promptomatix.backends.search import race_cost, search_rows
from promptomatix.config import OptimizationConfig
from promptomatix.data import CHOOSING_ROWS, held_out_count
from promptomatix.data.selflabel import TEACHERS, WRITE_ATTEMPTS
from promptomatix.evaluation import CONTENT_FREE, calibrates_from_content_free

log = logging.getLogger(__name__)

DATA_SHARE = 0.6  # of a call budget, at most this much goes to writing and labelling synthetic data


def calls_per_example(config: OptimizationConfig, labelled: bool) -> float:
    """Calls one synthetic example costs at most: written and labelled by the starting prompt and
    each teacher (classification), or a share of a batch of JSON examples (other tasks)."""
    return WRITE_ATTEMPTS + 1 + TEACHERS if labelled else 1 / config.batch_size


def data_size(config: OptimizationConfig, labelled: bool, labels: int) -> int:
    """`config.synthetic_data_size`, lowered when writing and labelling that many would take more
    than `DATA_SHARE` of the call budget (never below two examples a label)."""
    wanted = config.synthetic_data_size
    if config.max_calls is None:
        return wanted
    fits = int(DATA_SHARE * config.max_calls / calls_per_example(config, labelled))
    size = max(2 * max(1, labels), min(wanted, fits))
    if size < wanted:
        log.warning("synthetic data size lowered from %d to %d to fit the budget of %d calls", wanted, size,
                    config.max_calls)
    return size


def validation_rows(config: OptimizationConfig, valid_size: int, train_size: int, calls_left: int | None) -> int:
    """Training examples to hold out as extra validation (`data.held_out_count`): up to
    `data.CHOOSING_ROWS` rows in all, fewer when the `calls_left` pay for a search (the starting
    prompt and one race, `search_rows`) on fewer."""
    wanted = search_rows(CHOOSING_ROWS, calls_left, config.candidates)
    return held_out_count(valid_size, train_size, config.num_demos, wanted)


def check_calls(rows: int) -> int:
    """Model calls of the check on `rows` held-out rows: the starting prompt's answers and the
    winner's (`data.check_count`)."""
    return 2 * rows


@dataclass(frozen=True)
class Plan:
    """Planned model calls, step by step (at most), and the budget that bounds them all."""

    steps: tuple[tuple[str, int], ...]
    config: OptimizationConfig
    valid_rows: int = 0  # the rows prompts are told apart on

    @property
    def total(self) -> int:
        return sum(calls for _, calls in self.steps)

    def __str__(self) -> str:
        width = max(len(what) for what, _ in self.steps) + 2
        lines = ["planned model calls (at most; answers from the answer cache are free):"]
        lines += [f"  {what:<{width}}{calls:>6}" for what, calls in self.steps]
        lines.append(f"  {'total':<{width}}{self.total:>6}")
        limits = self.config.limits
        budget = [f"{limits.calls} calls" if limits.calls else None,
                  f"${limits.cost:g}" if limits.cost else None, f"{limits.seconds:g} s" if limits.seconds else None]
        lines.append(f"budget: {', '.join(b for b in budget if b)} (the search stops, keeping the best prompt "
                     f"so far, when a limit is reached)")
        few = too_few_rows(self.valid_rows) if self.valid_rows else None
        if few:
            from promptomatix.stats import UNINFORMATIVE_WIDTH, rows_for_width

            needed = rows_for_width(UNINFORMATIVE_WIDTH)
            prompts = 1 + self.config.iterations * self.config.candidates
            lines.append(f"note: {few}: scoring the starting prompt and {prompts - 1} candidates on {needed} rows "
                         f"takes up to {needed * prompts} calls")
        return "\n".join(lines)


def upfront_note(config: OptimizationConfig) -> str | None:
    """What a run whose search is bounded only by the budget will cost, said before it starts
    (DSPy's optimizers run to their own schedule, which the call budget cuts short)."""
    if config.backend != "dspy":
        return None
    limits = config.limits
    bound = [f"{limits.calls} model calls" if limits.calls else None,
             f"${limits.cost:g}" if limits.cost else None, f"{limits.seconds:g} s" if limits.seconds else None]
    time_note = "" if limits.seconds else (
        "; no time limit is set, and on a local model (the embedded one) each call of DSPy's chat format can "
        "take seconds, so this may run for many minutes: bound it with --max-seconds / max_seconds")
    return (f"DSPy's {config.optimizer} runs until its schedule ends or the budget is spent: at most "
            f"{', '.join(b for b in bound if b)} ({config.search} preset){time_note}. "
            f"`--dry-run` prints the plan.")


def plan(config: OptimizationConfig, *, valid_size: int | None = None, train_size: int = 0, labels: int = 2,
         classification: bool = True, check: int = 0) -> Plan:
    """The calls `config` plans for. `valid_size` and `train_size` are the validation and training
    sets of the user's data (None: synthetic data), `check` its rows held out for the check at the
    end (`data.check_count`); `labels`/`classification` say what intake is expected to find."""
    # a JSON answer and its retries; and the type's choice, for a model that scores options
    steps: list[tuple[str, int]] = [("intake (reading the task)", 5)]
    synthetic = valid_size is None
    if synthetic:
        size = data_size(config, classification, labels)
        valid_size = max(1, size - min(max(1, round(size * config.train_ratio)), size - 1))
        if classification:
            steps += [(f"writing {size} synthetic inputs", WRITE_ATTEMPTS * size),
                      (f"labelling them (starting prompt and {TEACHERS} teachers)", (1 + TEACHERS) * size),
                      ("scoring the starting prompt (answers from labelling)", 0)]
        else:
            steps += [(f"writing {size} synthetic examples", math.ceil(size / config.batch_size) * 3),
                      (f"scoring the starting prompt on {valid_size} examples", valid_size)]
    else:
        left = None if config.max_calls is None else config.max_calls - sum(c for _, c in steps) - check_calls(check)
        held = validation_rows(config, valid_size, train_size, left)
        valid_size, train_size = valid_size + held, train_size - held
        if config.backend == "meta_prompt" and config.max_calls is not None:  # as the backend narrows it
            valid_size = search_rows(valid_size, config.max_calls - sum(c for _, c in steps), config.candidates)
        steps.append((f"scoring the starting prompt on {valid_size} examples", valid_size))
    if config.backend == "meta_prompt":
        per_prompt = len(CONTENT_FREE) if classification and calibrates_from_content_free(not synthetic) else 0
        race = race_cost(config.candidates, valid_size, per_prompt) + max(1, config.candidates // 4)
        what, calls = f"search: {config.iterations} iterations x {config.candidates} candidates", race * config.iterations
        left = None if config.max_calls is None else max(0, config.max_calls - sum(c for _, c in steps)
                                                         - check_calls(check))
        if left is not None and left < calls:
            what, calls = f"{what} (as far as the {left} calls left go)", left
        steps.append((what, calls))
        after = None if left is None else left - calls  # what the search leaves
        if classification and not synthetic and train_size and after != 0:  # `search.calibrated_on_more_rows`
            steps.append(("calibrating the winner on the training examples not among its demos",
                          train_size if after is None else min(after, train_size)))
    else:
        steps.append((f"search: DSPy's {config.optimizer} (stopped by the budget)",
                      max(0, (config.max_calls or 0) - check_calls(check))))
    if check:
        steps.append((f"the check: starting prompt and winner on {check} held-out rows", check_calls(check)))
    return Plan(tuple(steps), config, valid_size)


def too_few_rows(rows: int) -> str | None:
    """A sentence, when `rows` validation rows are too few to tell two prompts apart (the 95%
    interval of the difference of two accuracies on them is wider than `stats.UNINFORMATIVE_WIDTH`),
    saying how many would do; None when they suffice."""
    from promptomatix import stats

    width = stats.interval_width_of_difference(max(rows, 1))
    if width <= stats.UNINFORMATIVE_WIDTH:
        return None
    return (f"{rows} validation rows are too few to tell prompts apart: two prompts' scores on them may differ "
            f"by up to {width / 2:.2f} by chance; about {stats.rows_for_width(stats.UNINFORMATIVE_WIDTH)} rows "
            f"would tell a difference of {stats.UNINFORMATIVE_WIDTH / 2:.2f}")

