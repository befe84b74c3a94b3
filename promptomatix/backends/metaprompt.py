"""Meta-prompt backend: the optimizer model rewrites the instruction, candidates are scored on
validation, the best is kept. Candidates also try fresh few-shot demos from the training set,
which is where a small base model gains most."""

from __future__ import annotations

import json
import logging
import random
from concurrent.futures import ThreadPoolExecutor

from promptomatix import checkpoints
from promptomatix.backends.base import Backend, Candidate, OptimizationTask
from promptomatix.callbacks import Callback
from promptomatix.config import OptimizationConfig
from promptomatix.errors import ConfigError, ParseError
from promptomatix.metaprompts import fill, load_template
from promptomatix.prompts import Prompt

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

    def __init__(self, max_failures: int = 3):
        self.max_failures = max_failures

    def check(self, config: OptimizationConfig) -> None:
        load_template(config.meta_prompt, allowed=REWRITE_FIELDS)
        ignored = config.changed("optimizer", "dspy_module")
        if ignored:
            raise ConfigError(f"{' and '.join(ignored)} apply to --backend dspy; the meta_prompt backend would "
                              f"ignore them (add --backend dspy, or drop them)")

    def optimize(self, task: OptimizationTask, callbacks: Callback) -> Candidate:
        rng = random.Random(task.config.seed)
        if task.checkpoint:  # a resumed run: go on after the last completed iteration
            state = task.checkpoint["state"]
            best, tried = checkpoints.candidate_from_dict(state["best"]), set(state["tried"])
            checkpoints.set_rng_state(rng, state["rng"])
            first = task.checkpoint["step"] + 1
        else:
            best = task.score(task.start, desc="scoring the starting prompt")
            callbacks.on_candidate(0, best)
            callbacks.on_iteration_end(0, best, [])
            tried, first = {best.prompt.template}, 1
            callbacks.on_checkpoint(0, self._state(best, tried, rng))
        for step in range(first, task.config.iterations + 1):
            # The rewrites of an iteration depend only on the incumbent: they are asked together,
            # and all new candidates are scored in one pool (num_threads calls in flight).
            demos = [self.draw_demos(task, index, rng) for index in range(task.config.candidates)]
            with ThreadPoolExecutor(max_workers=max(1, min(task.config.num_threads, task.config.candidates))) as pool:
                rewrites = list(pool.map(lambda index: self.try_rewrite(task, best, step, index),
                                         range(task.config.candidates)))
            prompts = []
            for instruction, drawn in zip(rewrites, demos):
                if instruction is None:
                    continue
                prompt = best.prompt.with_(instruction=instruction, demos=best.prompt.demos if drawn is None else drawn)
                if prompt.template not in tried:
                    tried.add(prompt.template)
                    prompts.append(prompt)
            evaluations = task.evaluator.evaluate_many(prompts, task.valid, desc=f"iteration {step}") if prompts else []
            scored = [Candidate(p, e, task.objective(e.score, p.template)) for p, e in zip(prompts, evaluations)]
            for candidate in scored:
                callbacks.on_candidate(step, candidate)
            # Ties keep the incumbent: a change must earn its place.
            best = max([best, *scored], key=lambda c: c.objective)
            callbacks.on_iteration_end(step, best, scored)
            callbacks.on_checkpoint(step, self._state(best, tried, rng))
            if getattr(callbacks, "should_stop", False):
                break
        return best

    @staticmethod
    def _state(best: Candidate, tried: set[str], rng: random.Random) -> dict:
        return {"best": checkpoints.candidate_to_dict(best), "tried": sorted(tried), "rng": checkpoints.rng_state(rng)}

    @staticmethod
    def draw_demos(task: OptimizationTask, index: int, rng: random.Random) -> tuple | None:
        """Fresh few-shot demos for even-numbered candidates; None keeps the incumbent's."""
        if index % 2 or not task.config.num_demos or not task.train:
            return None
        return tuple(rng.sample(list(task.train), min(task.config.num_demos, len(task.train))))

    def try_rewrite(self, task: OptimizationTask, best: Candidate, step: int, index: int) -> str | None:
        try:
            return self.rewrite(task, best, salt=f"{step}:{index}")
        except ParseError as exc:  # counted in the meter; the other candidates go on
            log.warning("iteration %d, candidate %d: no usable rewrite (%s)", step, index + 1, exc)
            return None

    def rewrite(self, task: OptimizationTask, best: Candidate, salt: str = "") -> str:
        prompt = best.prompt
        failures = [
            (example, predicted)
            for example, predicted, score in zip(task.valid, best.evaluation.predictions, best.evaluation.per_example)
            if score < 1.0
        ][: self.max_failures]
        shown = "\n".join(
            json.dumps({"input": {f: e[f] for f in prompt.input_fields},
                        "expected": {f: e[f] for f in prompt.output_fields},
                        "got": p}, ensure_ascii=False)
            for e, p in failures
        ) or "(none)"
        text = fill(task.config.meta_prompt, description=task.spec.description, instruction=prompt.instruction,
                    score=f"{best.score:.3f}", failures=shown, feedback=task.feedback or "(none)")
        answer = task.optimizer_lm.complete_json(text, REWRITE_SCHEMA, max_tokens=400, salt=salt)
        return " ".join(str(answer["instruction"]).split()) or prompt.instruction
