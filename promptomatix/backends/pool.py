"""Answers asked batch by batch on one pool of threads, each batch handed back as soon as all of
its answers are in: how the race keeps every worker busy (asynchronous successive halving).

In: batches (a key, a prompt, its rows, the stage they belong to) added at any time, a later
stage's first; and calls that make prompts (`later`: the rewrites of an instruction), before
any answer. Out: `next_done()`, the key of a batch whose answers are all in the evaluator's
cache (`Evaluator.evaluate` on it then makes no call), or of a call that returned (`made`). At most `workers` calls are in flight,
from any batches: while the last answers of one stage are awaited, the next stage's batches
already run. A failed answer (a budget reached, a model error) is raised from `next_done`, and no
new call starts; calls under way are not waited for (as in `models.threads.map_in_threads`).

Traced as `Evaluator.evaluate_many` is: a span per stage, inside it a `prompt N` span per batch
that asks anything, ended with the batch's score (`scored`); a stage's span ends with every
prompt's score and the best once its last expected batch is scored (`expect`).
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

from promptomatix.run.progress import progress_bar
from promptomatix.scoring.evaluator import Evaluation, Evaluator, prompt_id
from promptomatix.task.prompt import Prompt
from promptomatix.task.spec import Example
from promptomatix.tracking.tracer import SpanRecord

Key = tuple[int, int]  # a batch: the race's (prompt index, stage)


@dataclass
class _Stage:
    """A stage's span, its prompts' spans, and how many batches it waits for."""

    name: str
    rows: int
    expected: int
    order: int  # the stage's place in its race: a later stage's answers are asked first
    span: SpanRecord | None = None
    prompts: list[SpanRecord] = field(default_factory=list)  # the prompts' spans, in the order they came
    scores: list = field(default_factory=list)
    done: int = 0


class AnswerPool:
    """See the module's doc. Use as a context manager: leaving it stops the pool."""

    def __init__(self, evaluator: Evaluator, workers: int, desc: str):
        self.evaluator = evaluator
        self.tracer = evaluator.lm.tracer
        self._executor = ThreadPoolExecutor(max_workers=max(1, workers))
        self._workers = max(1, workers)
        self._queue: list = []  # (priority, sequence, key, prompt, row or call): a later stage first
        self._sequence = itertools.count()
        self._running: dict[Future, Key] = {}
        self._left: dict[Key, int] = {}  # answers each batch still waits for
        self._ready: list[Key] = []  # batches complete (and calls returned), not yet handed back
        self._made: dict[Key, object] = {}  # what each call (`later`) returned
        self._spans: dict[Key, SpanRecord] = {}
        self._stage_of: dict[Key, _Stage] = {}
        self._stages: dict[str, _Stage] = {}
        self._bar = progress_bar(total=0, desc=desc, unit="ex", enabled=evaluator.show_progress)

    def __enter__(self) -> AnswerPool:
        return self

    def __exit__(self, kind, error, trace) -> None:
        self._bar.close()
        self._executor.shutdown(wait=error is None, cancel_futures=True)
        for stage in self._stages.values():  # a race stopped half-way: its spans end as failed
            if stage.done < stage.expected:
                self._end_stage(stage, "ERROR")

    def expect(self, stage: str, rows: int, batches: int, order: int) -> None:
        """Stage `stage` (on `rows` rows, `order`-th of its race) will get `batches` batches; said
        again when that number is known better (a late prompt that did not come)."""
        known = self._stages.setdefault(stage, _Stage(stage, rows, batches, order))
        known.expected = batches
        if known.done == batches and known.span is not None:
            self._end_stage(known, "OK")

    def later(self, key: Key, call: Callable[[], object]) -> None:
        """Run `call` on the pool before any answer; `next_done` hands back `key` when it has
        returned, and `made(key)` what it returned."""
        self._left[key] = 1
        self._bar.total += 1
        heapq.heappush(self._queue, (-len(self._stages) - 1, next(self._sequence), key, None, call))
        self._fill()

    def made(self, key: Key) -> object:
        return self._made.pop(key, None)

    def add(self, key: Key, prompt: Prompt, rows: Sequence[Example], stage: str) -> None:
        """Ask `prompt` the `rows` it has not answered, as part of `stage`."""
        known = self._stages[stage]
        unique = list({prompt.render(e): e for e in rows if not self.evaluator.is_answered(prompt, e)}.values())
        self._stage_of[key] = known
        self._left[key] = len(unique)
        if not unique:
            self._ready.append(key)
            return
        if self.tracer is not None:
            self._spans[key] = self._prompt_span(known, prompt, len(unique))
        for row in unique:
            heapq.heappush(self._queue, (-known.order, next(self._sequence), key, prompt, row))
        self._bar.total += len(unique)
        self._bar.refresh()
        self._fill()

    @property
    def busy(self) -> bool:
        return bool(self._ready or self._running or self._queue)

    def next_done(self) -> Key:
        """The key of a batch whose answers are all in (waits for one)."""
        while not self._ready:
            finished, _ = wait(list(self._running), return_when=FIRST_COMPLETED)
            for future in finished:
                key = self._running.pop(future)
                made = future.result()  # a failed answer stops the race here
                if made is not None:
                    self._made[key] = made
                self._bar.update(1)
                self._left[key] -= 1
                if self._left[key] == 0:
                    self._ready.append(key)
            self._fill()
        return self._ready.pop(0)

    def scored(self, key: Key, evaluation: Evaluation) -> None:
        """Batch `key`'s score: its span ends with it; its stage's when it was the last."""
        stage = self._stage_of[key]
        span = self._spans.pop(key, None)
        if span is not None:
            outputs = {"score": evaluation.score, "rows": len(evaluation.per_example), "asked": span.attributes["answers"]}
            span.set_attributes({"score": evaluation.score, "rows": len(evaluation.per_example)})
            stage.scores.append({"prompt": span.name, "prompt_id": span.attributes["prompt_id"], **outputs})
            self.tracer.end(span, outputs=outputs)
        stage.done += 1
        if stage.done == stage.expected:
            self._end_stage(stage, "OK")

    def _fill(self) -> None:
        while self._queue and len(self._running) < self._workers:
            _, _, key, prompt, row = heapq.heappop(self._queue)
            if prompt is None:  # a call (`later`)
                self._running[self._executor.submit(row)] = key
                continue
            span = self._spans.get(key)
            self._running[self._executor.submit(self._ask, span, prompt, row)] = key

    def _ask(self, span: SpanRecord | None, prompt: Prompt, row: Example) -> None:
        if span is None:
            self.evaluator.predict(prompt, row)
            return
        with self.tracer.within(span):
            self.evaluator.predict(prompt, row)

    def _prompt_span(self, stage: _Stage, prompt: Prompt, answers: int) -> SpanRecord:
        if stage.span is None:
            stage.span = self.tracer.group(stage.name, attributes={"step": stage.name},
                                           inputs={"step": stage.name, "rows": stage.rows, "prompts": []})
        name = f"prompt {len(stage.prompts) + 1}"
        stage.span.inputs["prompts"].append({"prompt": name, "prompt_id": prompt_id(prompt),
                                             "instruction": prompt.instruction, "demos": len(prompt.demos)})
        stage.span.set_attributes({"prompts": len(stage.span.inputs["prompts"])})
        with self.tracer.within(stage.span):
            span = self.tracer.group(name, attributes={"step": stage.name, "prompt_id": prompt_id(prompt),
                                                       "demos": len(prompt.demos), "answers": answers},
                                     inputs={"step": stage.name, "prompt_id": prompt_id(prompt),
                                             "instruction": prompt.instruction, "template": prompt.template,
                                             "rows": answers})
        stage.prompts.append(span)
        return span

    def _end_stage(self, stage: _Stage, status: str) -> None:
        if stage.span is None or self.tracer is None:
            return
        for span in stage.prompts:  # spans of batches never scored (a stopped race)
            if span in self._spans.values():
                self.tracer.end(span, outputs={"asked": span.attributes["answers"]}, status=status)
        outputs: dict = {"scores": stage.scores}
        if stage.scores:
            best = max(stage.scores, key=lambda s: s["score"])
            outputs["best"] = {"prompt": best["prompt"], "prompt_id": best["prompt_id"], "score": best["score"]}
            stage.span.set_attributes({"best_score": best["score"]})
        self.tracer.end(stage.span, outputs=outputs, status=status)
        stage.span = None
