"""DSPy's optimizers by name, each with how its budget comes from the config and where it keeps
the candidate programs it tried.

Budgets. The search preset (`quick`/`moderate`/`heavy`) fills `iterations` and `candidates` when
the user leaves them out, so those two numbers carry the preset; an optimizer takes them where it
has knobs of that meaning, and the preset's name where its budget is a named level:

| optimizer | budget knobs |
| --- | --- |
| MIPROv2 | `auto` = light / medium / heavy for quick / moderate / heavy; or, when `iterations` or `candidates` is set apart from the preset, `num_candidates` = candidates and `num_trials` = iterations x candidates (1) |
| GEPA | `max_metric_calls` = (1 + iterations x candidates) x (train + validation size) (2) |
| BootstrapFewShot | `max_rounds` = iterations (attempts per training example) |
| BootstrapFewShotWithRandomSearch | `num_candidate_programs` = candidates, `max_rounds` = iterations |
| COPRO | `depth` = iterations, `breadth` = candidates (at least 2) |
| SIMBA | `max_steps` = iterations, `num_candidates` = candidates, `bsize` = min(32, train size) |

(1) DSPy sizes MIPROv2's trials and candidate sets from `auto` and refuses them set beside it, so
with a named level `iterations` and `candidates` are not used; set either to size the search
yourself (a named level spends far more calls than a small budget allows). (2) Room for that many full passes over the data.

Every optimizer gets `num_demos` as its demo limit (`max_bootstrapped_demos` and
`max_labeled_demos`, SIMBA's `max_demos`), `num_threads`, and `seed` where it takes one. The task
model runs the program; the optimizer model proposes: MIPROv2's `prompt_model`, GEPA's
`reflection_lm`, COPRO's and SIMBA's `prompt_model`, and the bootstrapping `teacher` (its
`teacher_settings`) of the few-shot optimizers and MIPROv2.

Candidates (`Recipe.rounds`) are read from what the compiled program keeps: MIPROv2's
`trial_logs`, GEPA's `detailed_results.candidates`, the random search's and COPRO's and SIMBA's
`candidate_programs`; BootstrapFewShot has only its result.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from promptomatix.config import OptimizationConfig
from promptomatix.errors import ConfigError
from promptomatix.plugins import Registry

MIPRO_LEVELS = MappingProxyType({"quick": "light", "moderate": "medium", "heavy": "heavy"})


@dataclass(frozen=True)
class Setup:
    """What an optimizer is built from: the metrics (plain and GEPA's feedback form), the two
    LMs, the data as `dspy.Example`s, and the config."""

    metric: Callable
    feedback_metric: Callable
    task_lm: object
    optimizer_lm: object
    train: Sequence
    valid: Sequence
    config: OptimizationConfig
    show_progress: bool = False


Rounds = list[list[object]]  # candidate programs, grouped by the step that produced them


@dataclass(frozen=True)
class Recipe:
    """How to run one optimizer: `compile(student, setup) -> program`, `rounds(program)` the
    candidates it kept, and `check(config)` for settings it cannot take."""

    compile: Callable[[object, Setup], object]
    rounds: Callable[[object], Rounds]
    check: Callable[[OptimizationConfig], None] = field(default=lambda config: None)


def _mipro(student, s: Setup):
    import dspy

    from promptomatix.config import SEARCH_PRESETS

    c = s.config
    assert c.iterations is not None and c.candidates is not None  # the --search preset's if not given (config __post_init__)
    preset = SEARCH_PRESETS[c.search]
    # The preset's named level, unless the user sized the search: then that many candidates
    # and iterations x candidates trials, so a small budget stays small.
    sized = (c.iterations, c.candidates) != (preset.iterations, preset.candidates)
    budget = {"auto": None, "num_candidates": c.candidates} if sized else {"auto": MIPRO_LEVELS[c.search]}
    optimizer = dspy.MIPROv2(metric=s.metric, prompt_model=s.optimizer_lm, task_model=s.task_lm,
                             teacher_settings={"lm": s.optimizer_lm}, max_bootstrapped_demos=c.num_demos,
                             max_labeled_demos=c.num_demos, num_threads=c.num_threads, seed=c.seed,
                             verbose=False, track_stats=True, **budget)
    trials = {"num_trials": c.iterations * c.candidates, "minibatch_size": min(35, len(s.valid))} if sized else {}
    return optimizer.compile(student, trainset=list(s.train), valset=list(s.valid), **trials)


def _mipro_rounds(program) -> Rounds:
    # Trial 1 is the unchanged student; the others each tried one instruction/demo combination.
    logs = getattr(program, "trial_logs", {})
    picked = [logs[n].get("full_eval_program") or logs[n].get("mb_program") for n in sorted(logs) if n > 1]
    return [[p] for p in picked if p is not None]


def _gepa(student, s: Setup):
    import dspy

    c = s.config
    assert c.iterations is not None and c.candidates is not None  # the --search preset's if not given (config __post_init__)
    budget = (1 + c.iterations * c.candidates) * (len(s.train) + len(s.valid))
    optimizer = dspy.GEPA(metric=s.feedback_metric, max_metric_calls=budget, reflection_lm=s.optimizer_lm,
                          reflection_minibatch_size=min(3, len(s.train)), num_threads=c.num_threads,
                          track_stats=True, seed=c.seed)
    return optimizer.compile(student, trainset=list(s.train), valset=list(s.valid))


def _gepa_rounds(program) -> Rounds:
    return [[candidate] for candidate in program.detailed_results.candidates[1:]]  # 0 is the seed


def _bootstrap(student, s: Setup):
    import dspy

    c = s.config
    optimizer = dspy.BootstrapFewShot(metric=s.metric, teacher_settings={"lm": s.optimizer_lm},
                                      max_bootstrapped_demos=c.num_demos, max_labeled_demos=c.num_demos,
                                      max_rounds=c.iterations)
    return optimizer.compile(student, trainset=list(s.train))


def _random_search(student, s: Setup):
    import dspy

    c = s.config
    optimizer = dspy.BootstrapFewShotWithRandomSearch(
        metric=s.metric, teacher_settings={"lm": s.optimizer_lm}, max_bootstrapped_demos=c.num_demos,
        max_labeled_demos=c.num_demos, max_rounds=c.iterations, num_candidate_programs=c.candidates,
        num_threads=c.num_threads)
    return optimizer.compile(student, trainset=list(s.train), valset=list(s.valid))


def _random_search_rounds(program) -> Rounds:
    # Seeds -3, -2, -1 are zero-shot, labels only and unshuffled bootstrap; then random draws.
    return [[entry["program"]] for entry in sorted(program.candidate_programs, key=lambda e: e["seed"])]


def _needs_demos(config: OptimizationConfig) -> None:
    if config.num_demos < 1:
        raise ConfigError("BootstrapFewShotWithRandomSearch searches over demo sets: num_demos must be at least 1")


def _copro(student, s: Setup):
    import dspy

    c = s.config
    assert c.candidates is not None  # the --search preset's if not given (config __post_init__)
    optimizer = dspy.COPRO(prompt_model=s.optimizer_lm, metric=s.metric, breadth=max(2, c.candidates),
                           depth=c.iterations, track_stats=True)
    return optimizer.compile(student, trainset=list(s.train),
                             eval_kwargs={"num_threads": c.num_threads, "display_progress": s.show_progress})


def _copro_rounds(program) -> Rounds:
    by_depth: dict[int, list] = {}
    for entry in program.candidate_programs:
        by_depth.setdefault(entry["depth"], []).append(entry["program"])
    return [by_depth[depth] for depth in sorted(by_depth)]


def _simba(student, s: Setup):
    import dspy

    c = s.config
    optimizer = dspy.SIMBA(metric=s.metric, bsize=min(32, len(s.train)), num_candidates=c.candidates,
                           max_steps=c.iterations, max_demos=c.num_demos, prompt_model=s.optimizer_lm,
                           num_threads=c.num_threads)
    return optimizer.compile(student, trainset=list(s.train), seed=c.seed)


def _candidate_programs(program) -> Rounds:
    return [[entry["program"]] for entry in program.candidate_programs]


def _only_result(program) -> Rounds:
    return [[program]]


def _builtins(registry: Registry[Recipe]) -> None:
    for name, recipe in (
        ("MIPROv2", Recipe(_mipro, _mipro_rounds)),
        ("GEPA", Recipe(_gepa, _gepa_rounds)),
        ("BootstrapFewShot", Recipe(_bootstrap, _only_result)),
        ("BootstrapFewShotWithRandomSearch", Recipe(_random_search, _random_search_rounds, _needs_demos)),
        ("COPRO", Recipe(_copro, _copro_rounds)),
        ("SIMBA", Recipe(_simba, _candidate_programs)),
    ):
        registry.register(name, recipe)


# DSPy optimizers by name: the built-ins above, `register_dspy_optimizer` calls and entry points
# in the group `promptomatix.dspy_optimizers` (each a `Recipe`).
OPTIMIZERS: Registry[Recipe] = Registry("dspy_optimizers", _builtins)


def register_dspy_optimizer(name: str, recipe: Recipe, *, replace: bool = False) -> Recipe:
    """Make `--optimizer NAME` run `recipe` (see `Recipe` and `Setup` for what it receives)."""
    if not isinstance(recipe, Recipe):
        raise ConfigError(f"DSPy optimizer {name!r} must be a Recipe, got {type(recipe).__name__}")
    return OPTIMIZERS.register(name, recipe, replace=replace)


def get_recipe(name: str) -> Recipe:
    """The recipe for an optimizer name (`dspy.` prefix allowed), or `ConfigError` with the choices."""
    registered = OPTIMIZERS.names()
    for candidate in (name, name.removeprefix("dspy.")):
        if candidate in registered:
            return OPTIMIZERS.get(candidate)
    failed = f" (its plugin failed: {OPTIMIZERS.errors[name]})" if name in OPTIMIZERS.errors else ""
    raise ConfigError(f"unknown DSPy optimizer {name!r}{failed}; choose one of: {', '.join(registered)}")
