"""The meta-prompt backend, driven end to end through the scripted fake LLM and the real metric."""

from __future__ import annotations

import dataclasses

import itertools
import json
import re
import threading
import time

import pytest

from conftest import FAKE_MODEL, Recorder
from promptomatix.backends import get_backend
from promptomatix.backends.base import OptimizationTask
from promptomatix.backends.metaprompt import MetaPromptBackend
from promptomatix.config import ModelSettings, OptimizationConfig
from promptomatix.errors import ConfigError
from promptomatix.models.lm import LM
from promptomatix.models.usage import UsageMeter
from promptomatix.run.callbacks import Callback
from promptomatix.scoring import Metric, Objective
from promptomatix.scoring.evaluator import Evaluator
from promptomatix.scoring.labels import fitted_calibration
from promptomatix.task.prompt import Prompt
from promptomatix.task.spec import TaskSpec
from sentiment_data import MAGIC, TRAIN, TRUTH, VALID

REWRITE_MARK = "Improved instruction"

SPEC = TaskSpec(
    description="Classify the sentiment of a movie review as positive or negative",
    input_fields=("text",),
    output_fields=("label",),
    task_type="classification",
    labels=("positive", "negative"),
)


@pytest.fixture(scope="module")
def accuracy():
    return Metric("classification", "accuracy")


def query_text(prompt: str) -> str:
    """The input of the query: the last `Text:` line of a rendered prompt (demos come first)."""
    return [line for line in prompt.splitlines() if line.startswith("Text: ")][-1][len("Text: "):]


def right_answer(prompt, params):
    return TRUTH[query_text(prompt)]


def rewrites(*instructions):
    """A rewrite rule answering the given instructions in turn (cycling), counting its calls."""
    cycle = itertools.cycle(instructions)
    lock = threading.Lock()

    def answer(prompt, params):
        with lock:
            return json.dumps({"instruction": next(cycle)})

    return answer


def make_task(accuracy, start_instruction, *, iterations=2, candidates=2, num_demos=2, seed=0,
              lambda_penalty=0.005, valid=VALID, num_threads=4):
    lm = lambda: LM(ModelSettings(model=FAKE_MODEL), UsageMeter(), backoff=0)  # noqa: E731
    evaluator = Evaluator(lm(), accuracy, num_threads=2, show_progress=False)
    config = OptimizationConfig(raw_input=SPEC.description, iterations=iterations, candidates=candidates,
                                num_demos=num_demos, seed=seed, num_threads=num_threads)
    start = Prompt(start_instruction, SPEC.input_fields, SPEC.output_fields)
    return OptimizationTask(SPEC, start, TRAIN, list(valid), evaluator, Objective(lambda_penalty), lm(), config)


def rewrite_calls(fake_llm):
    return [c for c in fake_llm.calls if REWRITE_MARK in c["prompt"]]


def task_calls(fake_llm):
    return [c for c in fake_llm.calls if REWRITE_MARK not in c["prompt"]]


def test_meta_prompt_is_the_registered_default_backend():
    assert get_backend("meta_prompt") is MetaPromptBackend
    assert OptimizationConfig(raw_input="x").backend == "meta_prompt"


def test_a_better_instruction_is_found_and_returned(fake_llm, accuracy):
    better = f"Read the review {MAGIC} and answer with one word: positive or negative."
    # The rewrite rule comes first: the rewrite prompt quotes the current instruction.
    fake_llm.rules = [(REWRITE_MARK, rewrites(better)), (MAGIC, right_answer)]
    recorder = Recorder()

    outcome = MetaPromptBackend().optimize(make_task(accuracy, "Classify the sentiment."), recorder)
    result = outcome.best

    start = recorder.candidates[0][1]
    assert start.score == 0.0 == outcome.initial_score  # the start's score, returned with the best
    assert result.score == 1.0 > start.score
    assert MAGIC in result.prompt.instruction
    assert result.objective > start.objective
    assert result.evaluation.per_example == (1.0,) * len(VALID)


def test_harmful_rewrites_keep_the_starting_prompt(fake_llm, accuracy):
    start_instruction = f"Label the review {MAGIC}."
    fake_llm.rules = [(REWRITE_MARK, rewrites("Just say ok.", "Answer with whatever comes to mind first.")),
                      (MAGIC, right_answer)]
    recorder = Recorder()
    task = make_task(accuracy, start_instruction, iterations=3, candidates=2, num_demos=0)

    result = MetaPromptBackend().optimize(task, recorder).best

    assert result.prompt == task.start
    assert result.score == 1.0
    scored = [c for step, c in recorder.candidates if step > 0]
    assert scored and all(c.score < 1.0 for c in scored)  # they were tried, and were worse
    # The best so far never drops below the start at any iteration.
    assert all(best.objective >= recorder.candidates[0][1].objective for _, best, _ in recorder.iterations)


def test_steps_are_reported_start_as_zero_then_each_iteration(fake_llm, accuracy):
    iterations, candidates = 3, 2
    distinct = [f"Instruction number {i} for labelling the sentiment of reviews." for i in range(20)]
    fake_llm.rules = [(REWRITE_MARK, rewrites(*distinct))]
    recorder = Recorder()
    task = make_task(accuracy, "Classify the sentiment.", iterations=iterations, candidates=candidates, num_demos=0)

    MetaPromptBackend().optimize(task, recorder)

    assert [step for step, _, _ in recorder.iterations] == list(range(iterations + 1))
    steps = [step for step, _ in recorder.candidates]
    assert steps == [0] + [s for s in range(1, iterations + 1) for _ in range(candidates)]
    assert recorder.candidates[0][1].prompt == task.start
    assert recorder.iterations[0][2] == []
    for step, _, scored in recorder.iterations[1:]:
        assert [c for s, c in recorder.candidates if s == step] == scored


def test_without_demos_every_candidate_is_a_rewrite_and_with_them_one_an_iteration(fake_llm, accuracy):
    iterations, candidates = 2, 3
    fake_llm.rules = [(REWRITE_MARK, rewrites(*[f"Variant {i} of the sentiment instruction." for i in range(20)]))]

    MetaPromptBackend().optimize(make_task(accuracy, "Classify.", iterations=iterations, candidates=candidates,
                                           num_demos=0), Callback())
    assert len(rewrite_calls(fake_llm)) == iterations * candidates

    fake_llm.calls.clear()
    MetaPromptBackend().optimize(make_task(accuracy, "Classify.", iterations=iterations, candidates=candidates,
                                           num_demos=2), Callback())
    assert len(rewrite_calls(fake_llm)) == iterations  # the other candidates try demos


def test_duplicate_candidates_are_not_scored_twice(fake_llm, accuracy):
    same = f"Decide {MAGIC} whether the review is positive or negative."
    fake_llm.rules = [(REWRITE_MARK, rewrites(same)), (MAGIC, right_answer)]
    recorder = Recorder()
    # Without demos every candidate is the same prompt.
    task = make_task(accuracy, "Classify the sentiment.", iterations=3, candidates=3, num_demos=0)

    result = MetaPromptBackend().optimize(task, recorder).best

    assert result.prompt.instruction == same
    assert [step for step, _ in recorder.candidates] == [0, 1]  # the start, then the rewrite once
    assert len(task_calls(fake_llm)) == 2 * len(VALID)


def test_a_rewrite_identical_to_the_start_is_not_scored(fake_llm, accuracy):
    start = "Classify the sentiment of the review as positive or negative."
    fake_llm.rules = [(REWRITE_MARK, rewrites(start))]
    recorder = Recorder()

    result = MetaPromptBackend().optimize(make_task(accuracy, start, num_demos=0), recorder).best

    assert result.prompt.instruction == start
    assert [step for step, _ in recorder.candidates] == [0]


def test_length_penalty_makes_the_shorter_prompt_win_a_quality_tie(fake_llm, accuracy):
    long_start = (f"Please read the following movie review {MAGIC}, considering the tone, the wording "
                  "and the overall opinion of the writer, and then answer positive or negative.")
    short = f"Label it {MAGIC}: positive or negative."
    fake_llm.rules = [(REWRITE_MARK, rewrites(short)), (MAGIC, right_answer)]
    recorder = Recorder()

    result = MetaPromptBackend().optimize(make_task(accuracy, long_start, num_demos=0), recorder).best

    assert recorder.candidates[0][1].score == result.score == 1.0
    assert result.prompt.instruction == short


def test_a_tie_in_objective_keeps_the_incumbent(fake_llm, accuracy):
    start = f"Answer {MAGIC}: positive or negative."
    same_length = f"Reply {MAGIC}: positive or negative."
    fake_llm.rules = [(REWRITE_MARK, rewrites(same_length)), (MAGIC, right_answer)]
    recorder = Recorder()

    result = MetaPromptBackend().optimize(make_task(accuracy, start, num_demos=0), recorder).best

    assert recorder.candidates[1][1].objective == recorder.candidates[0][1].objective  # a real tie
    assert result.prompt.instruction == start


def test_the_rewrite_prompt_shows_failing_validation_examples(fake_llm, accuracy):
    valid = VALID + [{"text": "not worth the ticket", "label": "negative"},
                     {"text": "a tedious, joyless affair", "label": "negative"}]
    failing = [e["text"] for e in valid if e["label"] == "negative"]
    passing = [e["text"] for e in valid if e["label"] == "positive"]
    # The task model always says "positive": the negative reviews fail.
    fake_llm.rules = [(REWRITE_MARK, rewrites("Decide whether the review is positive or negative.")),
                      ("Text:", "positive")]
    task = make_task(accuracy, "Classify the sentiment.", iterations=1, candidates=1, valid=valid)

    MetaPromptBackend().optimize(task, Callback())

    (call,) = rewrite_calls(fake_llm)
    text = call["prompt"]
    assert SPEC.description in text
    assert "Classify the sentiment." in text
    shown = [t for t in failing if t in text]
    assert shown == failing[:3]  # at most three failures, in order
    assert not any(t in text for t in passing)
    assert '"expected": {"label": "negative"}' in text
    assert '"got": {"label": "positive"}' in text
    assert "0.333" in text  # the current score: 2 of 6 right


def test_demos_come_from_the_training_set_and_are_rendered(fake_llm, accuracy):
    instruction = f"Label the review {MAGIC}."
    fake_llm.rules = [(REWRITE_MARK, rewrites("Say which sentiment the review has: positive or negative.")),
                      (MAGIC, right_answer)]
    recorder = Recorder()

    MetaPromptBackend().optimize(make_task(accuracy, instruction, iterations=1, candidates=2, num_demos=2),
                                 recorder)

    with_demos = [c for step, c in recorder.candidates if step == 1 and c.prompt.demos]
    assert with_demos, "a candidate draws demos"
    for candidate in with_demos:
        assert len(candidate.prompt.demos) in (1, 2) and candidate.change.endswith("new demos")
        assert all(demo in TRAIN for demo in candidate.prompt.demos)
        assert all(f"Text: {demo['text']}\nLabel: {demo['label']}" in candidate.prompt.template
                   for demo in candidate.prompt.demos)


def test_same_seed_gives_the_same_result(fake_llm, accuracy):
    better = f"Read the review {MAGIC} and answer positive or negative."

    def run(seed):
        fake_llm.rules = [(REWRITE_MARK, rewrites(better)), (MAGIC, right_answer)]
        return MetaPromptBackend().optimize(
            make_task(accuracy, "Classify.", iterations=2, candidates=2, num_demos=2, seed=seed,
                      lambda_penalty=0.0), Callback()).best

    first, again = run(3), run(3)
    assert first.prompt == again.prompt


def test_an_unreadable_rewrite_skips_that_candidate_and_the_search_goes_on(fake_llm, accuracy):
    answers = itertools.chain(["not JSON"] * 3, itertools.repeat(json.dumps({"instruction": f"Answer {MAGIC} now."})))
    fake_llm.rules = [(REWRITE_MARK, lambda prompt, params: next(answers)), (MAGIC, right_answer)]
    task = make_task(accuracy, "Say something.", iterations=1, candidates=2, num_threads=1, num_demos=0)  # in turn
    recorder = Recorder()

    best = MetaPromptBackend().optimize(task, recorder).best

    assert [step for step, _ in recorder.candidates] == [0, 1]  # the first candidate was skipped
    assert MAGIC in best.prompt.instruction
    assert task.optimizer_lm.meter.snapshot().parse_failures == 3


@pytest.mark.parametrize("options, named", [({"optimizer": "GEPA"}, "optimizer"),
                                            ({"dspy_module": "ChainOfThought"}, "dspy_module"),
                                            ({"optimizer": "GEPA", "dspy_module": "ReAct"}, "optimizer and dspy_module")])
def test_dspy_options_with_the_meta_prompt_backend_are_refused_not_ignored(options, named):
    with pytest.raises(ConfigError, match=f"^{named} apply to --backend dspy"):
        MetaPromptBackend().check(OptimizationConfig(raw_input="x", **options))
    MetaPromptBackend().check(OptimizationConfig(raw_input="x", optimizer="MIPROv2"))  # the default is no choice


def test_the_rewrites_of_an_iteration_are_asked_at_once(fake_llm, accuracy):
    all_waiting = threading.Barrier(3, timeout=20)  # three candidates' rewrites, all in flight together
    variants = itertools.count()

    def rewrite(prompt, params):
        all_waiting.wait()
        return json.dumps({"instruction": f"Answer {MAGIC} now, variant {next(variants)}."})

    fake_llm.rules = [(REWRITE_MARK, rewrite), (MAGIC, right_answer)]
    task = make_task(accuracy, "Say something.", iterations=1, candidates=3, num_threads=3, num_demos=0)
    recorder = Recorder()

    best = MetaPromptBackend().optimize(task, recorder).best  # would time out (BrokenBarrierError) one at a time

    assert [step for step, _ in recorder.candidates] == [0, 1, 1, 1]
    assert MAGIC in best.prompt.instruction


def test_the_race_scores_new_demo_sets_while_the_rewrite_is_asked(fake_llm, accuracy):
    # A rewrite takes 0.5 s; the round's other prompts (new demo sets) are answered meanwhile,
    # and the rewritten prompt joins the race when it comes, and wins it.
    events: list[tuple[str, float]] = []
    better = f"Read the review {MAGIC} and answer with one word: positive or negative."
    slow = rewrites(better)

    def rewrite(prompt, params):
        time.sleep(0.5)
        events.append(("rewrite", time.monotonic()))
        return slow(prompt, params)

    def answer(prompt, params):
        events.append(("answer", time.monotonic()))
        return right_answer(prompt, params) if MAGIC in prompt else "positive"

    fake_llm.rules = [(REWRITE_MARK, rewrite), ("Text:", answer)]
    task = make_task(accuracy, "Classify the sentiment.", iterations=1, candidates=4, num_threads=4)
    recorder = Recorder()
    started = time.monotonic()

    best = MetaPromptBackend().optimize(task, recorder).best

    rewritten = next(t for what, t in events if what == "rewrite")
    raced = [t for what, t in events if what == "answer" and t > started]
    scored_start = len(VALID)  # the starting prompt's answers come first
    assert any(t < rewritten for t in raced[scored_start:])  # the race ran while the rewrite was asked
    assert MAGIC in best.prompt.instruction
    assert "instruction rewritten" in {c.change for step, c in recorder.candidates if step == 1}


# --- label prompts on a model that scores labels, and the budget ------------------------------------

def labelled_task(accuracy, meter, *, valid=VALID, iterations=1, candidates=4, num_demos=2, bias=1.5,
                  synthetic=False):
    """A label prompt on `SCORING_MODEL`: it reads the review's words but prefers `positive` by
    `bias`, as a small model prefers some labels whatever the input."""
    from conftest import SCORING_MODEL

    lm = LM(ModelSettings(model=SCORING_MODEL), meter, backoff=0)
    evaluator = Evaluator(lm, accuracy, num_threads=2, show_progress=False, synthetic=synthetic)
    config = OptimizationConfig(raw_input=SPEC.description, iterations=iterations, candidates=candidates,
                                num_demos=num_demos, num_threads=2)
    start = Prompt("Classify the sentiment.", SPEC.input_fields, SPEC.output_fields, single_line=True,
                   labels=SPEC.labels)
    return OptimizationTask(SPEC, start, TRAIN, list(valid), evaluator, Objective(0.0001), lm, config)


def biased(bias):
    def score(prompt, option):
        right = TRUTH.get(query_text(prompt))  # None: an input with no content, only the lean shows
        return (0.0 if option == right or right is None else -1.0) + (bias if option == "positive" else 0.0)
    return score


def test_a_biased_model_is_calibrated_and_the_calibrated_prompt_wins(scoring, accuracy):
    scoring.score = biased(1.5)
    scoring.rules = [(REWRITE_MARK, rewrites("Classify the sentiment, carefully."))]
    recorder = Recorder()

    result = MetaPromptBackend().optimize(labelled_task(accuracy, UsageMeter(), num_demos=0), recorder).best

    start = recorder.candidates[0][1]
    assert start.score == 0.5  # says "positive" to everything
    assert result.score == 1.0 and result.prompt.calibration and "calibrated" in result.change
    assert result.prompt.instruction == "Classify the sentiment."  # calibration alone did it: no rewrite needed
    assert len(result.prompt.calibration) == 2


def test_on_synthetic_rows_the_calibration_is_read_from_content_free_inputs(scoring, accuracy):
    from promptomatix.scoring.evaluator import CONTENT_FREE

    # The model leans to "positive" by 1.5 on the reviews but by 1.0 on inputs with no content:
    # the rows would show a lean of 1.5 (half of them right, half wrong by 1.5 - 1), the
    # content-free inputs show 1.0. Only the second is read from inputs that are no sample of
    # the rows, as a run on synthetic data needs.
    def score(prompt, option):
        text = prompt.rsplit("Text:", 1)[-1].split("\n")[0].strip()
        if text in CONTENT_FREE:
            return 1.0 if option == "positive" else 0.0
        return biased(1.5)(prompt, option)

    scoring.score = score
    scoring.rules = [(REWRITE_MARK, rewrites("Classify the sentiment, carefully."))]
    recorder = Recorder()
    task = labelled_task(accuracy, UsageMeter(), num_demos=0, synthetic=True)
    result = MetaPromptBackend().optimize(task, recorder).best

    lean = dict(zip(task.start.labels, result.prompt.calibration))
    assert lean["positive"] - lean["negative"] == pytest.approx(1.0)
    assert result.score == 1.0 and "calibrated" in result.change
    # every prompt raced was asked each content-free input once, and nothing else was
    asked = [c["prompt"] for c in scoring.calls
             if c["prompt"].rsplit("Text:", 1)[-1].split("\n")[0].strip() in CONTENT_FREE]
    prompts = {c.prompt.template for _, c in recorder.candidates}
    assert len(asked) == len(set(asked)) == len(CONTENT_FREE) * len(prompts) == task.calibration_calls * len(prompts)


def test_content_free_calibration_is_paid_for_within_the_budget(scoring, accuracy):
    from promptomatix.models.usage import Limits

    scoring.score = biased(1.5)
    scoring.rules = [(REWRITE_MARK, rewrites(*[f"Variant {i} of the instruction." for i in range(50)]))]
    # A new prompt costs its answers to the 4 rows and 3 content-free ones: 10 calls after the
    # start's 4 pay for none (the start's own calibration takes 3), 20 pay for a race.
    for spare in (10, 20, 60):
        meter = UsageMeter(Limits(calls=len(VALID) + spare))
        recorder = Recorder()
        task = labelled_task(accuracy, meter, iterations=2, candidates=8, num_demos=2, synthetic=True)

        result = MetaPromptBackend().optimize(task, recorder).best

        assert meter.snapshot().calls <= len(VALID) + spare
        new = [c for step, c in recorder.candidates if step > 0 and c.change != "calibrated"]
        assert (len(new) >= 2) == (spare >= 20)
        assert result.score >= recorder.candidates[0][1].score


def test_demo_sets_of_a_label_prompt_hold_every_label(scoring, accuracy):
    scoring.score = biased(0.0)
    scoring.rules = [(REWRITE_MARK, rewrites("Classify the sentiment, carefully."))]
    recorder = Recorder()

    MetaPromptBackend().optimize(labelled_task(accuracy, UsageMeter(), candidates=6, num_demos=4), recorder)

    demo_sets = [c.prompt.demos for _, c in recorder.candidates if c.prompt.demos]
    assert demo_sets
    for demos in demo_sets:
        labels = [d["label"] for d in demos]
        assert labels.count("positive") == labels.count("negative")


def _proposed_demo_sets(accuracy, train, num_demos):
    import random as random_module

    task = dataclasses.replace(labelled_task(accuracy, UsageMeter(), candidates=8, num_demos=num_demos), train=train)
    proposals = MetaPromptBackend().propose(task, task.score(task.start), 1, 6, random_module.Random(0), set())
    return [[d["text"] for d in prompt.demos] for prompt, _ in proposals if prompt.demos]


def test_demo_sets_favour_typical_examples_and_still_differ_on_a_small_training_set(scoring, accuracy):
    scoring.score = biased(0.0)

    def films(word, label, count):
        return [{"text": f"a {word} film {i}", "label": label} for i in range(count)]

    odd = [{"text": "tickets at the box office", "label": "positive"},
           {"text": "the popcorn was cold", "label": "negative"}]
    sets = _proposed_demo_sets(accuracy, films("good", "positive", 12) + films("bad", "negative", 12) + odd, 4)
    assert sets and not {"tickets at the box office", "the popcorn was cold"} & {t for s in sets for t in s}

    # 6 examples a label, up to 8 demos: sets of 3 a label (half of a label's examples), from the
    # half kept, which holds all 6, not a single set's 3: the sets differ
    sets = _proposed_demo_sets(accuracy, films("good", "positive", 6) + films("bad", "negative", 6), 8)
    assert {len(s) for s in sets} == {6} and len({frozenset(s) for s in sets}) >= 2


def test_new_demo_sets_are_whole_and_fewer_demos_are_tried_on_the_incumbent(scoring, accuracy):
    import random as random_module

    scoring.score = biased(0.0)
    train = [{"text": f"a {word} film {i}", "label": label}
             for i in range(8) for word, label in (("good", "positive"), ("bad", "negative"))]
    task = dataclasses.replace(labelled_task(accuracy, UsageMeter(), candidates=8, num_demos=8), train=train)
    start = task.score(task.start)

    first = MetaPromptBackend().propose(task, start, 1, 6, random_module.Random(0), set())
    assert {len(p.demos) for p, _ in first if p.demos} == {8}  # never a half-size set drawn

    incumbent = dataclasses.replace(start, prompt=first[0][0])
    later = MetaPromptBackend().propose(task, incumbent, 2, 6, random_module.Random(0), set())
    [(fewer, change)] = [(p, c) for p, c in later if len(p.demos) < 8]
    assert change == "fewer demos" and len(fewer.demos) == 4
    assert set(map(str, fewer.demos)) <= set(map(str, incumbent.prompt.demos))
    assert sorted(d["label"] for d in fewer.demos) == ["negative", "negative", "positive", "positive"]


def test_the_budget_shrinks_an_iteration_and_a_spent_one_keeps_the_best_so_far(scoring, accuracy):
    from promptomatix.models.usage import Limits

    scoring.score = biased(1.5)
    scoring.rules = [(REWRITE_MARK, rewrites(*[f"Variant {i} of the instruction." for i in range(50)]))]
    meter = UsageMeter(Limits(calls=len(VALID) + 6))  # the start's answers, then 6 calls
    task = labelled_task(accuracy, meter, iterations=3, candidates=8, num_demos=2)
    recorder = Recorder()

    result = MetaPromptBackend().optimize(task, recorder).best

    assert meter.snapshot().calls <= len(VALID) + 6
    assert meter.stopped_by == "max_calls"
    assert result.score >= recorder.candidates[0][1].score
    # each iteration raced only what its share of the calls left pays for
    assert len([1 for step, _ in recorder.candidates if step == 1]) < 8


def test_a_candidate_count_no_budget_pays_for_is_cut_to_the_calls_left_at_once(scoring, accuracy):
    from promptomatix.models.usage import Limits

    scoring.score = biased(0.0)
    scoring.rules = [(REWRITE_MARK, rewrites(*[f"Variant {i} of the instruction." for i in range(50)]))]
    meter = UsageMeter(Limits(calls=len(VALID) + 20))
    task = labelled_task(accuracy, meter, num_demos=2)
    # The CLI and the config refuse such a count (config.SIZE_LIMITS); the backend must still
    # not count down from it when handed one (a plugin's own config, an older caller).
    object.__setattr__(task.config, "candidates", 10**23)
    recorder = Recorder()

    MetaPromptBackend().optimize(task, recorder)  # returns: it does not count down from 10**23

    assert meter.snapshot().calls <= len(VALID) + 20
    assert 1 <= len([1 for step, _ in recorder.candidates if step == 1]) <= 20


WIDE_VALID = [{"text": f"film {i} was {'great' if i % 2 else 'awful'}", "label": "positive" if i % 2 else "negative"}
              for i in range(24)]


def reads_the_word(prompt, option):
    """Scores the right label of a WIDE_VALID review higher (as a model that reads it would)."""
    right = "positive" if "great" in query_text(prompt) else "negative"
    return 0.0 if option == right else -1.0


def test_a_budget_too_small_for_the_whole_validation_set_still_races_prompts(scoring, accuracy):
    from promptomatix.backends.search import MIN_RACE
    from promptomatix.models.usage import Limits

    scoring.score = reads_the_word
    scoring.rules = [(REWRITE_MARK, rewrites(*[f"Variant {i} of the instruction." for i in range(50)]))]
    budget = len(WIDE_VALID) + 16  # the start on every row, then too little for any race on all of them
    meter = UsageMeter(Limits(calls=budget))
    task = labelled_task(accuracy, meter, valid=WIDE_VALID, iterations=3, candidates=8)
    recorder = Recorder()

    result = MetaPromptBackend().optimize(task, recorder).best

    start = recorder.candidates[0][1]
    assert len(start.evaluation.per_example) < len(WIDE_VALID)  # searched on the rows the budget pays for
    assert len(result.evaluation.per_example) == len(start.evaluation.per_example)  # compared like with like
    # the calls went to one race worth running, not to thin shares that pay for none
    assert len([1 for step, _ in recorder.candidates if step == 1]) >= MIN_RACE
    assert meter.snapshot().calls <= budget


@pytest.mark.parametrize("rows, calls, candidates, expected", [
    (25, None, 8, 25),   # no budget: every row
    (25, 250, 8, 25),    # the budget pays for a race on every row
    (25, 47, 8, 16),     # it does not: the most rows on which it pays for one
    (25, 47, 1, 23),     # a race of one prompt is cheaper
    (25, 20, 8, 25),     # not even on a race's first stage (7 rows): all rows, for the start
])
def test_search_rows_fit_the_calls_left(rows, calls, candidates, expected):
    from promptomatix.backends.search import search_rows

    assert search_rows(rows, calls, candidates) == expected


def test_rewrites_that_cost_more_than_planned_do_not_leave_a_race_half_run(scoring, accuracy):
    from promptomatix.models.usage import Limits

    scoring.score = reads_the_word
    answers = itertools.cycle(["not json", "still not json", json.dumps({"instruction": "Read the review and label it."})])
    lock = threading.Lock()

    def unreadable_twice(prompt, params):  # every rewrite takes three calls
        with lock:
            return next(answers)

    scoring.rules = [(REWRITE_MARK, unreadable_twice)]
    budget = len(WIDE_VALID) + 20
    meter = UsageMeter(Limits(calls=budget))
    task = labelled_task(accuracy, meter, valid=WIDE_VALID, iterations=1, candidates=8)
    recorder = Recorder()

    MetaPromptBackend().optimize(task, recorder)

    rows = len(recorder.candidates[0][1].evaluation.per_example)
    raced = [c for step, c in recorder.candidates if step == 1]
    assert raced and any(len(c.evaluation.per_example) == rows for c in raced)  # a race that finished
    assert meter.snapshot().calls <= budget


def test_the_winner_is_calibrated_on_the_unused_training_examples_too(scoring, accuracy):
    from promptomatix.models.usage import Limits

    # The model leans to "positive" by 1.5 on the validation reviews and not at all on the others:
    # a calibration read from validation alone over-corrects, and answers "negative" to every
    # unseen positive review; read from validation and training rows, it gets them right. It
    # misreads one training review (scored "negative" by 0.5), so no offsets get every row right.
    unseen = [{"text": "a triumph of a film", "label": "positive"}, {"text": "tedious and flat", "label": "negative"}]
    truth = {**TRUTH, **{e["text"]: e["label"] for e in unseen}, "the cast is superb": "negative"}
    leaning = {e["text"] for e in VALID}
    scoring.score = lambda prompt, option: (0.0 if option == truth[query_text(prompt)] else -1.0) + \
        (1.5 if option == "positive" and query_text(prompt) in leaning else 0.0) + \
        (0.5 if option == "positive" and query_text(prompt) == "the cast is superb" else 0.0)
    scoring.rules = [(REWRITE_MARK, rewrites("Classify the sentiment, carefully."))]
    meter = UsageMeter()
    task = labelled_task(accuracy, meter, num_demos=0)
    recorder = Recorder()

    result = MetaPromptBackend().optimize(task, recorder).best

    assert task.evaluator.evaluate(result.prompt, unseen).score == 1.0
    assert f"calibrated on {len(VALID) + len(TRAIN)} rows" in result.change
    assert recorder.iterations[-1] == (task.config.iterations + 1, result, [result])  # reported as a step
    # Its offsets are the ones that make the right labels of those rows likeliest.
    rows, bare = [*VALID, *TRAIN], result.prompt.with_(calibration=())
    answers = [bare.labels.index(e["label"]) for e in rows]
    assert result.prompt.calibration == pytest.approx(fitted_calibration(task.evaluator.evaluate(bare, rows).scores,
                                                                         answers))
    # Within a call limit, as many training rows as the calls left pay for.
    total, asked = meter.snapshot().calls, set()
    for limit in range(len(VALID) + 1, total):
        meter = UsageMeter(Limits(calls=limit))
        result = MetaPromptBackend().optimize(labelled_task(accuracy, meter, num_demos=0), Recorder()).best
        rows = re.search(r"calibrated on (\d+) rows", result.change)
        asked.add(int(rows.group(1)) if rows else len(VALID))
        assert meter.snapshot().calls <= limit
    assert asked & set(range(len(VALID) + 1, len(VALID) + len(TRAIN)))  # some, not all


def misled_by_demos(wrong):
    """A model leaning to `positive` by 1.5 without demos (so only calibration makes it right);
    with demos it leans to no label and is right except on the reviews in `wrong`."""
    def score(prompt, option):
        query = query_text(prompt)
        if prompt.count("Text: ") == 1:
            return biased(1.5)(prompt, option)
        right = TRUTH.get(query)
        if right is None:  # a content-free input
            return 0.0
        if query in wrong:
            right = "negative" if right == "positive" else "positive"
        return 0.0 if option == right else -1.0
    return score


@pytest.mark.parametrize("synthetic", [True, False])
def test_on_synthetic_rows_demos_stay_unless_a_prompt_without_is_clearly_better(scoring, accuracy, synthetic):
    # The calibrated start answers all 4 validation rows right, the demo sets 3: one row is no
    # evidence on 4 rows labelled by a model, and the demos are kept; on the user's rows it is.
    scoring.score = misled_by_demos({VALID[0]["text"]})
    scoring.rules = [(REWRITE_MARK, rewrites("Classify the sentiment, carefully."))]
    recorder = Recorder()
    task = labelled_task(accuracy, UsageMeter(), synthetic=synthetic)

    outcome = MetaPromptBackend().optimize(task, recorder)

    searched = recorder.iterations[task.config.iterations][1]  # the best when the iterations ended
    assert searched.score == 1.0 and not searched.prompt.demos
    if synthetic:
        assert outcome.best.prompt.demos and outcome.best.score == 0.75 > outcome.initial_score
        assert "not clearly better" in outcome.best.change
        assert recorder.iterations[-1] == (task.config.iterations + 1, outcome.best, [outcome.best])  # a step
    else:
        assert outcome.best.score == 1.0 and not outcome.best.prompt.demos


def test_a_prompt_without_demos_clearly_better_on_synthetic_rows_is_kept(scoring, accuracy):
    from promptomatix.backends.search import demos_unless_clearly_beaten
    from promptomatix.scoring.evaluator import Evaluation

    task = labelled_task(accuracy, UsageMeter(), synthetic=True)
    with_demos = task.start.with_(demos=tuple(TRAIN[:2]))

    def scored(prompt, right, rows=20):
        per_example = (1.0,) * right + (0.0,) * (rows - right)
        return task.candidate(prompt, Evaluation(right / rows, per_example, ()))

    best, demos = scored(task.start, 20), scored(with_demos, 12)
    assert demos_unless_clearly_beaten(task, best, demos, initial=0.5) is best  # 8 rows to none
    assert demos_unless_clearly_beaten(task, scored(task.start, 16), demos, initial=0.5).prompt == with_demos
    assert demos_unless_clearly_beaten(task, best, demos, initial=0.6) is best  # demos must beat the start
    tie = scored(task.start, 12)
    assert demos_unless_clearly_beaten(task, tie, demos, initial=0.5) is tie  # the ranking decides a tie
    assert demos_unless_clearly_beaten(task, best, None, initial=0.5) is best
