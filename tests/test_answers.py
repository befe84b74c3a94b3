"""Reading a classification answer as a label, and calibrating label scores."""

from __future__ import annotations

import math
import random

import pytest

from promptomatix.scoring.labels import (
    batch_calibration,
    best_label,
    fitted_calibration,
    label_probability,
    read_label,
    separable,
)

LABELS = ("positive", "negative")
TOPICS = ("World", "Sports", "Business", "Sci/Tech")


@pytest.mark.parametrize("text, label", [
    ("positive", "positive"),
    ("  Negative.\nThe review is", "negative"),
    ('"positive"', "positive"),
    ('{"label": "negative"}', "negative"),
    ("Positive, clearly", "positive"),
    ("I think it is negative", "negative"),
    ("postive", "positive"),
    ("sci/tech", "Sci/Tech"),
    ("Sports news", "Sports"),
])
def test_free_text_naming_a_label_reads_as_that_label(text, label):
    labels = TOPICS if label in TOPICS else LABELS
    assert read_label(text, labels) == label


@pytest.mark.parametrize("text", ["", "I don't like it.", "100% maybe", "positive or negative?", "ok"])
def test_text_naming_no_label_or_two_is_not_guessed(text):
    assert read_label(text, LABELS) is None


def test_a_label_inside_a_longer_label_is_not_a_second_label():
    assert read_label("It is very positive.", ("positive", "very positive", "negative")) == "very positive"


def test_batch_calibration_removes_a_label_bias_the_scores_share():
    # The model prefers "positive" by 2 nats whatever the input; the inputs' own preference is small.
    rows = [[-1.0, -3.2], [-1.2, -2.9], [-1.1, -3.3], [-0.9, -2.8]]
    assert {best_label(LABELS, row) for row in rows} == {"positive"}
    offsets = batch_calibration(rows)
    assert [best_label(LABELS, row, offsets) for row in rows] == ["positive", "negative", "positive", "negative"]


@pytest.mark.parametrize("sureness", [1.0, 0.5])
def test_fitted_calibration_finds_the_bias_a_model_adds_to_every_input(sureness):
    # 800 inputs whose labels follow the odds the model would give without its lean; it adds
    # 2 nats to the first label and 1 to the second whatever the input, and its scores are
    # `sureness` times those odds (a small model's are about half as sure as they should be).
    rng = random.Random(0)
    rows, answers = [], []
    for _ in range(800):
        fair = [rng.gauss(0.0, 1.5) for _ in range(3)]
        answers.append(rng.choices(range(3), [math.exp(v) for v in fair])[0])
        rows.append([sureness * fair[0] + 2.0, sureness * fair[1] + 1.0, sureness * fair[2]])
    offsets = fitted_calibration(rows, answers)
    assert [o - offsets[2] for o in offsets] == pytest.approx([2.0, 1.0, 0.0], abs=0.25)


def test_a_fitted_calibration_keeps_a_label_that_is_really_more_common():
    # Seven reviews in ten are positive, and the model is right to lean to "positive": batch
    # calibration takes that lean for a bias and removes it; the fitted offsets keep it.
    rng = random.Random(0)
    rows, answers = [], []
    for _ in range(300):
        fair = [rng.gauss(1.5, 1.5), rng.gauss(0.0, 1.5)]
        answers.append(rng.choices(range(2), [math.exp(v) for v in fair])[0])
        rows.append(fair)

    def right(offsets):
        return sum(best_label(LABELS, row, offsets) == LABELS[a] for row, a in zip(rows, answers))

    assert right(fitted_calibration(rows, answers)) > right(batch_calibration(rows)) + 20


def test_fitted_calibration_has_no_answer_when_some_offsets_get_every_row_right():
    # Every positive review scores "positive" at least 1 nat above "negative", every negative one
    # less: any offset in between answers all of them right, and the rows cannot say which.
    rows = [[-0.1, -2.5], [-0.3, -1.5], [-1.0, -0.9], [-2.0, -0.2], [-1.5, -0.4]]
    assert separable(rows, [0, 0, 1, 1, 1])
    assert fitted_calibration(rows, [0, 0, 1, 1, 1]) is None
    # One review the other way (a positive scored as negative as the negatives) pins them.
    assert not separable([*rows, [-1.8, -0.3]], [0, 0, 1, 1, 1, 0])
    offsets = fitted_calibration([*rows, [-1.8, -0.3]], [0, 0, 1, 1, 1, 0])
    assert offsets is not None and -1.0 < offsets[0] - offsets[1] < 1.5


def test_separable_rows_of_three_labels_need_every_pair_of_labels_apart():
    # Each pair of labels can be told apart on its own rows, but the three asks go round in a
    # circle: offset 0 - offset 1 < 1, offset 1 - offset 2 < 1, offset 2 - offset 0 < -2.5,
    # whose sum says 0 < -0.5.
    rows = [[0.0, -1.0, -9.0], [-9.0, 0.0, -1.0], [2.5, -9.0, 0.0]]
    assert not separable(rows, [0, 1, 2])
    assert separable([*rows[:2], [1.5, -9.0, 0.0]], [0, 1, 2])  # 0 < 0.5: offsets 0, -0.8, -1.6


def test_fitted_calibration_needs_every_label_as_an_answer():
    with pytest.raises(ValueError, match="every label"):
        fitted_calibration([[-0.1, -2.0], [-0.3, -1.5]], [0, 0])


def test_label_probability_is_a_distribution_over_the_labels():
    scores = [-0.5, -2.0]
    total = sum(label_probability(LABELS, scores, (), label) for label in LABELS)
    assert total == pytest.approx(1.0)
    assert label_probability(LABELS, scores, (), "positive") == pytest.approx(1 / (1 + math.exp(-1.5)))
    assert label_probability(LABELS, scores, (), "neutral") == 0.0
