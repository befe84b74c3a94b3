"""Tests for the local offline `evaluate` metric modules in /metrics."""

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_EVALUATE_OFFLINE", "1")

import evaluate  # noqa: E402

METRICS_DIR = Path(__file__).resolve().parents[2] / "metrics"
NAMES = ["exact_match", "classification", "token_f1", "rouge_l", "chrf", "numeric_match"]


def _load(name):
    return evaluate.load(str(METRICS_DIR / name), keep_in_memory=True)


@pytest.fixture(scope="module")
def metrics():
    return {name: _load(name) for name in NAMES}


def test_no_init_inside_metric_folders():
    assert (METRICS_DIR / "__init__.py").is_file()
    for name in NAMES:
        assert (METRICS_DIR / name / f"{name}.py").is_file()
        assert not (METRICS_DIR / name / "__init__.py").exists()


@pytest.mark.parametrize("name", NAMES)
def test_empty_input_raises(metrics, name):
    with pytest.raises(ValueError, match="no predictions to score"):
        metrics[name].compute(predictions=[], references=[])


@pytest.mark.parametrize("name", NAMES)
def test_scores_in_range_and_per_example_length(metrics, name):
    preds = ["The answer is 42.", "blue", "", "a cat sat on the mat"]
    refs = ["42", "Blue", "something", "the cat sat"]
    result = metrics[name].compute(predictions=preds, references=refs)
    assert len(result["per_example"]) == len(preds)
    for key, value in result.items():
        values = value if key == "per_example" else [value]
        assert all(isinstance(v, float) and 0.0 <= v <= 1.0 for v in values), (key, value)


def test_exact_match(metrics):
    result = metrics["exact_match"].compute(
        predictions=["  Hello   World! ", '"Paris"', "Positive.", "Paris, France"],
        references=["hello world", "paris", "positive", "Paris"],
    )
    assert result["per_example"] == [1.0, 1.0, 1.0, 0.0]
    assert result["exact_match"] == pytest.approx(0.75)


def test_classification_imbalanced(metrics):
    # pos: tp=4, 5 predicted, 4 true -> F1 = 8/9; neg: tp=0 -> F1 = 0.  macro = 4/9.
    result = metrics["classification"].compute(
        predictions=["Positive.", "positive", "POSITIVE", " positive ", "positive"],
        references=["positive", "positive", "positive", "positive", "negative"],
    )
    assert result["accuracy"] == pytest.approx(0.8)
    assert result["macro_f1"] == pytest.approx(4 / 9)
    assert result["per_example"] == [1.0, 1.0, 1.0, 1.0, 0.0]


def test_classification_ignores_labels_only_in_predictions(metrics):
    # labels from references only: a -> F1 1, b -> F1 0 ("maybe" is not averaged in).
    result = metrics["classification"].compute(predictions=["a", "maybe"], references=["a", "b"])
    assert result["accuracy"] == pytest.approx(0.5)
    assert result["macro_f1"] == pytest.approx(0.5)


def test_token_f1(metrics):
    # pred tokens [cat, sat, on, mat], ref [cat, sat]: P = 1/2, R = 1 -> F1 = 2/3.
    result = metrics["token_f1"].compute(
        predictions=["The cat sat on the mat!", "the", "", "dog"],
        references=["a cat sat", "an", "x", "cat"],
    )
    assert result["per_example"] == pytest.approx([2 / 3, 1.0, 0.0, 0.0])
    assert result["token_f1"] == pytest.approx((2 / 3 + 1.0) / 4)


def test_rouge_l(metrics):
    result = metrics["rouge_l"].compute(
        predictions=["the quick brown fox", "alpha beta", "the quick brown fox jumps"],
        references=["the quick brown fox", "gamma delta", "the slow brown dog jumps"],
    )
    identical, disjoint, partial = result["per_example"]
    assert identical == pytest.approx(1.0)
    assert disjoint == 0.0
    assert 0.0 < partial < 1.0
    assert result["rouge_l"] == pytest.approx((identical + disjoint + partial) / 3)


def test_chrf(metrics):
    sentence = "The committee approved the new budget on Tuesday."
    same = metrics["chrf"].compute(predictions=[sentence], references=[sentence])
    assert same["chrf"] == pytest.approx(1.0)
    assert same["per_example"] == pytest.approx([1.0])

    perturbed = metrics["chrf"].compute(
        predictions=["The comittee aproved a budget on Wednesday."], references=[sentence]
    )
    assert 0.0 < perturbed["chrf"] < 1.0
    assert 0.0 < perturbed["per_example"][0] < 1.0


def test_numeric_match(metrics):
    result = metrics["numeric_match"].compute(
        predictions=[
            "The answer is 1,234.",
            "-3.50",
            "no number",
            "First 5, then 7, so the total is $72.",
            "It is 50%",
            "3/4",
            "41",
        ],
        references=["1234", "-3.5", "3", "72", "50", "0.75", "42"],
    )
    assert result["per_example"] == [1.0, 1.0, 0.0, 1.0, 1.0, 1.0, 0.0]
    assert result["numeric_match"] == pytest.approx(5 / 7)


def test_brevity_rewards_answers_no_longer_than_the_reference():


    brevity = evaluate.load(str(METRICS_DIR / "brevity"), keep_in_memory=True)
    result = brevity.compute(predictions=["yes", "yes it is so", ""], references=["yes", "yes", "yes"])
    assert result["per_example"] == [1.0, 0.25, 0.0]
    assert result["brevity"] == pytest.approx(1.25 / 3)
