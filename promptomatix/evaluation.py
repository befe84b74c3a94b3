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
        texts = [prompt.render(e) for e in examples]
        unique = list(dict.fromkeys(texts))  # repeated inputs are asked once, even in parallel
        with progress_bar(total=len(unique), desc=desc, unit="ex", enabled=self.show_progress) as bar, \
                ThreadPoolExecutor(max_workers=self.num_threads) as pool:
            def run(text):
                answer = self._answer(prompt, text)
                bar.update(1)
                return answer

            answers = dict(zip(unique, pool.map(run, unique)))
        predictions = [answers[t] for t in texts]
        per_field = [
            self.metric.score([p[f] for p in predictions], [e[f] for e in examples]) for f in prompt.output_fields
        ]
        per_example = tuple(sum(s.per_example[i] for s in per_field) / len(per_field) for i in range(len(examples)))
        return Evaluation(sum(s.score for s in per_field) / len(per_field), per_example, tuple(predictions))
