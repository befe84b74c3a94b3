"""`promptomatix.tracking.record`: the JSON forms read back what they wrote, and a version's metric record
reads as the same metric whatever the scale of its weights."""

from __future__ import annotations

import json
import random

from promptomatix.backends.base import Candidate
from promptomatix.scoring.evaluator import Evaluation
from promptomatix.task.prompt import Prompt
from promptomatix.task.spec import TaskSpec
from promptomatix.tracking import record

PROMPT = Prompt("Classify.", ("review",), ("sentiment",), demos=({"review": "fine", "sentiment": "positive"},),
                single_line=True, labels=("negative", "positive"), calibration=(0.25, -0.25))


def test_prompts_specs_and_candidates_read_back_what_was_written():
    assert record.prompt_from_dict(json.loads(json.dumps(record.prompt_to_dict(PROMPT)))) == PROMPT
    spec = TaskSpec("Classify reviews.", ("review",), ("sentiment",), "classification", ("negative", "positive"),
                    ({"review": "fine", "sentiment": "positive"},), "Say the sentiment.")
    assert record.spec_from_dict(json.loads(json.dumps(record.spec_to_dict(spec)))) == spec
    candidate = Candidate(PROMPT, Evaluation(0.5, (1.0, 0.0), ({"sentiment": "positive"}, {"sentiment": ""}),
                                             ((0.1, 0.9), None), 1, 0.6), 0.49, program={"kind": "x"})
    assert record.candidate_from_dict(json.loads(json.dumps(record.candidate_to_dict(candidate)))) == candidate
    rng, again = random.Random(3), random.Random()
    record.set_rng_state(again, json.loads(json.dumps(record.rng_state(rng))))
    assert again.random() == rng.random()


def test_a_registered_model_config_holds_the_prompt_and_the_model():
    config = record.model_config(PROMPT, {"model": "m", "temperature": 0.0}, "prompts:/p/1")
    assert "program" not in config  # unset is left out: MLflow logs the config as params
    assert record.config_prompt(config) == PROMPT and record.config_model(config) == {"model": "m", "temperature": 0.0}
    assert record.config_program(config) is None


def test_the_metric_record_is_the_same_for_weights_at_another_scale():
    weights = record.metric_weights({"classification:accuracy": 7, "brevity:brevity": 3})
    assert weights == record.metric_weights({"classification:accuracy": 0.7, "brevity:brevity": 0.3})
    tags = record.version_tags(run_id="r", score=0.5, initial_score=0.25, backend="meta_prompt",
                               task_type="classification", cost=0.0, tokens=3, metric=weights)
    assert tags[record.METRIC] == "0.3*brevity:brevity + 0.7*classification:accuracy"
    assert record.recorded_metric(tags) == weights
    assert record.recorded_metric({}) is None  # a version registered before the record existed
    assert record.recorded_metric({record.METRIC_WEIGHTS: "not json"}) is None
