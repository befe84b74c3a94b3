"""The evaluator: task-model predictions scored by a real metric, with a per-prompt cache."""

from __future__ import annotations

import threading

import litellm
import pytest

from conftest import FAKE_MODEL
from promptomatix.config import ModelSettings
from promptomatix.errors import LLMError
from promptomatix.models.lm import LM
from promptomatix.models.usage import UsageMeter
from promptomatix.scoring import Metric
from promptomatix.scoring.evaluator import Evaluator
from promptomatix.task.prompt import Prompt

EXAMPLES = [
    {"text": "wonderful from start to end", "label": "positive"},
    {"text": "a boring mess of a movie", "label": "negative"},
    {"text": "moving and beautifully shot", "label": "positive"},
    {"text": "the worst script this year", "label": "negative"},
]
PROMPT = Prompt("Classify the sentiment of the review.", ("text",), ("label",))


@pytest.fixture(scope="module")
def accuracy():
    return Metric("classification", "accuracy")


def make_evaluator(metric, threads=2):
    return Evaluator(LM(ModelSettings(model=FAKE_MODEL), UsageMeter(), backoff=0), metric,
                     num_threads=threads, show_progress=False)


def always(label):
    return [("Text:", label)]


def test_scores_with_per_example_values(fake_llm, accuracy):
    fake_llm.rules = always("Positive.")  # normalized by the metric: right for the positive reviews

    evaluation = make_evaluator(accuracy).evaluate(PROMPT, EXAMPLES)

    assert evaluation.score == 0.5
    assert evaluation.per_example == (1.0, 0.0, 1.0, 0.0)
    assert evaluation.predictions == ({"label": "Positive."},) * 4


def test_each_example_is_rendered_into_the_prompt(fake_llm, accuracy):
    fake_llm.rules = [(e["text"], e["label"]) for e in EXAMPLES]

    evaluation = make_evaluator(accuracy).evaluate(PROMPT, EXAMPLES)

    assert evaluation.score == 1.0
    assert sorted(c["prompt"] for c in fake_llm.calls) == sorted(PROMPT.render(e) for e in EXAMPLES)


def test_the_same_prompt_and_inputs_never_call_the_model_twice(fake_llm, accuracy):
    fake_llm.rules = always("positive")
    evaluator = make_evaluator(accuracy)

    first = evaluator.evaluate(PROMPT, EXAMPLES)
    again = evaluator.evaluate(PROMPT, EXAMPLES)
    assert len(fake_llm.calls) == len(EXAMPLES)
    assert again == first

    evaluator.evaluate(PROMPT.with_(instruction="Another instruction."), EXAMPLES[:2])
    assert len(fake_llm.calls) == len(EXAMPLES) + 2  # a new prompt is a new question


def test_repeated_inputs_in_one_set_are_answered_once(fake_llm, accuracy):
    fake_llm.rules = always("positive")

    evaluation = make_evaluator(accuracy, threads=1).evaluate(PROMPT, [EXAMPLES[0]] * 3)

    assert len(fake_llm.calls) == 1
    assert evaluation.per_example == (1.0, 1.0, 1.0)


def test_repeated_inputs_are_answered_once_with_threads(fake_llm, accuracy):
    both_in_flight = threading.Barrier(2, timeout=1)

    def answer(prompt, params):
        # A second call for the same inputs, if there is one, arrives while the first is pending.
        try:
            both_in_flight.wait()
        except threading.BrokenBarrierError:
            pass
        return "positive"

    fake_llm.rules = [("Text:", answer)]

    evaluation = make_evaluator(accuracy, threads=2).evaluate(PROMPT, [EXAMPLES[0]] * 2)

    assert len(fake_llm.calls) == 1
    assert evaluation.per_example == (1.0, 1.0)


def test_multiple_output_fields_are_averaged(fake_llm, accuracy):
    prompt = Prompt("Give the sentiment and the topic.", ("text",), ("label", "topic"))
    examples = [
        {"text": "great match last night", "label": "positive", "topic": "sports"},
        {"text": "the election was a farce", "label": "negative", "topic": "politics"},
    ]
    fake_llm.rules = [
        ("great match", "positive\nTopic: sports"),  # both right
        ("election", "negative\nTopic: sports"),  # label right, topic wrong
    ]

    evaluation = make_evaluator(accuracy).evaluate(prompt, examples)

    assert evaluation.per_example == (1.0, 0.5)
    assert evaluation.score == 0.75
    assert evaluation.predictions[1] == {"label": "negative", "topic": "sports"}


def test_a_model_failure_is_an_error_not_a_zero_score(fake_llm, accuracy):
    fake_llm.rules = [("Text:", litellm.AuthenticationError(message="invalid api key", llm_provider="scripted",
                                                            model="fake"))]

    with pytest.raises(LLMError, match="authentication failed"):
        make_evaluator(accuracy).evaluate(PROMPT, EXAMPLES)


def test_a_failed_evaluation_is_not_cached(fake_llm, accuracy):
    fake_llm.rules = [("Text:", litellm.AuthenticationError(message="invalid api key", llm_provider="scripted",
                                                            model="fake"))]
    evaluator = make_evaluator(accuracy, threads=1)
    with pytest.raises(LLMError):
        evaluator.evaluate(PROMPT, EXAMPLES)

    fake_llm.rules = always("negative")
    assert evaluator.evaluate(PROMPT, EXAMPLES).score == 0.5


def test_calibration_on_rows_mostly_of_one_label_does_not_take_that_label_for_a_bias(scoring, accuracy):
    from conftest import SCORING_MODEL

    # Eight positive reviews, two negative; the model reads them right (margins +1.5, -1.5) with
    # no lean. Calibrated on all ten rows, the positives' weight would pass for a bias towards
    # "positive" and turn a weakly positive review negative; a balanced part sees no bias.
    margins = {**{f"good {i}": 1.5 for i in range(7)}, "fairly good": 0.4, "bad 1": -1.5, "bad 2": -1.5}
    rows = [{"text": t, "label": "positive" if m > 0 else "negative"} for t, m in margins.items()]
    scoring.score = lambda prompt, option: margins[prompt.rsplit("Text: ", 1)[-1].split("\n")[0]] \
        if option == "positive" else 0.0
    evaluator = Evaluator(LM(ModelSettings(SCORING_MODEL), UsageMeter()), accuracy, show_progress=False)
    prompt = Prompt("Classify.", ("text",), ("label",), single_line=True, labels=("positive", "negative"))

    plain = evaluator.evaluate(prompt, rows)
    calibrated, evaluation = evaluator.calibrated(prompt, rows, plain)

    assert plain.score == 1.0
    assert evaluation.score == 1.0 and calibrated.calibration
    assert calibrated.calibration[0] - calibrated.calibration[1] == pytest.approx(0.0, abs=0.2)


def test_a_calibration_fitted_to_labelled_rows_asks_the_model_nothing_more(scoring, accuracy):
    from conftest import SCORING_MODEL
    from promptomatix.scoring.labels import fitted_calibration

    # The model leans to "positive" by 2 nats: uncalibrated, every review is positive. It misreads
    # "good 3" (scored as negative as the negatives), so no offset gets every review right.
    margins = {"good 1": 1.0, "good 2": 0.5, "good 3": -1.2, "bad 1": -1.0, "bad 2": -0.5, "bad 3": -1.5}
    rows = [{"text": t, "label": "positive" if t.startswith("good") else "negative"} for t in margins]
    scoring.score = lambda prompt, option: margins[prompt.rsplit("Text: ", 1)[-1].split("\n")[0]] + 2.0 \
        if option == "positive" else 0.0
    meter = UsageMeter()
    evaluator = Evaluator(LM(ModelSettings(SCORING_MODEL), meter), accuracy, show_progress=False)
    prompt = Prompt("Classify.", ("text",), ("label",), single_line=True, labels=("positive", "negative"))
    plain = evaluator.evaluate(prompt, rows)
    calls = meter.snapshot().calls

    fitted, evaluation = evaluator.fitted(prompt, rows, plain)

    assert fitted.calibration == pytest.approx(fitted_calibration(plain.scores, [0, 0, 0, 1, 1, 1]))
    assert fitted.calibration != pytest.approx(evaluator.calibrated(prompt, rows, plain)[0].calibration)
    assert meter.snapshot().calls == calls
    assert plain.score == 0.5 and evaluation.score > 0.5
    assert evaluation.score == evaluator.evaluate(fitted, rows).score  # as if asked again
    # When some offsets get every row right, nothing pins them: batch calibration instead; and
    # so when a label is no row's right answer.
    for some in ([r for r in rows if r["text"] != "good 3"], rows[3:]):
        evaluation = evaluator.evaluate(prompt, some)
        assert evaluator.fitted(prompt, some, evaluation) == evaluator.calibrated(prompt, some, evaluation)
