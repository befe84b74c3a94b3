"""Meta-prompt backend: rounds of propose, race, keep; then the finishing steps.

The search's parts, each with its own contract:
1. **Rows**: the start is scored on the validation rows the call budget lets a race use
   (`search.search_rows`, `narrow`).
2. **A round** (`config.iterations` of them, or until the budget is spent) races `affordable`
   new prompts (`config.candidates`, fewer when the calls left would not pay for them):
   - *proposers* (`proposers.py`) make them from the incumbent, each its declared share of
     the round (`proposers.share`): fewer demos, new demo sets (drawn from the typical pool,
     `search.typical_half` / `search.typical_answers`, or a third of the incumbent's swapped),
     the demos reordered, and instructions rewritten by the optimizer model
     (`config.meta_prompt`, from the incumbent's failures and reviewers' feedback);
   - the *race* (`search.Race`): successive halving on the validation rows, the calibrated
     variant of each label prompt read from the same answers;
   - the *keep rule*: a finalist replaces the incumbent only when it ranks higher
     (`search.rank`) and earns at least as much credit (`Evaluation.credited`), so the
     reported score never goes down.
3. **Finishing steps** (`FINISHING_STEPS`), in order, each a step of the run when it changes
   the best.

Why each part is as it is, with the measurements behind it: docs/how-it-works.md.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import random
from collections.abc import Sequence

from promptomatix.backends import proposers
from promptomatix.tracking import record
from promptomatix.backends.base import (Backend, BackendPlan, Candidate, OptimizationTask, Outcome, PlanInput,
                                        PlanStep, keep_best)
from promptomatix.backends.search import (MIN_RACE, Race, calibrated_on_more_rows, demo_counts, demos_that_fit,
                                          demos_unless_clearly_beaten, fits, race_cost, race_fits, rank,
                                          search_rows, typical_answers, typical_half)
from promptomatix.config import OptimizationConfig
from promptomatix.errors import BudgetExhausted, ConfigError, ParseError
from promptomatix.models.lm import context_tokens, LM
from promptomatix.models.threads import map_in_threads
from promptomatix.run.callbacks import Callback
from promptomatix.scoring.evaluator import CONTENT_FREE, Evaluation, prompt_id
from promptomatix.scoring.rows import RowsPolicy
from promptomatix.task.prompt import Prompt
from promptomatix.task.spec import Example
from promptomatix.templates import check_source, fill

log = logging.getLogger(__name__)

REWRITE_SCHEMA = {
    "type": "object",
    "properties": {"instruction": {"type": "string", "minLength": 20, "maxLength": 800}},
    "required": ["instruction"],
}


REWRITE_FIELDS = {"description", "instruction", "score", "failures", "feedback"}
# Answers a rewrite may ask for before it gives up on an unreadable one (`LM.complete_json`).
REWRITE_ATTEMPTS = 3


def _keep_demos(task: OptimizationTask, best: Candidate, with_demos: Candidate | None, initial: float) -> Candidate:
    return demos_unless_clearly_beaten(task, best, with_demos, initial)


def _calibrate_on_more_rows(task: OptimizationTask, best: Candidate, with_demos: Candidate | None,
                            initial: float) -> Candidate:
    return calibrated_on_more_rows(task, best)


# After the last round, in order: each gets the best candidate (and the best with demos, and the
# starting score) and returns it, or the candidate that replaces it.
FINISHING_STEPS = (
    _keep_demos,  # on synthetic rows, a demo set over a demo-less prompt not clearly better
    _calibrate_on_more_rows,  # the winner's label calibration read from the unused training rows too
)


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
        # the --search preset's if not given (config __post_init__)
        assert config.iterations is not None and config.candidates is not None
        budget = config.max_calls
        if not given.synthetic and budget is not None:  # as `narrow` does
            given = dataclasses.replace(given, valid_rows=search_rows(given.valid_rows, budget - given.calls_before,
                                                                      config.candidates))
        steps: list[PlanStep] = [given.start_step]
        per_prompt = len(CONTENT_FREE) if given.classification and RowsPolicy(given.synthetic).calibrates_from_content_free \
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
            assert task.config.candidates is not None  # the --search preset's if not given (config __post_init__)
            task = self.narrow(task, search_rows(len(task.valid), task.meter.remaining_calls(),
                                                 task.config.candidates, task.calibration_calls))
            best = task.score(task.start, desc="scoring the starting prompt")
            initial = best.score
            callbacks.on_candidate(0, best)
            callbacks.on_iteration_end(0, best, [])
            tried, first, with_demos = {best.prompt.template}, 1, None
            callbacks.on_checkpoint(0, self._state(task, best, initial, tried, rng, with_demos))
        done = first - 1
        assert task.config.iterations is not None  # the --search preset's if not given (config __post_init__)
        for step in range(first, task.config.iterations + 1):
            played = self._round(task, callbacks, step, best, with_demos, rng, tried)
            if played is None:  # the budget ended it: the best so far stands
                break
            best, with_demos, scored = played
            callbacks.on_iteration_end(step, best, scored)
            callbacks.on_checkpoint(step, self._state(task, best, initial, tried, rng, with_demos))
            done = step
            if callbacks.should_stop:
                break
        # Each a step of its own in the candidate table and the step metrics, when it changes the best.
        for finish in FINISHING_STEPS:
            final = finish(task, best, with_demos, initial)
            if final is not best:
                done += 1
                callbacks.on_candidate(done, final)
                callbacks.on_iteration_end(done, final, [final])
                best = final
        return Outcome(best, initial)

    def _round(self, task: OptimizationTask, callbacks: Callback, step: int, best: Candidate,
               with_demos: Candidate | None, rng: random.Random, tried: set[str]
               ) -> tuple[Candidate, Candidate | None, list[Candidate]] | None:
        """One round, one trace (its rewrite calls and its race's scoring inside it): propose,
        race, keep. The best and the best with demos after it, and the candidates it scored
        (each reported); None when the budget ran out before the race was run."""
        assert task.config.iterations is not None  # the --search preset's if not given (config __post_init__)
        with _iteration_trace(task, step, best) as trace:
            try:
                size = self.affordable(task, task.config.iterations - step + 1)
                if size < 1:
                    task.meter.stop("max_calls", "the calls left in the budget do not pay for another iteration")
                stages = self._race(task, trace, best, step, size, rng, tried)
            except BudgetExhausted as exc:
                log.info("iteration %d stopped: %s; keeping the best prompt so far", step, exc)
                _traced_outcome(trace, [], best, best, stopped=str(exc))
                return None
            scored = _new_candidates(stages, best.prompt)
            for candidate in scored:
                callbacks.on_candidate(step, candidate)
            finalists = [c for c in stages[-1] if len(c.evaluation.per_example) == len(task.valid)] if stages else []
            # Ranked with the soft score, and never a lower reported score (see `search.py`), but
            # for answers that copy their input or echo the prompt, which earn nothing (`Evaluation.credited`).
            incumbent = best
            best = keep_best(best, [c for c in finalists if c.evaluation.credited >= best.evaluation.credited],
                             key=rank)
            # The best prompt with demos, for `demos_unless_clearly_beaten` at the end.
            with_demos = max(filter(None, (with_demos, *(c for c in finalists if c.prompt.demos))), key=rank,
                             default=None)
            _traced_outcome(trace, scored, incumbent, best)
        return best, with_demos, scored

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
        assert wanted is not None  # the --search preset's if not given (config __post_init__)
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

    def _race(self, task: OptimizationTask, trace, best: Candidate, step: int, size: int, rng: random.Random,
              tried: set[str]) -> list[list[Candidate]]:
        """The round's new prompts raced against the incumbent (`Race`), its stages; none
        without a new prompt. The rewrites are asked on the race's pool, their prompts racing as
        they come, when the calls left pay for the race whatever the rewrites cost (`ample`);
        else first, and the race cut to what the calls left after them pay for."""
        planned = self.mix(task, best, step, size)
        proposals = self.propose(task, best, step, size, rng, tried, planned)
        late = [self.rewritten(task, best, step, i) for i in range(planned[0].rewrites)]
        if late and not self.ample(task, len(proposals) + len(late), len(late)):
            made = map_in_threads(lambda make: make(), late, min(task.config.num_threads, len(late)))
            proposals = self.within_budget(task, [*proposals, *(m for m in made
                                                               if m is not None and self.admit(task, m[0], tried))])
            late = []
        race = Race(task)
        stages = race.run([best.prompt, *(p for p, _ in proposals)], desc=f"iteration {step}",
                          changes=["", *(c for _, c in proposals)], incumbent=True, late=late,
                          admit=lambda prompt: self.admit(task, prompt, tried)) if proposals or late else []
        proposals = [*proposals, *race.admitted]
        _traced_candidates(trace, proposals)
        return stages if proposals else []

    @staticmethod
    def ample(task: OptimizationTask, prompts: int, rewrites: int) -> bool:
        """Whether the calls left pay for racing `prompts` new prompts after `rewrites` rewrites
        that each took every call they may (`REWRITE_ATTEMPTS` answers, each retried
        `max_retries` times): a race the budget stops half-way decides nothing."""
        remaining, per_prompt = task.meter.remaining_calls(), task.calibration_calls
        worst = rewrites * REWRITE_ATTEMPTS * (task.config.max_retries + 1)
        return remaining is None or race_cost(prompts, len(task.valid), per_prompt) + per_prompt + worst <= remaining

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

    @staticmethod
    def mix(task: OptimizationTask, best: Candidate, step: int, size: int) -> tuple[proposers.Mix, list[int]]:
        """How a round's `size` new prompts are shared among the proposers (`proposers.share`),
        and the demo set sizes they draw (`search.demo_counts`)."""
        incumbent = best.prompt
        most = min(task.config.num_demos,
                   demos_that_fit(incumbent.with_(calibration=()), task.train, task.valid,
                                  context_tokens(task.task_model.model)))
        counts = demo_counts(most, incumbent.labels, len(task.train))
        return proposers.share(size, step, with_demos=bool(task.config.num_demos and task.train),
                               incumbent_demos=len(incumbent.demos), fewest=counts[0]), counts

    def propose(self, task: OptimizationTask, best: Candidate, step: int, size: int, rng: random.Random,
                tried: set[str], planned: tuple[proposers.Mix, list[int]] | None = None) -> list[tuple[Prompt, str]]:
        """Of up to `size` new prompts (`mix`), those that change the demos, with what changed in
        each, none tried before, each fitting the task model's context; the instruction rewrites
        of the rest are asked as the round's race runs (`rewritten`). `planned`: the round's
        `mix`, when the caller has it."""
        incumbent = best.prompt.with_(calibration=())
        label_field = task.spec.output_fields[0] if incumbent.labels else None
        mix, counts = planned or self.mix(task, best, step, size)
        # The typical pool keeps twice what the largest set takes of a label, so that sets still
        # differ (`search.typical_half`).
        typical = typical_half(task.train, label_field, 2 * max(counts) // len(incumbent.labels)) if label_field \
            else typical_answers(task.train, incumbent.input_fields, incumbent.output_fields, 2 * max(counts))
        proposals = [*proposers.fewer_demos(incumbent, mix.fewer, counts[0], label_field, rng),
                     *proposers.new_demo_sets(incumbent, mix.new, step, (typical, task.train), counts[-1],
                                              label_field, rng, tried),
                     *proposers.reordered(incumbent, mix.reordered, rng)]
        return [(p, change) for p, change in proposals if self.admit(task, p, tried)]

    @staticmethod
    def admit(task: OptimizationTask, prompt: Prompt, tried: set[str]) -> bool:
        """Whether `prompt` is new (then `tried` from now on) and fits the task model's context."""
        if prompt.template in tried or not fits(prompt, task.valid, context_tokens(task.task_model.model)):
            return False
        tried.add(prompt.template)
        return True

    def rewritten(self, task: OptimizationTask, best: Candidate, step: int, index: int):
        """A call making the incumbent with its `index`-th rewritten instruction (and the change),
        or None for an unreadable answer (counted in the meter); a span of the iteration's trace
        from whichever thread runs it."""
        def make() -> tuple[Prompt, str] | None:
            instruction = self.try_rewrite(task, best, step, index)
            if instruction is None:
                return None
            return best.prompt.with_(calibration=(), instruction=instruction), "instruction rewritten"

        return task.tracer.bound(make) if task.tracer is not None else make

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
    The rewrite step of this backend, and of `backends.mlflow_optimizer.PromptomatixOptimizer`."""
    shown = "\n".join(
        json.dumps({"input": {f: e[f] for f in prompt.input_fields},
                    "expected": {f: e[f] for f in prompt.output_fields},
                    "got": p}, ensure_ascii=False)
        for e, p in failed
    ) or "(none)"
    text = fill(meta_prompt, description=description, instruction=prompt.instruction,
                score=f"{evaluation.score:.3f}", failures=shown, feedback=feedback or "(none)")
    answer = lm.complete_json(text, REWRITE_SCHEMA, max_tokens=400, salt=salt, attempts=REWRITE_ATTEMPTS)
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
