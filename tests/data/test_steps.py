"""Data steps: run in order on each example, rejections recorded with the step and the reason."""

from __future__ import annotations

import pytest

from promptomatix.data.steps import DATA_STEPS, DataSteps, register_data_step, Rejected
from promptomatix.errors import ConfigError, DataError, PluginError
from promptomatix.task.spec import TaskSpec

SPEC = TaskSpec(description="Classify", task_type="classification", input_fields=("text",),
                output_fields=("label",), labels=("pos", "neg"))


@pytest.fixture(autouse=True)
def own_registry(monkeypatch):
    DATA_STEPS.names()
    monkeypatch.setattr(DATA_STEPS, "_items", dict(DATA_STEPS._items))


def test_builtins_strip_check_labels_and_drop_repeats():
    steps = DataSteps(["strip", "known_label", "no_duplicates"], SPEC)
    examples = [{"text": "  a   fine\nday ", "label": "pos"}, {"text": "other", "label": "meh"},
                {"text": "A fine  day", "label": "neg"}, {"text": "b", "label": "neg"}]
    kept = steps.apply(examples, "train")

    assert kept == [{"text": "a fine day", "label": "pos"}, {"text": "b", "label": "neg"}]
    assert [(r.step, r.stage) for r in steps.rejections] == [("known_label", "train"), ("no_duplicates", "train")]
    assert "'meh' is not one of pos, neg" in steps.rejections[0].reason
    assert steps.counts()[""] == len(steps.rejections)


def test_stateful_steps_start_fresh_for_each_run():
    example = {"text": "same", "label": "pos"}
    assert DataSteps(["no_duplicates"], SPEC).apply([example], "train") == [example]
    assert DataSteps(["no_duplicates"], SPEC).apply([example], "train") == [example]


def test_none_rejects_without_a_reason_and_order_matters():
    register_data_step("drop_b", lambda e, spec: None if e["text"] == "b" else e)
    register_data_step("to_b", lambda e, spec: dict(e, text="b"))
    assert DataSteps(["drop_b", "to_b"], SPEC).apply([{"text": "a", "label": "pos"}], "valid") == \
        [{"text": "b", "label": "pos"}]
    steps = DataSteps(["to_b", "drop_b"], SPEC)
    with pytest.raises(DataError, match=r"every valid example was rejected by the data steps \(drop_b: 1\)"):
        steps.apply([{"text": "a", "label": "pos"}], "valid")
    assert steps.rejections[0].reason == "rejected"


def test_a_step_that_breaks_or_changes_the_fields_is_named():
    register_data_step("boom", lambda e, spec: 1 / 0)
    register_data_step("extra", lambda e, spec: dict(e, more="x"))
    with pytest.raises(PluginError, match=r"data step 'boom' failed on a train example: ZeroDivisionError"):
        DataSteps(["boom"], SPEC)({"text": "a", "label": "pos"}, "train")
    with pytest.raises(PluginError, match="data step 'extra' must return the example with the same fields"):
        DataSteps(["extra"], SPEC)({"text": "a", "label": "pos"}, "train")


def test_unknown_steps_fail_before_the_run_starts():
    from promptomatix.config import OptimizationConfig
    from promptomatix.config.preflight import checked

    with pytest.raises(ConfigError, match="unknown data step 'nope'; choose one of: known_label, no_duplicates, strip"):
        checked(OptimizationConfig(raw_input="x", data_steps=("nope",)))


def test_rejected_carries_the_reason():
    def short(e, spec):
        raise Rejected("too short")

    register_data_step("short", short)
    steps = DataSteps(["short"], SPEC)
    assert steps({"text": "a", "label": "pos"}, "synthetic") is None
    assert (steps.rejections[0].stage, steps.rejections[0].reason) == ("synthetic", "too short")
