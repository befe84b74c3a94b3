"""What the meta-prompt backend searches over (demo sets) and how it spends calls (races)."""

from __future__ import annotations

import dataclasses
import random
import time
from collections import Counter

import pytest

from conftest import FAKE_MODEL
from promptomatix.backends.base import Candidate, OptimizationTask
from promptomatix.backends.search import (Race, demo_counts, demos_that_fit, draw_demos, fits, race_cost, rungs,
                                          sure_to_go_on, typical_answers, typical_half)
from promptomatix.config import ModelSettings, OptimizationConfig
from promptomatix.models.lm import LM
from promptomatix.models.usage import UsageMeter
from promptomatix.scoring import Metric, Objective
from promptomatix.scoring.evaluator import Evaluation, Evaluator
from promptomatix.task.prompt import Prompt
from promptomatix.task.spec import TaskSpec

TRAIN = [{"text": f"review {i}", "label": label} for i, label in enumerate(["a", "b", "c"] * 6)]


@pytest.mark.parametrize("num_demos, labels, counts", [
    (8, ("a", "b"), [4, 8]), (8, ("a", "b", "c", "d"), [4, 8]), (8, tuple("abcdef"), [6]),
    (8, (), [4, 8]), (1, (), [1]), (0, ("a", "b"), [0]),
])
def test_demo_set_sizes_are_whole_rounds_of_the_labels(num_demos, labels, counts):
    assert demo_counts(num_demos, labels) == counts


@pytest.mark.parametrize("num_demos, labels, pool, counts", [
    # 15 synthetic examples: 16 demos would be every one of them, each set the same set reordered.
    (16, ("a", "b"), 15, [4, 8]), (16, ("a", "b", "c", "d"), 15, [4, 8]), (16, (), 15, [4, 8]),
    # 40 of the user's: room for sets that differ.
    (16, ("a", "b"), 40, [8, 16]), (16, ("a", "b", "c", "d"), 40, [8, 16]), (16, tuple("abcdef"), 40, [6, 12]),
    (16, ("a", "b"), 1, [2]),
])
def test_the_largest_demo_set_takes_at_most_half_the_training_examples(num_demos, labels, pool, counts):
    assert demo_counts(num_demos, labels, pool) == counts


def test_the_demo_count_is_what_the_context_holds():
    prompt = Prompt("Solve.", ("question",), ("answer",))
    train = [{"question": "q" * 700, "answer": "a" * 700} for _ in range(20)]  # about 400 tokens each
    carried = demos_that_fit(prompt, train, train[:3], 4096)
    assert 5 <= carried <= 9
    assert fits(prompt.with_(demos=tuple(train[:carried])), train[:3], 4096)
    assert not fits(prompt.with_(demos=tuple(train[:carried + 1])), train[:3], 4096)


def test_demo_sets_are_label_balanced_drawn_from_training_and_shuffled():
    rng = random.Random(0)
    sets = [draw_demos(TRAIN, 6, "label", ("a", "b", "c"), rng) for _ in range(20)]
    for demos in sets:
        assert Counter(d["label"] for d in demos) == {"a": 2, "b": 2, "c": 2}
        assert all(d in TRAIN for d in demos) and len({d["text"] for d in demos}) == 6
    assert len({tuple(d["label"] for d in demos) for demos in sets}) > 1  # the order varies


def test_a_label_with_too_few_examples_gives_what_it_has():
    train = TRAIN[:4]  # a, b, c, a
    demos = draw_demos(train, 6, "label", ("a", "b", "c"), random.Random(1))
    assert Counter(d["label"] for d in demos) == {"a": 2, "b": 1, "c": 1}


def test_demos_come_from_the_half_of_each_label_most_typical_of_it():
    good = ["a wonderful moving film", "wonderful acting, a moving story", "a wonderful film",
            "moving and wonderful", "the film is wonderful", "simply wonderful"]
    bad = ["a dull boring film", "boring, dull acting", "dull and boring", "the film is boring", "boring story",
           "so dull"]
    train = [{"text": t, "label": "positive"} for t in good] + [{"text": t, "label": "negative"} for t in bad]
    train += [{"text": "a boring dull mess", "label": "positive"},  # a wrong label
              {"text": "tickets at the box office", "label": "negative"}]  # off-topic
    kept = typical_half(train, "label")

    assert Counter(e["label"] for e in kept) == {"positive": 4, "negative": 4}  # half of 7 each, rounded up
    assert {"text": "a boring dull mess", "label": "positive"} not in kept
    assert {"text": "tickets at the box office", "label": "negative"} not in kept
    assert kept == [e for e in train if e in kept]  # in training order
    assert len(typical_half(train, "label", at_least=6)) == 12  # enough of each for a 6-per-label set
    assert typical_half(train[:1], "label") == train[:1]


def test_free_text_demos_come_from_the_half_whose_answers_are_of_the_usual_length():
    dialogue = "A: are you coming tonight B: yes at eight A: great see you there B: bye"
    usual = [{"dialogue": f"{dialogue} {i}", "summary": f"B comes tonight at eight, number {i}."} for i in range(6)]
    odd = [{"dialogue": f"{dialogue} x", "summary": "Yes."},  # far shorter than usual
           {"dialogue": "A: hi B: hello", "summary": "A and B greet each other warmly and talk about their day."},
           {"dialogue": f"{dialogue} y", "summary": dialogue + " and more, restated whole"}]
    train = usual[:3] + odd + usual[3:]
    kept = typical_answers(train, ("dialogue",), ("summary",))

    assert len(kept) == 5 and all(e in usual for e in kept)  # half of nine, rounded up: none of the odd ones
    assert kept == [e for e in train if e in kept]  # in training order
    assert len(typical_answers(train, ("dialogue",), ("summary",), at_least=8)) == 8
    assert typical_answers(train[:1], ("dialogue",), ("summary",)) == train[:1]


def test_a_prompt_too_long_for_the_context_does_not_fit():
    prompt = Prompt("Classify.", ("text",), ("label",), demos=tuple({"text": "word " * 2000, "label": "a"}
                                                                     for _ in range(2)))
    assert not fits(prompt, [{"text": "short"}], context_tokens=4096)
    assert fits(prompt.with_(demos=()), [{"text": "short"}], context_tokens=4096)


def test_races_double_the_rows_and_end_on_the_whole_validation_set():
    assert rungs(25) == [7, 14, 25]
    assert rungs(4) == [4]
    assert rungs(100) == [25, 50, 100]
    # 8 prompts on 25 rows: 8 x 7, then 4 x 7 more, then 2 x 11 more
    assert race_cost(8, 25) == 8 * 7 + 4 * 7 + 2 * 11 < 8 * 25


RACE_VALID = [{"text": f"film {i}", "label": "positive" if i % 2 else "negative"} for i in range(16)]


def race_answer(prompt, params):
    """A prompt saying RIGHT is always right on RACE_VALID, WRONG always wrong, others right on
    even films only."""
    truth = {e["text"]: e["label"] for e in RACE_VALID}
    query = prompt.rsplit("Text: ", 1)[-1].split("\n")[0]
    if "RIGHT" in prompt or ("WRONG" not in prompt and int(query.split()[-1]) % 2 == 0):
        return truth[query]
    return "positive" if truth[query] == "negative" else "negative"


def race_task(instruction: str) -> tuple[OptimizationTask, UsageMeter]:
    """A task on RACE_VALID starting from `instruction`, scored by the scripted model, and the
    meter counting its calls."""
    meter = UsageMeter()
    evaluator = Evaluator(LM(ModelSettings(FAKE_MODEL), meter), Metric("classification", "accuracy"),
                          show_progress=False)
    spec = TaskSpec("Classify.", ("text",), ("label",), "classification", ("positive", "negative"))
    start = Prompt(instruction, ("text",), ("label",), single_line=True, labels=spec.labels)
    return OptimizationTask(spec, start, [], RACE_VALID, evaluator, Objective(0.0), evaluator.lm,
                            OptimizationConfig(raw_input="x")), meter


def test_a_race_drops_the_worse_half_early_and_scores_survivors_on_everything(fake_llm):
    fake_llm.rules = [("Text:", race_answer)]
    task, meter = race_task("Classify.")
    start = task.start
    prompts = [start.with_(instruction=f"{word} classify.") for word in ("RIGHT", "WRONG", "MAYBE", "WRONG again")]

    stages = Race(task).run(prompts, "test")

    # 4 prompts on 4 rows, the better 2 on 8, the best on all 16
    assert [len(stage) for stage in stages] == [4, 2, 1]
    assert {c.prompt.instruction for c in stages[1]} == {"RIGHT classify.", "MAYBE classify."}
    assert [(c.prompt.instruction, c.score, len(c.evaluation.per_example)) for c in stages[-1]] == \
        [("RIGHT classify.", 1.0, 16)]
    assert meter.snapshot().calls == 4 * 4 + 2 * 4 + 1 * 8 < 4 * 16


def test_the_incumbent_runs_in_every_stage_without_taking_a_survivors_place(fake_llm):
    fake_llm.rules = [("Text:", race_answer)]
    task, meter = race_task("WRONG start.")
    start = task.start
    task.score(start)  # the incumbent: answered on every row before the race
    before = meter.snapshot().calls
    prompts = [start, *(start.with_(instruction=f"{w} classify.") for w in ("RIGHT", "WRONG", "MAYBE", "WRONG too"))]

    stages = Race(task).run(prompts, "test", incumbent=True)

    # the (worst) incumbent is in every stage; of the 4 others the better 2, then the best, go on
    assert [c.prompt.instruction for c in stages[1]][0] == "WRONG start." and len(stages[1]) == 3
    assert [c.prompt.instruction for c in stages[-1]] == ["WRONG start.", "RIGHT classify."]
    assert meter.snapshot().calls - before == race_cost(4, 16)


def test_a_prompt_sure_of_its_place_goes_on_while_a_slow_one_is_still_scored(fake_llm):
    # Four prompts on 4 rows, two threads. "SLOW" answers take 0.3 s each; the others are instant.
    # RIGHT is sure to be among the better two once two of the others are scored (it answers all
    # right, and ties go to the lower index): its 4 next rows are asked while SLOW still answers.
    asked: list[tuple[str, int, float]] = []

    def answer(prompt, params):
        query = prompt.rsplit("Text: ", 1)[-1].split("\n")[0]
        if "SLOW" in prompt:
            time.sleep(0.3)
        asked.append(("RIGHT" if "RIGHT" in prompt else "SLOW" if "SLOW" in prompt else "other",
                      int(query.split()[-1]), time.monotonic()))
        return race_answer(prompt, params)

    fake_llm.rules = [("Text:", answer)]
    task, meter = race_task("Classify.")
    task = dataclasses.replace(task, config=dataclasses.replace(task.config, num_threads=2))
    prompts = [task.start.with_(instruction=f"{word} classify.") for word in ("RIGHT", "WRONG", "MAYBE", "SLOW")]

    stages = Race(task).run(prompts, "test")

    # the same race as one whose stages wait for all their prompts (see the first race test)
    assert [len(stage) for stage in stages] == [4, 2, 1]
    assert [c.prompt.instruction for c in stages[-1]] == ["RIGHT classify."]
    assert meter.snapshot().calls == 4 * 4 + 2 * 4 + 1 * 8
    slow_done = max(t for who, row, t in asked if who == "SLOW")
    right_next = min(t for who, row, t in asked if who == "RIGHT" and row >= 4)
    assert right_next < slow_done


def test_a_prompt_goes_on_only_when_the_unscored_ones_cannot_push_it_out():
    def scored(value: float) -> Candidate:
        return Candidate(Prompt("x", ("text",), ("label",)), Evaluation(value, (value,), ({},)), value)

    # 4 new prompts, the better 2 go on; the incumbent (index 0) always does
    assert sure_to_go_on({0: scored(0.1), 1: scored(0.9), 2: scored(0.5)}, 1, 4, set()) == [0]  # 2 unscored
    assert sure_to_go_on({0: scored(0.1), 1: scored(0.9), 2: scored(0.5), 3: scored(0.2)}, 1, 4, {0}) == [1]
    assert sure_to_go_on({0: scored(0.1), 1: scored(0.9), 2: scored(0.5), 3: scored(0.2), 4: scored(0.7)},
                         1, 4, {0, 1}) == [4]
    # a tie goes to the lower index, as in a stable sort
    assert sure_to_go_on({1: scored(0.5), 2: scored(0.5), 3: scored(0.5), 4: scored(0.5)}, 1, 4, set()) == [1, 2]


def scored_race_task(valid) -> OptimizationTask:
    """A label task on `valid` whose model scores labels (`SCORING_MODEL`)."""
    from conftest import SCORING_MODEL

    evaluator = Evaluator(LM(ModelSettings(SCORING_MODEL), UsageMeter()), Metric("classification", "accuracy"),
                          show_progress=False)
    spec = TaskSpec("Classify.", ("text",), ("label",), "classification", ("positive", "negative"))
    start = Prompt("Classify.", ("text",), ("label",), single_line=True, labels=spec.labels)
    return OptimizationTask(spec, start, [], list(valid), evaluator, Objective(0.0), evaluator.lm,
                            OptimizationConfig(raw_input="x"))


def leaning(margins: dict[str, float]):
    """Label scores giving `positive` the review's margin over `negative`."""
    def score(prompt, option):
        query = prompt.rsplit("Text: ", 1)[-1].split("\n")[0]
        return margins[query] if option == "positive" else 0.0
    return score


def test_a_prompt_goes_calibrated_unless_its_raw_answers_are_clearly_better(scoring):
    # Balanced rows, a model leaning positive: raw, every review it is unsure of comes out
    # positive; calibrated, one sure positive (margin 0.1) turns negative, the rest right.
    # One row is no evidence against calibration, which the test sets say is worth far more.
    margins = {"p1": 3.0, "p2": 3.0, "p3": 3.0, "p4": 0.1, "n1": -1.0, "n2": -1.0, "n3": -1.0, "n4": -1.0}
    valid = [{"text": t, "label": "positive" if t[0] == "p" else "negative"} for t in margins]
    scoring.score = leaning(margins)
    task = scored_race_task(valid)

    [one] = Race(task).run([task.start], "test")[-1]

    assert one.prompt.calibration and "calibrated" in one.change
    assert one.score == 7 / 8  # one row below the raw prompt's 8 of 8, kept all the same

    # All rows positive and the model says so: calibration, levelling the labels over the rows,
    # would call the less sure half negative. Raw answers clearly better: no calibration.
    margins = {f"p{i}": 1.0 + i / 10 for i in range(12)}
    scoring.score = leaning(margins)
    task = scored_race_task([{"text": t, "label": "positive"} for t in margins])

    [one] = Race(task).run([task.start], "test")[-1]

    assert not one.prompt.calibration and one.score == 1.0


# Both prompts answer three of four reviews right. "Sure" gives the right label 0.99 on those and
# 0.007 on the fourth; "measured" 0.73 and 0.38: as mean probabilities of the right label 0.75
# against 0.64, as geometric means (the log score) 0.28 against 0.62.
SURE_AND_MEASURED = {"sure": {"p1": 5.0, "p2": 5.0, "n1": -5.0, "n2": 5.0},
                     "measured": {"p1": 1.0, "p2": 1.0, "n1": -1.0, "n2": 0.5}}


def _rank_sure_and_measured(scoring, synthetic: bool) -> dict[str, float]:
    from conftest import SCORING_MODEL
    from promptomatix.backends.base import Candidate
    from promptomatix.backends.search import rank

    margins = SURE_AND_MEASURED
    scoring.score = lambda prompt, option: margins[prompt.split(".")[0]][prompt.rsplit("Text: ", 1)[-1].split("\n")[0]] \
        if option == "positive" else 0.0
    rows = [{"text": t, "label": "positive" if t[0] == "p" else "negative"} for t in ("p1", "p2", "n1", "n2")]
    evaluator = Evaluator(LM(ModelSettings(SCORING_MODEL), UsageMeter()), Metric("classification", "accuracy"),
                          show_progress=False, synthetic=synthetic)
    ranked = {}
    for name in margins:
        prompt = Prompt(f"{name}. Classify.", ("text",), ("label",), single_line=True, labels=("positive", "negative"))
        evaluation = evaluator.evaluate(prompt, rows)
        assert evaluation.score == 0.75
        ranked[name] = rank(Candidate(prompt, evaluation, evaluation.score))
    return ranked


def test_of_prompts_answering_equally_many_right_one_sure_of_a_wrong_answer_ranks_lower(scoring):
    # On the user's rows, the log score, which a prompt cannot game by sureness, ranks
    # "measured" first; the mean probability of the right label would rank "sure" first.
    ranked = _rank_sure_and_measured(scoring, synthetic=False)
    assert ranked["measured"] > ranked["sure"]


def test_on_synthetic_rows_one_row_against_a_sure_prompt_does_not_sink_it(scoring):
    # Synthetic rows are labelled by a model, and some labels are wrong: there, "n2" may well be
    # positive. The mean probability, which one row moves by at most a quarter here, ranks the
    # prompt that is sure of the other three first; the log score would let that row decide.
    ranked = _rank_sure_and_measured(scoring, synthetic=True)
    assert ranked["sure"] > ranked["measured"]
