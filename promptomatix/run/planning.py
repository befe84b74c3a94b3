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

from promptomatix.backends import get_backend
from promptomatix.backends.base import Backend, PlanInput, PlanStep
from promptomatix.backends.search import search_rows
from promptomatix.config import OptimizationConfig
from promptomatix.config.plugin_options import call_with_options
from promptomatix.data import CHOOSING_ROWS, held_out_count
from promptomatix.data.selflabel import TEACHERS, WRITE_ATTEMPTS

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
    assert wanted is not None  # the --search preset's if not given (config __post_init__)
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
    assert config.candidates is not None  # the --search preset's if not given (config __post_init__)
    wanted = search_rows(CHOOSING_ROWS, calls_left, config.candidates)
    return held_out_count(valid_size, train_size, config.num_demos, wanted)


def check_calls(rows: int) -> int:
    """Model calls of the check on `rows` held-out rows: the starting prompt's answers and the
    winner's (`data.check_count`)."""
    return 2 * rows


@dataclass(frozen=True)
class Plan:
    """Planned model calls, step by step (at most), and the budget that bounds them all."""

    steps: tuple[PlanStep, ...]
    config: OptimizationConfig
    valid_rows: int = 0  # the rows prompts are told apart on

    @property
    def total(self) -> int:
        """The calls of the steps that say theirs (a step of unknown calls adds nothing)."""
        return _sum(list(self.steps))

    @property
    def known(self) -> bool:
        """Whether every step says its calls."""
        return all(calls is not None for _, calls in self.steps)

    def __str__(self) -> str:
        width = max(len(what) for what, _ in self.steps) + 2
        lines = ["planned model calls (at most; answers from the answer cache are free):"]
        lines += [f"  {what:<{width}}{'?' if calls is None else calls:>6}" for what, calls in self.steps]
        lines.append(f"  {'total' if self.known else 'total of the known':<{width}}{self.total:>6}")
        limits = self.config.limits
        budget = [f"{limits.calls} calls" if limits.calls else None,
                  f"${limits.cost:g}" if limits.cost else None, f"{limits.seconds:g} s" if limits.seconds else None]
        lines.append(f"budget: {', '.join(b for b in budget if b)} (the search stops, keeping the best prompt "
                     f"so far, when a limit is reached)")
        few = too_few_rows(self.valid_rows) if self.valid_rows else None
        if few:
            from promptomatix.scoring.stats import rows_for_width, UNINFORMATIVE_WIDTH

            needed = rows_for_width(UNINFORMATIVE_WIDTH)
            # the --search preset's if not given (config __post_init__)
            assert self.config.iterations is not None and self.config.candidates is not None
            prompts = 1 + self.config.iterations * self.config.candidates
            lines.append(f"note: {few}: scoring the starting prompt and {prompts - 1} candidates on {needed} rows "
                         f"takes up to {needed * prompts} calls")
        return "\n".join(lines)


def plan(config: OptimizationConfig, *, valid_size: int | None = None, train_size: int = 0, labels: int = 2,
         classification: bool = True, check: int = 0, backend: Backend | None = None) -> Plan:
    """The calls `config` plans for. `valid_size` and `train_size` are the validation and training
    sets of the user's data (None: synthetic data), `check` its rows held out for the check at the
    end (`data.check_count`); `labels`/`classification` say what intake is expected to find. The
    search's calls are the backend's to say (`Backend.plan`; `backend` defaults to the config's)."""
    # a JSON answer and its retries; and the type's choice, for a model that scores options
    steps: list[PlanStep] = [("intake (reading the task)", 5)]
    synthetic = valid_size is None
    if synthetic:
        size = data_size(config, classification, labels)
        valid_size = max(1, size - min(max(1, round(size * config.train_ratio)), size - 1))
        train_size = size - valid_size
        if classification:
            steps += [(f"writing {size} synthetic inputs", WRITE_ATTEMPTS * size),
                      (f"labelling them (starting prompt and {TEACHERS} teachers)", (1 + TEACHERS) * size)]
        else:
            steps.append((f"writing {size} synthetic examples", math.ceil(size / config.batch_size) * 3))
    else:
        assert valid_size is not None  # not synthetic
        left = None if config.max_calls is None else config.max_calls - _sum(steps) - check_calls(check)
        held = validation_rows(config, valid_size, train_size, left)
        valid_size, train_size = valid_size + held, train_size - held
    assert valid_size is not None
    if backend is None:
        backend = call_with_options(get_backend(config.backend), config.plugin_options)
    search = backend.plan(PlanInput(config, valid_size, train_size, classification, synthetic, _sum(steps),
                                    check_calls(check)))
    steps += search.steps
    if check:
        steps.append((f"the check: starting prompt and winner on {check} held-out rows", check_calls(check)))
    return Plan(tuple(steps), config, search.valid_rows)


def _sum(steps: list[PlanStep]) -> int:
    return sum(calls or 0 for _, calls in steps)


def too_few_rows(rows: int) -> str | None:
    """A sentence, when `rows` validation rows are too few to tell two prompts apart (the 95%
    interval of the difference of two accuracies on them is wider than `stats.UNINFORMATIVE_WIDTH`),
    saying how many would do; None when they suffice."""
    from promptomatix.scoring import stats

    width = stats.interval_width_of_difference(max(rows, 1))
    if width <= stats.UNINFORMATIVE_WIDTH:
        return None
    return (f"{rows} validation rows are too few to tell prompts apart: two prompts' scores on them may differ "
            f"by up to {width / 2:.2f} by chance; about {stats.rows_for_width(stats.UNINFORMATIVE_WIDTH)} rows "
            f"would tell a difference of {stats.UNINFORMATIVE_WIDTH / 2:.2f}")

