"""Meta-prompt backend: each iteration proposes variants of the best prompt so far, races them
on the validation set, and keeps the winner only when it beats the incumbent.

Variants, in the order a small model gains most from them (see `backends/search.py`):
- new few-shot demo sets from the training examples (for classification, the half of each
  label's most typical of it, label-balanced; for free text, the half whose answers are of the
  usual length), of the full size; from the second iteration on,
  half of them change a third of the incumbent's demos;
- the incumbent with fewer demos (the small end of `demo_counts`' ladder);
- the incumbent's demos in another order;
- instructions rewritten by the optimizer model (`config.meta_prompt`), from the incumbent's
  failures and reviewers' feedback, keeping the incumbent's demos;
- for a label prompt whose model scores labels, the calibrated variant of each (free on the
  user's rows; on synthetic ones three calls a prompt, see `Evaluator`).

Iterations race `config.candidates` new prompts each (fewer when the call budget left would not
pay for them), for `config.iterations` iterations or until the budget is spent; the best prompt
found so far is returned, never one worse than the start. On synthetic rows, a prompt without
demos a row or two ahead of the best demo set gives way to it (`search.demos_unless_clearly_beaten`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import random

from promptomatix import record
from collections.abc import Sequence

from promptomatix.backends.base import (Backend, BackendPlan, Candidate, OptimizationTask, Outcome, PlanInput,
                                        PlanStep, keep_best)
from promptomatix.backends.search import (MIN_RACE, Race, calibrated_on_more_rows, demo_counts, demos_that_fit,
                                          demos_unless_clearly_beaten, draw_demos, fits, race_cost, race_fits, rank,
                                          search_rows, typical_answers, typical_half)
from promptomatix.callbacks import Callback
from promptomatix.config import OptimizationConfig
from promptomatix.errors import BudgetExhausted, ConfigError, ParseError
from promptomatix.evaluation import CONTENT_FREE, Evaluation, calibrates_from_content_free, prompt_id
from promptomatix.metaprompts import check_source, fill
from promptomatix.models.lm import LM, context_tokens
from promptomatix.prompts import Prompt
from promptomatix.signals import map_in_threads
from promptomatix.spec import Example

log = logging.getLogger(__name__)

REWRITE_SCHEMA = {
    "type": "object",
    "properties": {"instruction": {"type": "string", "minLength": 20, "maxLength": 800}},
    "required": ["instruction"],
}


REWRITE_FIELDS = {"description", "instruction", "score", "failures", "feedback"}


class MetaPromptBackend(Backend):
    """`config.meta_prompt` names the rewrite template (a registered name or a `.txt` path); it
    may use `$description`, `$instruction`, `$score`, `$failures` and `$feedback`."""

    options = ("meta_prompt",)

    def __init__(self, max_failures: int = 3):
        self.max_failures = max_failures

    def check(self, config: OptimizationConfig) -> None:
        check_source(config.meta_prompt, REWRITE_FIELDS)
        ignored = config.changed("optimizer", "dspy_module")
        if ignored:
            raise ConfigError(f"{' and '.join(ignored)} apply to --backend dspy; the meta_prompt backend would "
                              f"ignore them (add --backend dspy, or drop them)")

    def plan(self, given: PlanInput) -> BackendPlan:
        """The start scored on the rows the budget lets it race on (`search_rows`, the user's
        rows), `iterations` races of `candidates` prompts with their rewrites, then, for a
        label task on the user's rows, the winner calibrated on the training rows left
        (`search.calibrated_on_more_rows`), each as far as the calls left go."""
        config = given.config
        budget = config.max_calls
        if not given.synthetic and budget is not None:  # as `narrow` does
            given = dataclasses.replace(given, valid_rows=search_rows(given.valid_rows, budget - given.calls_before,
                                                                      config.candidates))
        steps: list[PlanStep] = [given.start_step]
        per_prompt = len(CONTENT_FREE) if given.classification and calibrates_from_content_free(not given.synthetic) \
            else 0
        race = race_cost(config.candidates, given.valid_rows, per_prompt) + max(1, config.candidates // 4)
        what, calls = f"search: {config.iterations} iterations x {config.candidates} candidates", race * config.iterations
        spent = given.calls_before + (given.start_step[1] or 0)
        left = None if budget is None else max(0, budget - spent - given.check_calls)
        if left is not None and left < calls:
            what, calls = f"{what} (as far as the {left} calls left go)", left
        steps.append((what, calls))
        after = None if left is None else left - calls  # what the search leaves
        if given.classification and not given.synthetic and given.train_rows and after != 0:
            steps.append(("calibrating the winner on the training examples not among its demos",
                          given.train_rows if after is None else min(after, given.train_rows)))
        return BackendPlan(tuple(steps), given.valid_rows)

    def optimize(self, task: OptimizationTask, callbacks: Callback) -> Outcome:
        rng = random.Random(task.config.seed)
        if task.checkpoint:  # a resumed run: go on after the last completed iteration
            state = task.checkpoint["state"]
            best, tried = record.candidate_from_dict(state["best"]), set(state["tried"])
            with_demos = record.candidate_from_dict(state["with_demos"]) if state.get("with_demos") else None
            initial = state["initial_score"] if "initial_score" in state else _step_zero_score(task.checkpoint)
            record.set_rng_state(rng, state["rng"])
            first = task.checkpoint["step"] + 1
            task = self.narrow(task, state.get("rows", len(task.valid)))
        else:
            task = self.narrow(task, search_rows(len(task.valid), task.meter.remaining_calls(),
                                                 task.config.candidates, task.calibration_calls))
            best = task.score(task.start, desc="scoring the starting prompt")
            initial = best.score
            callbacks.on_candidate(0, best)
            callbacks.on_iteration_end(0, best, [])
            tried, first, with_demos = {best.prompt.template}, 1, None
            callbacks.on_checkpoint(0, self._state(task, best, initial, tried, rng, with_demos))
        done = first - 1
        for step in range(first, task.config.iterations + 1):
            # The iteration is one trace: its rewrite calls and its race's scoring inside it.
            with _iteration_trace(task, step, best) as trace:
                try:
                    size = self.affordable(task, task.config.iterations - step + 1)
                    if size < 1:
                        task.meter.stop("max_calls", "the calls left in the budget do not pay for another iteration")
                    proposals = self.within_budget(task, self.propose(task, best, step, size, rng, tried))
                    _traced_candidates(trace, proposals)
                    stages = Race(task).run([best.prompt, *(p for p, _ in proposals)], desc=f"iteration {step}",
                                            changes=["", *(c for _, c in proposals)],
                                            incumbent=True) if proposals else []
                except BudgetExhausted as exc:
                    log.info("iteration %d stopped: %s; keeping the best prompt so far", step, exc)
                    _traced_outcome(trace, [], best, best, stopped=str(exc))
                    break
                scored = _new_candidates(stages, best.prompt)
                for candidate in scored:
                    callbacks.on_candidate(step, candidate)
                finalists = [c for c in stages[-1] if len(c.evaluation.per_example) == len(task.valid)] \
                    if stages else []
                # Ranked with the soft score, and never a lower reported score (see `search.py`), but
                # for answers that copy their input or echo the prompt, which earn nothing (`Evaluation.credited`).
                incumbent = best
                best = keep_best(best, [c for c in finalists if c.evaluation.credited >= best.evaluation.credited],
                                 key=rank)
                # The best prompt with demos, for `demos_unless_clearly_beaten` at the end.
                with_demos = max(filter(None, (with_demos, *(c for c in finalists if c.prompt.demos))), key=rank,
                                 default=None)
                _traced_outcome(trace, scored, incumbent, best)
            callbacks.on_iteration_end(step, best, scored)
            callbacks.on_checkpoint(step, self._state(task, best, initial, tried, rng, with_demos))
            done = step
            if callbacks.should_stop:
                break
        # Each a step of its own in the candidate table and the step metrics, when it changes the best.
        for finish in (lambda c: demos_unless_clearly_beaten(task, c, with_demos, initial),
                       lambda c: calibrated_on_more_rows(task, c)):
            final = finish(best)
            if final is not best:
                done += 1
                callbacks.on_candidate(done, final)
                callbacks.on_iteration_end(done, final, [final])
                best = final
        return Outcome(best, initial)

    @staticmethod
    def _state(task: OptimizationTask, best: Candidate, initial: float, tried: set[str], rng: random.Random,
               with_demos: Candidate | None) -> dict:
        return {"best": record.candidate_to_dict(best), "initial_score": initial, "tried": sorted(tried),
                "rng": record.rng_state(rng), "rows": len(task.valid),
                "with_demos": record.candidate_to_dict(with_demos) if with_demos else None}

    @staticmethod
    def narrow(task: OptimizationTask, rows: int) -> OptimizationTask:
        """`task` searching on its first `rows` validation examples (see `search_rows`)."""
        if rows >= len(task.valid):
            return task
        log.warning("the call budget pays for a search on %d of the %d validation examples: the first %d are used",
                    rows, len(task.valid), rows)
        return dataclasses.replace(task, valid=task.valid[:rows])

    @staticmethod
    def affordable(task: OptimizationTask, iterations_left: int) -> int:
        """New prompts this iteration can race: `config.candidates`, fewer when the calls left
        in the budget, shared by the iterations left, would not pay for that many. A share too
        thin for a race of `MIN_RACE` goes whole to this iteration: one race worth running beats
        several that one lucky row decides."""
        wanted = task.config.candidates
        remaining = task.meter.remaining_calls()
        if remaining is None:
            return wanted
        rows, per_prompt = len(task.valid), task.calibration_calls
        share = remaining // max(1, iterations_left)
        if not race_fits(min(wanted, MIN_RACE), rows, share, per_prompt):
            share = remaining
        wanted = min(wanted, share)  # each candidate costs a call at least: fewer steps down, however large
        while wanted > 0 and not race_fits(wanted, rows, share, per_prompt):
            wanted -= 1
        return wanted

    @staticmethod
    def within_budget(task: OptimizationTask, proposals: list) -> list:
        """`proposals` cut (from the end) to what the calls left pay for in a race: a rewrite
        may have cost more calls than planned (unreadable answers are asked again), and a race
        the budget stops half-way decides nothing."""
        remaining, per_prompt = task.meter.remaining_calls(), task.calibration_calls
        while remaining is not None and proposals and \
                race_cost(len(proposals), len(task.valid), per_prompt) + per_prompt > remaining:
            proposals = proposals[:-1]
        return proposals

    def propose(self, task: OptimizationTask, best: Candidate, step: int, size: int, rng: random.Random,
                tried: set[str]) -> list[tuple[Prompt, str]]:
        """Up to `size` new prompts with what changed in each (see the module's doc), none tried
        before, each fitting the task model's context."""
        config, incumbent = task.config, best.prompt.with_(calibration=())
        if not config.num_demos or not task.train:
            rewrites, orders = size, 0
        else:
            # One rewrite an iteration (a quarter of a large one): a strong optimizer model gains
            # most from rewrites, a small one from demos. A single candidate alternates.
            rewrites = max(1, size // 4) if size >= 2 else step % 2
            orders = 1 if len(incumbent.demos) >= 2 and size >= 4 else 0
        proposals: list[tuple[Prompt, str]] = []
        label_field = task.spec.output_fields[0] if incumbent.labels else None
        limit = context_tokens(task.task_model.model)
        most = min(config.num_demos, demos_that_fit(incumbent, task.train, task.valid, limit))
        counts = demo_counts(most, incumbent.labels, len(task.train))
        # New sets are drawn whole; the demo count is searched by trying the incumbent with fewer.
        # A small model's accuracy grows with the demos it sees, and a few dozen validation rows
        # cannot tell a weaker set from a lucky one: SST-2, 200 test reviews, calibrated, one
        # run's sets: 0.914 from 8 demos on average, 0.891 from 4, every 8-demo set above 0.90.
        # A model that needs fewer wins with the fewer (the length penalty breaks a tie).
        fewer = 1 if rewrites < size and len(incumbent.demos) > counts[0] and size >= 4 else 0
        if fewer:
            proposals.append((incumbent.with_(demos=draw_demos(incumbent.demos, counts[0], label_field,
                                                                 incumbent.labels, rng)), "fewer demos"))
        # The typical half keeps twice what the largest set takes of a label, so that sets still
        # differ: from 15 synthetic examples, 8-demo sets from a 4-per-label half were all one set
        # reordered (SST-2 from raw input fell to 0.700 on the test set with such a half).
        typical = typical_half(task.train, label_field, 2 * max(counts) // len(incumbent.labels)) if label_field \
            else typical_answers(task.train, incumbent.input_fields, incumbent.output_fields, 2 * max(counts))
        seen = set(tried)
        for index in range(size - rewrites - orders - fewer):
            # From the typical half first; from all training examples when that half has no new
            # set left to give (a small training set).
            for pool in (typical, task.train):
                if step > 1 and index % 2 and incumbent.demos:
                    demos = self.mutate(incumbent.demos, pool, label_field, rng)
                    change = "demos changed"
                else:
                    demos = draw_demos(pool, counts[-1], label_field, incumbent.labels, rng)
                    change = f"{len(demos)} new demos"
                prompt = incumbent.with_(demos=demos)
                if prompt.template not in seen:
                    break
            seen.add(prompt.template)
            proposals.append((prompt, change))
        for _ in range(orders):
            demos = list(incumbent.demos)
            rng.shuffle(demos)
            proposals.append((incumbent.with_(demos=tuple(demos)), "demos reordered"))
        for instruction in self.rewrites(task, best, step, rewrites):
            proposals.append((incumbent.with_(instruction=instruction), "instruction rewritten"))
        fresh = []
        for prompt, change in proposals:
            if prompt.template in tried or not fits(prompt, task.valid, limit):
                continue
            tried.add(prompt.template)
            fresh.append((prompt, change))
        return fresh

    @staticmethod
    def mutate(demos: tuple, train, label_field: str | None, rng: random.Random) -> tuple:
        """`demos` with a third of them (at least one) swapped for other training examples of
        the same label."""
        demos = list(demos)
        for index in rng.sample(range(len(demos)), max(1, len(demos) // 3)):
            label = demos[index].get(label_field) if label_field else None
            pool = [e for e in train if e not in demos and (label is None or e.get(label_field) == label)]
            if pool:
                demos[index] = rng.choice(pool)
        return tuple(demos)

    def rewrites(self, task: OptimizationTask, best: Candidate, step: int, count: int) -> list[str]:
        """`count` rewritten instructions, asked together (they depend only on the incumbent);
        an unreadable answer is skipped (counted in the meter)."""
        if count < 1:
            return []
        ask = lambda index: self.try_rewrite(task, best, step, index)  # noqa: E731
        if task.tracer is not None:  # each rewrite call a span of the iteration's trace, from any thread
            ask = task.tracer.bound(ask)
        answers = map_in_threads(ask, range(count), min(task.config.num_threads, count))
        return [a for a in answers if a is not None]

    def try_rewrite(self, task: OptimizationTask, best: Candidate, step: int, index: int) -> str | None:
        try:
            return self.rewrite(task, best, salt=f"{step}:{index}")
        except ParseError as exc:  # counted in the meter; the other candidates go on
            log.warning("iteration %d, rewrite %d: no usable rewrite (%s)", step, index + 1, exc)
            return None

    def rewrite(self, task: OptimizationTask, best: Candidate, salt: str = "") -> str:
        rows = task.valid[: len(best.evaluation.per_example)]
        return rewrite_instruction(task.optimizer_lm, task.config.meta_prompt, best.prompt, best.evaluation,
                                   failures(rows, best.evaluation, self.max_failures),
                                   description=task.spec.description, feedback=task.feedback, salt=salt)


def failures(rows: Sequence[Example], evaluation: Evaluation, limit: int) -> list[tuple[Example, Example]]:
    """The first `limit` of `rows` the evaluation did not score fully right, with what was answered."""
    wrong = [(example, predicted) for example, predicted, score
             in zip(rows, evaluation.predictions, evaluation.per_example) if score < 1.0]
    return wrong[:limit]


def rewrite_instruction(lm: LM, meta_prompt: str, prompt: Prompt, evaluation: Evaluation,
                        failed: Sequence[tuple[Example, Example]], *, description: str, feedback: str = "",
                        salt: str = "") -> str:
    """The instruction of `prompt` rewritten by `lm` with the meta-prompt `meta_prompt`, shown
    the prompt's score, the examples it `failed` (example, answer) and reviewers' `feedback`.
    The rewrite step of this backend, and of `interop.PromptomatixOptimizer`."""
    shown = "\n".join(
        json.dumps({"input": {f: e[f] for f in prompt.input_fields},
                    "expected": {f: e[f] for f in prompt.output_fields},
                    "got": p}, ensure_ascii=False)
        for e, p in failed
    ) or "(none)"
    text = fill(meta_prompt, description=description, instruction=prompt.instruction,
                score=f"{evaluation.score:.3f}", failures=shown, feedback=feedback or "(none)")
    answer = lm.complete_json(text, REWRITE_SCHEMA, max_tokens=400, salt=salt)
    return " ".join(str(answer["instruction"]).split()) or prompt.instruction


def _iteration_trace(task: OptimizationTask, step: int, best: Candidate):
    """The trace of iteration `step` (nothing without traces): given the task, the incumbent
    and the validation rows; its candidates and outcome are added as they are known."""
    if task.tracer is None:
        return contextlib.nullcontext()
    return task.tracer.phase(f"iteration {step}", {"step": f"iteration {step}", "iteration": step},
                             inputs={"task": task.spec.description, "rows": len(task.valid),
                                     "incumbent": {"prompt_id": prompt_id(best.prompt), "score": best.score,
                                                   "instruction": best.prompt.instruction,
                                                   "demos": len(best.prompt.demos)}})


def _traced_candidates(trace, proposals: list[tuple[Prompt, str]]) -> None:
    """The iteration's new prompts, and what changed in each, among its trace's inputs."""
    if trace is None:
        return
    trace.inputs["candidates"] = [{"prompt_id": prompt_id(p), "change": change, "instruction": p.instruction,
                                   "demos": len(p.demos)} for p, change in proposals]


def _traced_outcome(trace, scored: list[Candidate], incumbent: Candidate, best: Candidate,
                    stopped: str = "") -> None:
    """The iteration's outcome as its trace's outputs: each candidate's score, and the winner."""
    if trace is None:
        return
    def row(c: Candidate) -> dict:
        return {"prompt_id": prompt_id(c.prompt), "change": c.change, "score": c.score,
                "objective": c.objective, "rows": len(c.evaluation.per_example)}

    outputs = {"candidates": [row(c) for c in scored], "winner": row(best), "improved": best is not incumbent}
    if stopped:
        outputs["stopped"] = stopped
    trace.set_outputs(outputs)
    trace.set_attributes({"best_score": best.score, "improved": best is not incumbent})


def _step_zero_score(checkpoint: dict) -> float:
    """The starting prompt's score in a checkpoint written before states held it (its step-0 row)."""
    return next(row["score"] for row in checkpoint["rows"] if row["step"] == 0)


def _new_candidates(stages: list[list[Candidate]], incumbent: Prompt) -> list[Candidate]:
    """What an iteration tried: each new prompt's candidate from the last stage it reached, and
    the incumbent's calibrated variant when calibration is what changed it."""
    last: dict[str, Candidate] = {}
    for stage in stages:
        for candidate in stage:
            last[candidate.prompt.template] = candidate
    same = last.pop(incumbent.template, None)
    found = list(last.values())
    if same is not None and bool(same.prompt.calibration) != bool(incumbent.calibration) \
            and len(same.evaluation.per_example) == len(stages[-1][0].evaluation.per_example):
        found.insert(0, same)
    return found
