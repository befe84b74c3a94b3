"""Reading a classification answer as a label, and calibrating label scores."""

from __future__ import annotations

import math

import pytest

from promptomatix.answers import batch_calibration, best_label, label_probability, read_label

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


def test_label_probability_is_a_distribution_over_the_labels():
    scores = [-0.5, -2.0]
    total = sum(label_probability(LABELS, scores, (), label) for label in LABELS)
    assert total == pytest.approx(1.0)
    assert label_probability(LABELS, scores, (), "positive") == pytest.approx(1 / (1 + math.exp(-1.5)))
    assert label_probability(LABELS, scores, (), "neutral") == 0.0
