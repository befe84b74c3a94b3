"""`DSPyBackend`: the task optimized as a DSPy program by one of DSPy's optimizers.

    promptomatix.optimize(raw_input=..., backend="dspy", optimizer="GEPA", dspy_module="ChainOfThought")

1. The signature comes from the task (inputs, outputs, the starting instruction, the label set),
   and `config.dspy_module` builds the student program over it, with the spec's sample examples
   as its first demos.
2. The student is scored on the validation set: step 0.
3. `config.optimizer` compiles it (`optimizers.py` says how budgets map), the task model running
   the program and the optimizer model proposing, with the length-penalized metric.
4. The candidates the optimizer kept, and its result, are scored on the validation set and
   reported as steps 1, 2, ... to `callbacks`; the best by objective is returned (ties keep the
   earlier, so never worse than the start), its program as JSON for serving.

A hook's request to stop (`callbacks.should_stop`) is honoured between steps: after step 0 the
optimizer does not run; after a later step the remaining candidates are not scored. DSPy's
`compile` itself is one call and runs to its budget. When the optimization's call, cost or time
budget runs out inside `compile` (DSPy may report it as its own error after counting it), the
search ends there and the best candidate scored so far (the start) is kept; when it runs out
while the candidates are scored, those scored so far are kept.

Everything runs inside one `dspy.context` (the LMs, the adapter, a callback tagging predictions
with their program): no global DSPy settings change. DSPy's model errors, and answers an
optimizer needed but could not parse (an instruction proposal), are raised as `LLMError`; an
unparseable answer of the program on one example only fails that example (and is counted).
"""

from __future__ import annotations

import logging

from promptomatix.backends.base import Backend, BackendPlan, Candidate, keep_best, OptimizationTask, Outcome, PlanInput
from promptomatix.config import OptimizationConfig
from promptomatix.errors import BudgetExhausted, ConfigError, LLMError
from promptomatix.run.callbacks import Callback

log = logging.getLogger(__name__)


class DSPyBackend(Backend):
    options = ("optimizer", "dspy_module")

    def check(self, config: OptimizationConfig) -> None:
        from promptomatix.backends.dspy.optimizers import get_recipe
        from promptomatix.backends.dspy.program import check_module

        get_recipe(config.optimizer).check(config)
        check_module(config.dspy_module)
        if config.changed("meta_prompt"):
            raise ConfigError("meta_prompt applies to --backend meta_prompt; the dspy backend would ignore it "
                              "(its optimizer writes the instructions)")

    def plan(self, given: PlanInput) -> BackendPlan:
        """The start scored, then the optimizer's compile, which runs to its own schedule: as many
        calls as the budget leaves (unknown without a call budget)."""
        config = given.config
        spent = given.calls_before + (given.start_step[1] or 0) + given.check_calls
        calls = None if config.max_calls is None else max(0, config.max_calls - spent)
        return BackendPlan((given.start_step, (f"search: DSPy's {config.optimizer} (stopped by the budget)", calls)),
                           given.valid_rows)

    def upfront_note(self, config: OptimizationConfig) -> str | None:
        """DSPy's optimizers run to their own schedule, which only the budget cuts short: say what
        bounds the run before it starts."""
        limits = config.limits
        bound = [f"{limits.calls} model calls" if limits.calls else None,
                 f"${limits.cost:g}" if limits.cost else None, f"{limits.seconds:g} s" if limits.seconds else None]
        time_note = "" if limits.seconds else (
            "; no time limit is set, and on a local model (the embedded one) each call of DSPy's chat format can "
            "take seconds, so this may run for many minutes: bound it with --max-seconds / max_seconds")
        return (f"DSPy's {config.optimizer} runs until its schedule ends or the budget is spent: at most "
                f"{', '.join(b for b in bound if b)} ({config.search} preset){time_note}. "
                f"`--dry-run` prints the plan.")

    def optimize(self, task: OptimizationTask, callbacks: Callback) -> Outcome:
        import dspy
        from dspy.utils.exceptions import AdapterParseError, LMError

        from promptomatix.backends.dspy.adapter import adapter_spec, make_adapter
        from promptomatix.backends.dspy.lm import MeteredLM
        from promptomatix.backends.dspy.metric import FeedbackMetric, ProgramMetric, ProgramTagger
        from promptomatix.backends.dspy.optimizers import get_recipe, Setup
        from promptomatix.backends.dspy.program import build_program, resolve_module, SignatureSpec

        config = task.config
        meter = task.meter
        tracer = task.tracer  # the run's traces: DSPy's calls are spans as the other backend's
        task_lm = MeteredLM(task.task_model, meter, num_retries=config.max_retries, tracer=tracer)
        optimizer_lm = MeteredLM(task.optimizer_model, meter, num_retries=config.max_retries, tracer=tracer)
        spec = SignatureSpec(task.start.instruction, task.start.input_fields, task.start.output_fields,
                             task.spec.labels)
        adapter = adapter_spec(task_lm.model, single_line=spec.output_fields[:1] if task.start.single_line else (),
                               labels=task.start.labels)
        module, _ = resolve_module(config.dspy_module)
        scorer = _Scorer(task, spec, module, adapter)
        metric = ProgramMetric(task.metric, spec.output_fields, task.objective)
        setup = Setup(metric, FeedbackMetric(metric), task_lm, optimizer_lm,
                      _examples(task.train, spec), _examples(task.valid, spec), config, task.show_progress)
        student = build_program(module, spec, task.start.demos)
        recipe = get_recipe(config.optimizer)
        context = dict(lm=task_lm, adapter=make_adapter(adapter, meter),
                       callbacks=[*dspy.settings.get("callbacks", []), ProgramTagger()])
        try:
            with dspy.context(**context):
                return self._search(task, callbacks, scorer, student, lambda: recipe.compile(student, setup), recipe)
        except LMError as exc:
            raise LLMError(f"{type(exc).__name__}: {exc}") from exc
        except AdapterParseError as exc:  # an answer an optimizer itself needed (a proposal) was unreadable
            raise LLMError(f"the optimizer could not read a model answer: {exc}") from exc

    @staticmethod
    def _search(task: OptimizationTask, callbacks: Callback, scorer: _Scorer, student, compile_, recipe) -> Outcome:
        """Step 0 the start; then the optimizer's compile (the start kept when the budget ends it);
        then each round of the programs it kept, scored and reported, the best kept."""
        from promptomatix.backends.dspy import traces
        from promptomatix.backends.dspy.program import program_text

        config, meter = task.config, task.meter
        best = scorer(student, "step 0 · starting program")
        initial = best.score
        callbacks.on_candidate(0, best)
        callbacks.on_iteration_end(0, best, [])
        if callbacks.should_stop:
            return Outcome(best, initial)
        try:
            with traces.group(task.tracer, f"compile · {config.optimizer}", {"optimizer": config.optimizer},
                              {"optimizer": config.optimizer, "train rows": len(task.train),
                               "validation rows": len(task.valid), "starting score": initial}) as group:
                compiled = compile_()
                if group is not None:
                    group.set_outputs({"compiled": program_text(compiled)[:4000]})
        except Exception as exc:  # DSPy wraps what its threads raise: the meter says if it was us
            if meter.stopped_by is None:
                raise
            log.warning("DSPy's %s stopped when the budget (%s) ran out (%s: %s); keeping the start",
                        config.optimizer, meter.stopped_by, type(exc).__name__, str(exc)[:200])
            return Outcome(best, initial)
        rounds = recipe.rounds(compiled)
        if scorer.key(compiled) not in {scorer.key(p) for programs in rounds for p in programs}:
            rounds.append([compiled])
        for step, programs in enumerate(rounds, start=1):
            try:
                scored = [scorer(program, f"step {step} · program {index}")
                          for index, program in enumerate(programs, start=1)]
            except BudgetExhausted as exc:
                log.info("scoring DSPy's candidates stopped: %s; keeping the best so far", exc)
                break
            for candidate in scored:
                callbacks.on_candidate(step, candidate)
            best = keep_best(best, scored)
            callbacks.on_iteration_end(step, best, scored)
            if callbacks.should_stop:
                break
        return Outcome(best, initial)


class _Scorer:
    """Programs -> `Candidate`s scored on the validation set, each distinct program once."""

    def __init__(self, task: OptimizationTask, spec, module: str, adapter: dict):
        from promptomatix.backends.dspy.program import state_key

        self.task = task
        self.spec = spec
        self.module = module
        self.adapter = adapter
        self.key = state_key
        self.valid = _examples(task.valid, spec)
        self._scored: dict[str, Candidate] = {}

    def __call__(self, program, name: str) -> Candidate:
        """`program` scored, its calls a trace named `name` (a program scored before: no call)."""
        from promptomatix.backends.dspy import traces
        from promptomatix.backends.dspy.program import program_prompt, program_text, program_to_dict
        from promptomatix.backends.dspy.program_eval import evaluate_program
        from promptomatix.scoring.evaluator import prompt_id

        key = self.key(program)
        if key not in self._scored:
            task = self.task
            inputs = {"program": program_text(program)[:4000], "rows": len(self.valid)}
            with traces.group(task.tracer, name, {"step": name}, inputs) as group:
                evaluation = evaluate_program(program, self.valid, task.metric, self.spec.output_fields,
                                              num_threads=task.config.num_threads,
                                              show_progress=task.show_progress)
                candidate = Candidate(
                    prompt=program_prompt(program, self.spec, single_line=task.start.single_line,
                                          labels=task.start.labels),
                    evaluation=evaluation,
                    objective=task.objective(evaluation.score, program_text(program)),
                    program=program_to_dict(program, self.module, self.spec, self.adapter),
                )
                if group is not None:  # the candidate table's id of this program's prompt
                    group.set_attributes({"prompt_id": prompt_id(candidate.prompt), "score": evaluation.score})
                    group.set_outputs({"score": evaluation.score, "objective": candidate.objective,
                                       "prompt_id": prompt_id(candidate.prompt)})
            self._scored[key] = candidate
        return self._scored[key]


def _examples(examples, spec) -> list:
    import dspy

    return [dspy.Example(**{name: example[name] for name in spec.fields}).with_inputs(*spec.input_fields)
            for example in examples]
