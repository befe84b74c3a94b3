"""Meta-prompt backend: the optimizer model rewrites the instruction, candidates are scored on
validation, the best is kept. Candidates also try fresh few-shot demos from the training set,
which is where a small base model gains most."""

from __future__ import annotations

import json
import logging
import random

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
            scored = []
            for index in range(task.config.candidates):
                try:
                    prompt = self.propose(task, best, index, rng)
                except ParseError as exc:  # counted in the meter; the other candidates go on
                    log.warning("iteration %d, candidate %d: no usable rewrite (%s)", step, index + 1, exc)
                    continue
                if prompt.template in tried:
                    continue
                tried.add(prompt.template)
                candidate = task.score(prompt, desc=f"iteration {step}, candidate {index + 1}")
                callbacks.on_candidate(step, candidate)
                scored.append(candidate)
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

    def propose(self, task: OptimizationTask, best: Candidate, index: int, rng: random.Random) -> Prompt:
        """Candidate `index`: a rewritten instruction; even indexes also draw new demos."""
        instruction = self.rewrite(task, best)
        demos = best.prompt.demos
        if index % 2 == 0 and task.config.num_demos and task.train:
            demos = tuple(rng.sample(list(task.train), min(task.config.num_demos, len(task.train))))
        return best.prompt.with_(instruction=instruction, demos=demos)

    def rewrite(self, task: OptimizationTask, best: Candidate) -> str:
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
        answer = task.optimizer_lm.complete_json(text, REWRITE_SCHEMA, max_tokens=400)
        return " ".join(str(answer["instruction"]).split()) or prompt.instruction
