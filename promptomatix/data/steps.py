"""Preprocessing and validation steps, run on every loaded or synthetic example.

A step is a callable `(example, spec) -> example`: it returns the example (changed or not), or
rejects it by raising `Rejected(reason)` (returning None rejects it too, with no reason).
Built in: `strip` (trims and collapses whitespace in every field), `known_label` (rejects a
classification example whose label is not one of the task's labels) and `no_duplicates` (rejects
an example whose inputs repeat an earlier one's, compared case- and space-insensitively).
Choose steps with `data_steps=[...]` / `--data-step NAME` (run in that order); add one with
`register_data_step(name, step)` or an entry point in `promptomatix.data_steps`.
Rejections are counted per step and logged with the run (`data_rejected*` metrics and
`data_rejections.json`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from promptomatix.config.plugin_options import call_with_options, wanted
from promptomatix.errors import DataError, PluginError, PromptomatixError
from promptomatix.plugins import Registry
from promptomatix.task.spec import Example, TaskSpec

Step = Callable[[Example, TaskSpec], Example | None]


class Rejected(Exception):  # noqa: N818 (a verdict, not an error)
    """Raised by a step to drop an example; the message is the reason, logged with the run."""


def strip(example: Example, spec: TaskSpec) -> Example:
    return {k: " ".join(v.split()) for k, v in example.items()}


def known_label(example: Example, spec: TaskSpec) -> Example:
    if spec.task_type == "classification" and spec.labels:
        label = example.get(spec.output_fields[0], "")
        if label not in spec.labels:
            raise Rejected(f"label {label!r} is not one of {', '.join(spec.labels)}")
    return example


class NoDuplicates:
    """Remembers the inputs it has seen; a `DataSteps` makes a fresh one per run."""

    def __init__(self):
        self.seen: set[tuple[str, ...]] = set()

    def __call__(self, example: Example, spec: TaskSpec) -> Example:
        key = tuple(" ".join(example.get(f, "").lower().split()) for f in spec.input_fields)
        if key in self.seen:
            raise Rejected("repeats the inputs of an earlier example")
        self.seen.add(key)
        return example


def _builtins(registry: Registry) -> None:
    registry.register("strip", strip)
    registry.register("known_label", known_label)
    registry.register("no_duplicates", NoDuplicates)


# Steps by name. A class is registered as a factory: each run gets its own instance (for steps
# that keep state across examples, like `no_duplicates`); any other callable is used as is.
DATA_STEPS: Registry[Step | type] = Registry("data_steps", _builtins)


def register_data_step(name: str, step: Step | type, *, replace: bool = False):
    if not callable(step):
        raise PluginError(f"data step {name!r} must be callable, got {type(step).__name__}")
    return DATA_STEPS.register(name, step, replace=replace)


@dataclass
class Rejection:
    stage: str   # train, valid or synthetic
    step: str
    reason: str
    example: Example


@dataclass
class DataSteps:
    """The chosen steps for one run, in order, with every rejection they made."""

    names: Sequence[str]
    spec: TaskSpec
    rejections: list[Rejection] = field(default_factory=list)
    options: dict = field(default_factory=dict)  # the run's plugin options: each step gets those it names

    def __post_init__(self):
        self._steps = []
        for name in self.names:
            item = DATA_STEPS.get(name)
            if isinstance(item, type):  # a class: a fresh instance, its constructor given its options
                step = call_with_options(item, self.options)
                self._steps.append((name, step, wanted(step, self.options)))
            else:
                self._steps.append((name, item, wanted(item, self.options)))

    def __bool__(self) -> bool:
        return bool(self._steps)

    def __call__(self, example: Example, stage: str) -> Example | None:
        """The example after every step, or None (and a recorded rejection) if one rejected it."""
        for name, step, options in self._steps:
            try:
                result = step(dict(example), self.spec, **options)
            except Rejected as verdict:
                self.rejections.append(Rejection(stage, name, str(verdict) or "rejected", example))
                return None
            except PromptomatixError:
                raise
            except Exception as exc:  # a plugin's code: name it, keep the cause
                raise PluginError(f"data step {name!r} failed on a {stage} example: "
                                  f"{type(exc).__name__}: {exc}") from exc
            if result is None:
                self.rejections.append(Rejection(stage, name, "rejected", example))
                return None
            if not isinstance(result, dict) or set(result) != set(example) or \
                    not all(isinstance(v, str) for v in result.values()):
                raise PluginError(f"data step {name!r} must return the example with the same fields "
                                  f"as strings, got {result!r:.200}")
            example = result
        return example

    def apply(self, examples: Sequence[Example], stage: str) -> list[Example]:
        """The examples that pass every step; `DataError` if none does."""
        kept = [e for e in (self(example, stage) for example in examples) if e is not None]
        if examples and not kept:
            counts = Counter(r.step for r in self.rejections if r.stage == stage)
            raise DataError(f"every {stage} example was rejected by the data steps "
                            f"({', '.join(f'{n}: {c}' for n, c in counts.items())})")
        return kept

    def counts(self) -> dict[str, int]:
        """Rejections by step, with the total under the empty name."""
        by_step = Counter(r.step for r in self.rejections)
        return {"": len(self.rejections), **by_step}
