"""Our meta-prompt backend as an MLflow prompt optimizer, for `mlflow.genai.optimize_prompts`.

    import mlflow
    from promptomatix.backends.mlflow_optimizer import PromptomatixOptimizer

    result = mlflow.genai.optimize_prompts(
        predict_fn=predict, train_data=rows, prompt_uris=["prompts:/qa/1"], scorers=[exact],
        optimizer=PromptomatixOptimizer(model="openai/gpt-4o-mini", iterations=2, candidates=2))
    result.optimized_prompts[0]          # a new version of prompts:/qa, registered by MLflow

In: MLflow's `eval_fn` (candidate templates + rows -> scored records), the training rows and
the target templates (`{{var}}` placeholders). Each target prompt is improved in turn, the others
held at their best: the optimizer model rewrites it with the meta-prompt backend's rewrite step
(`metaprompt.rewrite_instruction`, the same template, failures shown from the scored records), each
candidate is scored with `eval_fn`, and a candidate replaces the incumbent only when its mean
score (minus the optional length penalty) is higher. A placeholder the rewrite dropped is put
back as a `Label: {{var}}` line, so `PromptVersion.format` still receives every input.
Out: `PromptOptimizerOutput` with the best templates and the initial and final mean scores.
Errors: `ConfigError` for options this optimizer cannot honour (no training rows, no scorers,
an unknown meta-prompt), `LLMError` when the optimizer model fails.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import mlflow
from mlflow.genai.optimize.optimizers import BasePromptOptimizer
from mlflow.genai.optimize.types import PromptOptimizerOutput

from promptomatix.backends.base import keep_best
from promptomatix.backends.metaprompt import failures, REWRITE_FIELDS, rewrite_instruction
from promptomatix.config import DEFAULT_MODEL, ModelSettings
from promptomatix.config.flat import config_from_options
from promptomatix.errors import ConfigError
from promptomatix.models.lm import check_model, LM
from promptomatix.models.usage import Usage, UsageMeter
from promptomatix.scoring import Objective
from promptomatix.scoring.evaluator import Evaluation
from promptomatix.task.prompt import field_label, Prompt
from promptomatix.templates import check_source

_VARIABLE = re.compile(r"\{\{\s*(\w+)\s*\}\}")
DEFAULT_DESCRIPTION = "Improve this prompt so that the application's answers match the expected outputs."


class PromptomatixOptimizer(BasePromptOptimizer):
    """Meta-prompt rewriting (promptomatix's `meta_prompt` backend) behind MLflow's optimizer API.

    `model` (any LiteLLM name) writes the rewrites with `meta_prompt` (a registered meta-prompt
    name or a `.txt` file); `iterations` rounds of `candidates` rewrites each; `lambda_penalty`
    as in `promptomatix optimize` (0: length does not count). After `optimize`, `usage` holds the
    optimizer model's tokens and cost, and `rewrites` the number of rewrite calls made."""

    def __init__(self, model: str = DEFAULT_MODEL, *, iterations: int = 2, candidates: int = 2,
                 meta_prompt: str = "rewrite", description: str = DEFAULT_DESCRIPTION,
                 temperature: float = 0.7, max_tokens: int = 1024, api_base: str | None = None,
                 lambda_penalty: float = 0.0, max_failures: int = 3, seed: int = 0):
        # Validated by the same config the CLI builds: one set of rules and messages.
        self.config = config_from_options(
            raw_input=description, meta_prompt=meta_prompt, iterations=iterations, candidates=candidates,
            lambda_penalty=lambda_penalty, seed=seed, num_demos=0, register=False, optimizer_model=model,
            optimizer_temperature=temperature, optimizer_max_tokens=max_tokens, optimizer_api_base=api_base)
        check_source(meta_prompt, REWRITE_FIELDS)
        self.settings: ModelSettings = self.config.optimizer_model
        self.max_failures = max_failures
        self.usage = Usage()
        self.rewrites = 0

    def optimize(self, eval_fn: Callable[[dict[str, str], list[dict[str, Any]]], list] | None,
                 train_data: list[dict[str, Any]], target_prompts: dict[str, str],
                 enable_tracking: bool = True) -> PromptOptimizerOutput:
        if eval_fn is None or not train_data:
            raise ConfigError("PromptomatixOptimizer needs train_data: it scores each rewrite on it")
        check_model(self.settings)
        meter = UsageMeter()
        lm = LM(self.settings, meter, max_retries=self.config.max_retries, seed=self.config.seed)
        objective = Objective(self.config.lambda_penalty)
        current = dict(target_prompts)
        records = eval_fn(current, train_data)
        initial = _mean_score(records)
        score, step = initial, 0
        ranked = lambda entry: objective(entry[2], entry[0])  # noqa: E731 (template, records, score)
        assert self.config.iterations is not None and self.config.candidates is not None  # given in __init__
        for name in target_prompts:
            best = (current[name], records, score)
            tried = {current[name]}
            for _ in range(self.config.iterations):
                step += 1
                for _ in range(self.config.candidates):
                    template = self._rewrite(lm, *best)
                    if template in tried:
                        continue
                    tried.add(template)
                    scored = eval_fn({**current, name: template}, train_data)
                    best = keep_best(best, [(template, scored, _mean_score(scored))], key=ranked)
                if enable_tracking and mlflow.active_run() is not None:
                    mlflow.log_metric("promptomatix.best_score", best[2], step=step)
            current[name], records, score = best
        self.usage = meter.snapshot()
        if enable_tracking and mlflow.active_run() is not None:
            mlflow.log_metrics({"promptomatix.rewrites": self.rewrites, **self.usage.as_metrics("promptomatix.optimizer_")})
        return PromptOptimizerOutput(optimized_prompts=current, initial_eval_score=initial, final_eval_score=score)

    def _rewrite(self, lm: LM, template: str, records: list, score: float) -> str:
        """The template rewritten by the meta-prompt backend's rewrite step, shown the records
        it scored worst on (the records' inputs and expectations as the example's fields)."""
        inputs = tuple(dict.fromkeys(k for r in records for k in (r.inputs or {})))
        outputs = tuple(dict.fromkeys(k for r in records for k in _expectations(r) if k not in inputs)) or ("output",)
        examples = [{**{k: _text(v) for k, v in (r.inputs or {}).items()},
                     **{k: _text(v) for k, v in _expectations(r).items() if k not in inputs}} for r in records]
        evaluation = Evaluation(score, tuple(float(r.score or 0.0) for r in records),
                                tuple({outputs[0]: _text(r.outputs)} for r in records))
        prompt = Prompt(template, inputs, outputs)
        self.rewrites += 1
        new = rewrite_instruction(lm, self.config.meta_prompt, prompt, evaluation,
                                  failures(examples, evaluation, self.max_failures),
                                  description=self.config.raw_input)
        return _keep_variables(new, template)


def _mean_score(records: list) -> float:
    scores = [r.score for r in records]
    if not scores or any(s is None for s in scores):
        raise ConfigError("PromptomatixOptimizer needs scorers: optimize_prompts gave records without a score")
    return sum(float(s) for s in scores) / len(scores)


def _expectations(record) -> dict:
    value = record.expectations
    return value if isinstance(value, dict) else {"expected_response": value}


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)


def _keep_variables(new: str, original: str) -> str:
    """`new`, with a `Label: {{var}}` line for each placeholder of `original` it lost."""
    kept = set(_VARIABLE.findall(new))
    missing = [v for v in dict.fromkeys(_VARIABLE.findall(original)) if v not in kept]
    return "\n\n".join([new.strip(), *(f"{field_label(v)}: {{{{{v}}}}}" for v in missing)]) if missing else new
