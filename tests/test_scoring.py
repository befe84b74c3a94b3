"""Metrics (real `evaluate` modules and user callables), their registry, and the objective."""

from __future__ import annotations

import math
import textwrap

import pytest

from promptomatix.errors import ConfigError
from promptomatix.scoring import builtin_metrics_dir, Metric, METRICS, Objective, prompt_words, register_metric
from promptomatix.task.types import get_task_type, TASK_TYPES

BUILTINS = ["brevity", "chrf", "classification", "exact_match", "numeric_match", "rouge_l", "sari", "token_f1"]

# name -> (score key, predictions, references, expected per-example scores)
CASES = {
    "classification": ("accuracy", ["Positive.", "negative", "positive"], ["positive", "positive", "positive"],
                       [1.0, 0.0, 1.0]),
    "exact_match": ("exact_match", ["  Paris ", "Lyon"], ["paris", "Paris"], [1.0, 0.0]),
    "token_f1": ("token_f1", ["the cat sat", "dog"], ["cat sat", "cat"], [1.0, 0.0]),
    "rouge_l": ("rouge_l", ["the cat sat on the mat", "blue sky"], ["the cat sat on the mat", "green grass"],
                [1.0, 0.0]),
    "chrf": ("chrf", ["le chat est noir", "xyz"], ["le chat est noir", "bonjour"], [1.0, 0.0]),
    "numeric_match": ("numeric_match", ["The answer is 1,234.", "about 7"], ["1234", "8"], [1.0, 0.0]),
    "brevity": ("brevity", ["yes", "yes it is so"], ["yes", "no"], [1.0, 0.25]),
    # the rewrite the reference makes, then a copy of the source (tests/metrics/test_sari.py)
    "sari": ("sari", ["the cat sat on the mat", "the feline perched upon the mat"], ["the cat sat on the mat"] * 2,
             [1.0, 103 / 252]),
}
# The task's input, for the metrics that read it.
SOURCES = {"sari": ["the feline perched upon the mat"] * 2}


@pytest.fixture
def metrics_registry(monkeypatch):
    """The real metric registry; what a test registers is gone after it."""
    METRICS.names()  # built-ins and entry points loaded first
    monkeypatch.setattr(METRICS, "_items", dict(METRICS._items))
    return METRICS


def write_module(folder, name, body):
    """An `evaluate` module folder `folder/name/name.py` whose `_compute` is `body`."""
    path = folder / name
    path.mkdir(parents=True)
    (path / f"{name}.py").write_text(textwrap.dedent('''
        import datasets
        import evaluate


        class Module(evaluate.Metric):
            def _info(self):
                return evaluate.MetricInfo(
                    description="test metric", citation="", inputs_description="",
                    features=datasets.Features(
                        {"predictions": datasets.Value("string"), "references": datasets.Value("string")}),
                )

            def _compute(self, predictions, references):
        ''') + textwrap.indent(textwrap.dedent(body), " " * 8))
    return path


def test_every_builtin_metric_is_registered():
    assert set(BUILTINS) <= set(METRICS.names())
    modules = sorted(p.name for p in builtin_metrics_dir().iterdir() if (p / f"{p.name}.py").is_file())
    assert modules == BUILTINS


@pytest.mark.parametrize("name", BUILTINS)
def test_each_builtin_metric_loads_and_scores(name):
    key, predictions, references, expected = CASES[name]

    scores = Metric(name, key).score(predictions, references, sources=SOURCES.get(name))

    assert scores.per_example == pytest.approx(expected)
    if name == "chrf":  # a corpus-level score, not the mean of the sentence scores
        assert 0.0 < scores.score < 1.0
    else:
        assert scores.score == pytest.approx(sum(expected) / len(expected))
    assert "per_example" not in scores.details
    assert scores.details[key] == scores.score


def test_a_second_key_of_a_metric_is_available():
    scores = Metric("classification", "macro_f1").score(["a", "a", "b"], ["a", "b", "b"])
    assert scores.score == pytest.approx(2 / 3)  # a: F1 2/3, b: F1 2/3
    assert scores.details["accuracy"] == pytest.approx(2 / 3)


def test_a_missing_score_key_is_a_config_error():
    with pytest.raises(ConfigError, match="'classification' returned no 'f1'.*accuracy"):
        Metric("classification", "f1").score(["a"], ["a"])


def test_an_unknown_metric_name_lists_the_choices():
    with pytest.raises(ConfigError, match="unknown metric 'no_such_metric'.*classification.*token_f1"):
        Metric("no_such_metric", "score")


def test_a_folder_in_the_working_directory_does_not_shadow_a_registered_metric(tmp_path, monkeypatch):
    (tmp_path / "classification").mkdir()
    (tmp_path / "classification" / "reviews.csv").write_text("text,label\n")
    monkeypatch.chdir(tmp_path)

    assert Metric("classification", "accuracy").score(["a"], ["a"]).score == 1.0


def test_a_callable_metric_without_per_example_scores(metrics_registry):
    seen = []

    def length_ratio(predictions, references):
        seen.append(len(predictions))
        ratios = [min(len(p), len(r)) / max(len(p), len(r), 1) for p, r in zip(predictions, references)]
        return {"length_ratio": sum(ratios) / len(ratios)}

    assert register_metric("length_ratio", length_ratio) is length_ratio
    assert "length_ratio" in METRICS.names()

    scores = Metric("length_ratio", "length_ratio").score(["abcd", "ab", "abcd"], ["abcd", "abcd", "ab"])

    assert scores.per_example == [1.0, 0.5, 0.5]  # computed one example at a time
    assert scores.score == pytest.approx(2 / 3)
    assert seen == [3, 1, 1, 1]


def test_a_callable_metric_with_its_own_per_example_scores_is_called_once(metrics_registry):
    calls = []

    def scorer(predictions, references):
        calls.append(1)
        return {"hit": 0.5, "per_example": [1, 0]}

    register_metric("hit", scorer)

    scores = Metric("hit", "hit").score(["x", "y"], ["x", "z"])

    assert (scores.score, scores.per_example) == (0.5, [1.0, 0.0])
    assert len(calls) == 1


def test_an_evaluate_module_folder_can_be_registered(metrics_registry, tmp_path):
    path = write_module(tmp_path, "starts_same", '''
        scores = [float(p[:1].lower() == r[:1].lower()) for p, r in zip(predictions, references)]
        return {"starts_same": sum(scores) / len(scores), "per_example": scores}
    ''')

    register_metric("starts_same", str(path))

    scores = Metric("starts_same", "starts_same").score(["Apple", "berry", "cherry", "date"],
                                                       ["avocado", "banana", "kiwi", "lime"])
    assert scores.per_example == [1.0, 1.0, 0.0, 0.0]
    assert scores.score == 0.5


def test_a_module_without_per_example_scores_gets_them_computed(metrics_registry, tmp_path):
    path = write_module(tmp_path, "same_length", '''
        scores = [float(len(p) == len(r)) for p, r in zip(predictions, references)]
        return {"same_length": sum(scores) / len(scores)}
    ''')
    register_metric("same_length", str(path))

    scores = Metric("same_length", "same_length").score(["abc", "ab", "xyz"], ["def", "abc", "uvw"])

    assert scores.per_example == [1.0, 0.0, 1.0]


@pytest.mark.parametrize("kind", ["missing", "empty folder", "wrong file name", "a file"])
def test_a_path_that_is_not_an_evaluate_module_is_a_config_error(metrics_registry, tmp_path, kind):
    path = tmp_path / "mine"
    if kind == "empty folder":
        path.mkdir()
    elif kind == "wrong file name":
        path.mkdir()
        (path / "metric.py").write_text("")
    elif kind == "a file":
        path = tmp_path / "mine.py"
        path.write_text("")

    with pytest.raises(ConfigError, match="not an evaluate module folder"):
        register_metric("mine", str(path))
    assert "mine" not in METRICS.names()


def test_a_name_clash_is_refused_unless_replacing(metrics_registry):
    mine = lambda predictions, references: {"accuracy": 1.0}  # noqa: E731
    builtin = METRICS.get("classification")

    with pytest.raises(ConfigError, match="'classification' is already registered"):
        register_metric("classification", mine)
    assert METRICS.get("classification") == builtin

    register_metric("classification", mine, replace=True)
    assert Metric("classification", "accuracy").score(["a"], ["b"]).score == 1.0


def test_the_objective_penalizes_length():
    text = "one two three four five six seven eight nine ten"
    assert prompt_words(text) == 10
    assert Objective(0.1)(0.8, text) == pytest.approx(0.8 * math.exp(-1.0))
    assert Objective(0.0)(0.8, text) == 0.8
    assert Objective()(0.8, text) == pytest.approx(0.8 * math.exp(-0.0001 * 10))
    # gluing words together does not make a prompt shorter
    assert prompt_words("classify_the_sentiment_of-a.movie review: {{review_text}}") == 9
    assert Objective(0.01)(1.0, "short prompt") > Objective(0.01)(1.0, text)
    assert Objective(0.01)(0.0, "short prompt") == 0.0


@pytest.mark.parametrize("task_type", TASK_TYPES.names())
def test_every_task_type_names_a_metric_that_yields_its_score_key(task_type):
    task = get_task_type(task_type)
    assert task.metric in METRICS.names()

    scores = Metric(task.metric, task.score_key).score(["42", "blue sky"], ["42", "red car"], sources=["42", "blue sky"])

    assert scores.details[task.score_key] == scores.score
    assert scores.per_example[0] == pytest.approx(1.0)
    assert len(scores.per_example) == 2


def test_a_composite_metric_is_the_weighted_mean_of_its_parts():
    from promptomatix.scoring import build_metric, CompositeMetric

    metric = build_metric("classification", "accuracy", {"classification": 0.7, "brevity": 0.3})
    assert isinstance(metric, CompositeMetric)
    result = metric.score(["positive", "negative indeed, very much"], ["positive", "negative"])
    # accuracy: 1, 0 -> 0.5; brevity: 1, 1/4 -> 0.625
    assert result.per_example == pytest.approx([1.0, 0.7 * 0 + 0.3 * 0.25])
    assert result.score == pytest.approx(0.7 * 0.5 + 0.3 * 0.625)
    assert result.details == pytest.approx({"classification:accuracy": 0.5, "brevity:brevity": 0.625})


def test_a_composite_part_can_name_its_key():
    from promptomatix.scoring import build_metric

    metric = build_metric("classification", "accuracy", {"classification:macro_f1": 1.0})
    assert metric.score(["a", "a", "b"], ["a", "b", "b"]).score == pytest.approx((2 / 3 + 2 / 3) / 2)


@pytest.mark.parametrize(("weights", "message"), [
    ({"nope": 1.0}, "unknown metric 'nope'"),
    ({"classification": 0}, "must be a positive number"),
    ({"classification": -1}, "must be a positive number"),
])
def test_bad_metric_weights_are_config_errors(weights, message):
    from promptomatix.config import OptimizationConfig
    from promptomatix.config.preflight import checked

    with pytest.raises(ConfigError, match=message):
        checked(OptimizationConfig(raw_input="x", metric_weights=weights))
