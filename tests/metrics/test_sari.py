"""SARI, the rewriting metric that reads the source as well: copies of the input score low."""

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_EVALUATE_OFFLINE", "1")

import evaluate  # noqa: E402

from promptomatix.errors import ConfigError  # noqa: E402
from promptomatix.scoring import CompositeMetric, Metric, metric_shape  # noqa: E402
from promptomatix.task.types import get_task_type  # noqa: E402

METRICS_DIR = Path(__file__).resolve().parents[2] / "metrics"

# Sentence simplification: each source, its reference simplification, and a rewrite close to it.
SOURCES = [
    "The committee postponed the ratification of the treaty owing to unforeseen procedural complications .",
    "Photosynthesis is the process whereby green plants utilise sunlight to synthesise nutrients from water .",
    "The municipality announced that the thoroughfare would be closed for the duration of the festivities .",
]
REFERENCES = [
    "The committee delayed approving the treaty because of unexpected problems .",
    "Photosynthesis is how green plants use sunlight to make food from water .",
    "The city said the road would be closed during the festival .",
]
REWRITES = [
    "The committee delayed the treaty because of unexpected problems .",
    "Photosynthesis is how plants use sunlight to make food from water .",
    "The city said the street would be closed during the festival .",
]


@pytest.fixture(scope="module")
def sari():
    return evaluate.load(str(METRICS_DIR / "sari"), keep_in_memory=True)


def test_a_copy_of_the_source_scores_far_below_a_real_rewrite(sari):
    copies = sari.compute(sources=SOURCES, predictions=SOURCES, references=REFERENCES)
    rewrites = sari.compute(sources=SOURCES, predictions=REWRITES, references=REFERENCES)

    # a copy keeps what it should but deletes and adds nothing: near the 1/3 that an empty
    # deletion (0/0 = 1) gives it, where a rewrite close to the reference scores near 1
    assert max(copies["per_example"]) < 0.5
    assert min(rewrites["per_example"]) > 0.85
    assert rewrites["sari"] - copies["sari"] > 0.4


def test_the_reference_itself_scores_top_and_scores_stay_in_range(sari):
    result = sari.compute(sources=SOURCES, predictions=REFERENCES, references=REFERENCES)

    # not quite 1 where a word repeats: deleting one "the" of three when the reference keeps two
    # counts as a wrong deletion (the paper's n-gram counting, as the HF and original code do)
    assert all(0.98 < s <= 1.0 for s in result["per_example"])
    exact = sari.compute(sources=["the feline perched upon a mat"], predictions=["the cat sat on a mat"],
                         references=["the cat sat on a mat"])
    assert exact["sari"] == pytest.approx(1.0)
    unrelated = sari.compute(sources=SOURCES, predictions=["Bananas are yellow ."] * 3, references=REFERENCES)
    assert all(0.0 <= s < 0.5 for s in unrelated["per_example"])


def test_per_example_has_one_score_per_example_and_the_main_score_is_their_mean(sari):
    predictions = [SOURCES[0], REWRITES[1], REFERENCES[2]]
    result = sari.compute(sources=SOURCES, predictions=predictions, references=REFERENCES)

    assert len(result["per_example"]) == 3
    assert result["sari"] == pytest.approx(sum(result["per_example"]) / 3)
    assert result["per_example"][0] < result["per_example"][1] < result["per_example"][2]


def test_several_references_per_example_give_the_published_value(sari):
    """The example of the HF `sari` metric card (26.95 on its 0-100 scale)."""
    result = sari.compute(
        sources=["About 95 species are currently accepted."],
        predictions=["About 95 you now get in."],
        references=[["About 95 species are currently known.", "About 95 species are now accepted.",
                     "95 species are now accepted."]])

    assert result["sari"] == pytest.approx(0.2695360195360195)


def test_the_rewriting_task_type_optimizes_sari_and_reports_rouge_too():
    task = get_task_type("rewriting")

    assert (task.metric, task.score_key, task.input_fields, task.output_fields) == ("sari", "sari", ("text",),
                                                                                   ("rewrite",))
    assert task.eval_metrics == ("sari", "rouge_l")


# --- sources through promptomatix.scoring --------------------------------------------------------

def _records(predicted):
    examples = [{"text": s, "rewrite": r} for s, r in zip(SOURCES, REFERENCES)]
    return [{"rewrite": p} for p in predicted], examples


def test_score_records_hands_the_first_input_field_to_sari():
    metric = Metric("sari", "sari")
    assert metric.needs_sources

    copies = metric.score_records(*_records(SOURCES), ["rewrite"])
    rewrites = metric.score_records(*_records(REWRITES), ["rewrite"])

    assert len(copies.per_example) == 3
    assert max(copies.per_example) < 0.5 and min(rewrites.per_example) > 0.85
    # the same numbers as the module given the sources directly
    direct = evaluate.load(str(METRICS_DIR / "sari"), keep_in_memory=True).compute(
        sources=SOURCES, predictions=REWRITES, references=REFERENCES)
    assert rewrites.per_example == pytest.approx(direct["per_example"])
    assert rewrites.score == pytest.approx(direct["sari"])


def test_input_fields_name_the_source_when_examples_hold_other_fields_first():
    metric = Metric("sari", "sari")
    predictions = [{"rewrite": p} for p in REWRITES]
    examples = [{"id": str(i), "rewrite": r, "text": s} for i, (s, r) in enumerate(zip(SOURCES, REFERENCES))]

    named = metric.score_records(predictions, examples, ["rewrite"], input_fields=("text",))
    guessed = metric.score_records(predictions, examples, ["rewrite"])  # "id" comes first: taken as the source

    module = evaluate.load(str(METRICS_DIR / "sari"), keep_in_memory=True)
    assert named.per_example == pytest.approx(
        module.compute(sources=SOURCES, predictions=REWRITES, references=REFERENCES)["per_example"])
    assert guessed.per_example == pytest.approx(
        module.compute(sources=["0", "1", "2"], predictions=REWRITES, references=REFERENCES)["per_example"])
    assert guessed.per_example != pytest.approx(named.per_example)


def test_a_composite_with_sari_passes_sources_on():
    metric = CompositeMetric([(Metric("sari", "sari"), 0.5), (Metric("rouge_l", "rouge_l"), 0.5)])
    assert metric.needs_sources

    copies = metric.score_records(*_records(SOURCES), ["rewrite"])

    alone = Metric("sari", "sari").score_records(*_records(SOURCES), ["rewrite"])
    assert copies.details["sari:sari"] == pytest.approx(alone.score)
    assert copies.score == pytest.approx((alone.score + copies.details["rouge_l:rouge_l"]) / 2)


def test_sari_without_sources_is_a_one_line_config_error():
    metric = Metric("sari", "sari")

    with pytest.raises(ConfigError, match="needs sources") as raised:
        metric.score(REWRITES, REFERENCES)
    assert "\n" not in str(raised.value)
    with pytest.raises(ConfigError, match="3 sources for 2 predictions"):
        metric.score(REWRITES[:2], REFERENCES[:2], sources=SOURCES)
    with pytest.raises(ConfigError, match="no input field"):  # examples with nothing but the output field
        metric.score_records([{"rewrite": "x"}], [{"rewrite": "y"}], ["rewrite"])
    with pytest.raises(ConfigError, match="needs sources"):
        CompositeMetric([(metric, 1.0)]).score(REWRITES, REFERENCES)


def test_metrics_that_do_not_read_sources_ignore_them():
    metric = Metric("rouge_l", "rouge_l")
    assert not metric.needs_sources

    assert metric.score(["a b c"], ["a b c"], sources=["z"]).score == 1.0
    assert metric.score_records([{"y": "a b"}], [{"y": "a b"}], ["y"]).score == 1.0  # no input field needed


def test_a_batch_callable_with_a_sources_parameter_receives_them(monkeypatch):
    from promptomatix.scoring import METRICS

    METRICS.names()
    monkeypatch.setattr(METRICS, "_items", dict(METRICS._items))
    seen = []

    def changed(predictions, references, sources):
        seen.append(list(sources))
        scores = [float(p != s) for p, s in zip(predictions, sources)]
        return {"changed": sum(scores) / len(scores), "per_example": scores}

    assert metric_shape("changed", changed) == "batch"
    METRICS.register("changed", changed)
    metric = Metric("changed", "changed")

    scores = metric.score_records([{"out": "A"}, {"out": "b"}], [{"inp": "a", "out": "A"}, {"inp": "b", "out": "B"}],
                                  ["out"])

    assert seen == [["a", "b"]]
    assert scores.per_example == [1.0, 0.0]
