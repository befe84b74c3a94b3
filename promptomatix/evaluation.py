"""Running a prompt over examples with the task model and scoring the outputs."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from promptomatix.models.lm import LM
from promptomatix.progress import progress_bar
from promptomatix.prompts import Prompt
from promptomatix.scoring import Metric
from promptomatix.spec import Example


@dataclass(frozen=True)
class Evaluation:
    """Quality on a set of examples, without the length penalty."""

    score: float
    per_example: tuple[float, ...]
    predictions: tuple[Example, ...]


class Evaluator:
    """Scores prompts on examples: predictions from the task model, `metric` per output field
    (averaged). Answers are cached per (prompt, inputs), so a prompt is never paid for twice."""

    def __init__(self, lm: LM, metric: Metric, *, num_threads: int = 1, show_progress: bool = True):
        self.lm = lm
        self.metric = metric
        self.num_threads = num_threads
        self.show_progress = show_progress
        self._cache: dict[str, Example] = {}  # rendered prompt -> parsed answer

    def predict(self, prompt: Prompt, inputs: Example) -> Example:
        return self._answer(prompt, prompt.render(inputs))

    def _answer(self, prompt: Prompt, text: str) -> Example:
        if text not in self._cache:
            self._cache[text] = prompt.parse(self.lm.complete(text, stop=prompt.stop))
        return self._cache[text]

    def evaluate(self, prompt: Prompt, examples: Sequence[Example], desc: str = "scoring") -> Evaluation:
        return self.evaluate_many([prompt], examples, desc=desc)[0]

    def evaluate_many(self, prompts: Sequence[Prompt], examples: Sequence[Example],
                      desc: str = "scoring") -> list[Evaluation]:
        """Each prompt's evaluation on `examples`, the answers for all of them asked in one pool
        of `num_threads` (so several short prompts keep every thread busy)."""
        texts = [[prompt.render(e) for e in examples] for prompt in prompts]
        # repeated inputs are asked once, even in parallel
        unique = list(dict.fromkeys((i, t) for i, rendered in enumerate(texts) for t in rendered))
        with progress_bar(total=len(unique), desc=desc, unit="ex", enabled=self.show_progress) as bar, \
                ThreadPoolExecutor(max_workers=self.num_threads) as pool:
            def run(item):
                index, text = item
                answer = self._answer(prompts[index], text)
                bar.update(1)
                return answer

            answers = dict(zip(unique, pool.map(run, unique)))
        return [self._score(prompt, examples, [answers[(i, t)] for t in texts[i]]) for i, prompt in enumerate(prompts)]

    def _score(self, prompt: Prompt, examples: Sequence[Example], predictions: list[Example]) -> Evaluation:
        per_field = [
            self.metric.score([p[f] for p in predictions], [e[f] for e in examples]) for f in prompt.output_fields
        ]
        per_example = tuple(sum(s.per_example[i] for s in per_field) / len(per_field) for i in range(len(examples)))
        return Evaluation(sum(s.score for s in per_field) / len(per_field), per_example, tuple(predictions))
