"""OptimizationConfig and ModelSettings: presets, validation messages, MLflow params."""

import subprocess
import sys

import pytest

from promptomatix.config import ModelSettings, OptimizationConfig
from promptomatix.config.preflight import checked
from promptomatix.errors import ConfigError, UsageError

TASK = "Classify the sentiment of a movie review as positive or negative"


@pytest.mark.parametrize(
    "search, calls, size, iterations, candidates",
    [("quick", 250, 30, 2, 8), ("moderate", 1000, 100, 3, 12), ("heavy", 3000, 300, 5, 16)],
)
def test_search_preset_fills_sizes_and_a_call_budget(search, calls, size, iterations, candidates):
    config = OptimizationConfig(TASK, search=search)
    assert (config.max_calls, config.synthetic_data_size, config.iterations, config.candidates) == \
        (calls, size, iterations, candidates)
    assert config.limits.calls == calls


def test_budget_limits_are_checked_and_given_ones_replace_the_preset():
    config = OptimizationConfig(TASK, max_calls=40, max_cost=0.5, max_seconds=60)
    assert (config.limits.calls, config.limits.cost, config.limits.seconds) == (40, 0.5, 60)
    for bad in ({"max_calls": 0}, {"max_cost": 0}, {"max_seconds": -1}):
        with pytest.raises(ConfigError):
            OptimizationConfig(TASK, **bad)


def test_default_preset_is_quick():
    assert OptimizationConfig(TASK).synthetic_data_size == 30


def test_explicit_sizes_override_preset():
    config = OptimizationConfig(TASK, search="heavy", synthetic_data_size=12, candidates=2)
    assert config.synthetic_data_size == 12
    assert config.candidates == 2
    assert config.iterations == 5  # not given: still from the preset


def test_config_error_is_a_usage_error_with_exit_code_2():
    with pytest.raises(ConfigError) as info:
        OptimizationConfig("")
    assert isinstance(info.value, UsageError)
    assert info.value.exit_code == 2


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"raw_input": ""}, "raw input is empty"),
        ({"raw_input": "   \n\t "}, "raw input is empty"),
        ({"train_ratio": 0}, "train ratio must be strictly between 0 and 1, got 0"),
        ({"train_ratio": 1}, "train ratio must be strictly between 0 and 1, got 1"),
        ({"train_ratio": -0.1}, "train ratio must be strictly between 0 and 1, got -0.1"),
        ({"train_ratio": 1.5}, "train ratio must be strictly between 0 and 1, got 1.5"),
        ({"synthetic_data_size": 0}, "synthetic data size must be a positive whole number, got 0"),
        ({"synthetic_data_size": -5}, "synthetic data size must be a positive whole number, got -5"),
        ({"synthetic_data_size": 1}, "synthetic data size must be at least 2"),
        ({"iterations": 0}, "iterations must be a positive whole number, got 0"),
        ({"iterations": -1}, "iterations must be a positive whole number, got -1"),
        ({"candidates": 0}, "candidates must be a positive whole number, got 0"),
        ({"candidates": -2}, "candidates must be a positive whole number, got -2"),
        ({"search": "turbo"}, "unknown search preset 'turbo'; choose one of quick, moderate, heavy"),
        ({"input_fields": ("1st",)}, "invalid field name '1st'"),
        ({"output_fields": "my label"}, "invalid field name 'my label'"),
        ({"input_fields": ("a-b",)}, "invalid field name 'a-b'"),
        ({"input_fields": ",, ,"}, "input fields is empty"),
        ({"input_fields": "text,text"}, "input fields repeat a name"),
        ({"input_fields": ("text",), "output_fields": ("label", "text")}, "both an input and an output"),
        ({"name": "has space"}, "invalid name 'has space'"),
        ({"name": "-leading-dash"}, "invalid name '-leading-dash'"),
        ({"name": "x" * 101}, "invalid name"),
        ({"valid_data": "valid.csv"}, "--valid-data needs --train-data"),
        ({"lambda_penalty": -0.01}, "lambda penalty must not be negative, got -0.01"),
    ],
)
def test_invalid_config_raises_config_error(kwargs, message):
    kwargs = {"raw_input": TASK, **kwargs}
    with pytest.raises(ConfigError) as info:
        OptimizationConfig(**kwargs)
    assert message in str(info.value)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"backend": "no_such_backend"}, "unknown backend 'no_such_backend'"),
        ({"task_type": "poetry_judging"}, "unknown task type 'poetry_judging'"),
        ({"intake_prompt": "no_such_template"}, "no_such_template"),
    ],
)
def test_registered_names_are_checked_where_the_run_starts(kwargs, message):
    config = OptimizationConfig(TASK, **kwargs)  # a plain value: no registry is read to build it
    with pytest.raises(ConfigError) as info:
        checked(config)
    assert message in str(info.value)


def test_unknown_backend_lists_the_known_ones():
    with pytest.raises(ConfigError, match="meta_prompt"):
        checked(OptimizationConfig(TASK, backend="nope"))


def test_building_a_config_loads_no_plugin_registry():
    # The registries (and the entry points they load) belong to the run, not to the value.
    code = ("import sys; from promptomatix.config import OptimizationConfig; "
            "OptimizationConfig('x', backend='any', hooks=('h',), metric_weights={'m': 1}); "
            "print(sorted(m for m in sys.modules if m.startswith('promptomatix')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    # (`promptomatix.moved`, the old module paths, comes with the package: it imports no module of it.)
    assert eval(out) == ["promptomatix", "promptomatix.config", "promptomatix.errors", "promptomatix.models",
                         "promptomatix.models.usage", "promptomatix.moved"]


def test_field_names_are_normalised_to_tuples():
    config = OptimizationConfig(TASK, input_fields="review, title", output_fields=["label"])
    assert config.input_fields == ("review", "title")
    assert config.output_fields == ("label",)


def test_valid_config_accepts_known_names():
    config = OptimizationConfig(TASK, name="sentiment_v1.2", task_type="qa", train_data="t.csv",
                                valid_data="v.csv", lambda_penalty=0)
    assert config.task_type == "qa"
    assert config.name == "sentiment_v1.2"


def test_replace_revalidates():
    config = OptimizationConfig(TASK)
    assert config.replace(search="heavy", synthetic_data_size=None).synthetic_data_size == 300
    with pytest.raises(ConfigError, match="train ratio"):
        config.replace(train_ratio=2.0)


def test_to_params_flattens_models_and_excludes_raw_input():
    config = OptimizationConfig(
        TASK,
        input_fields=("review",),
        output_fields=("label",),
        field_map={"text": "review"},
        task_model=ModelSettings(model="openai/gpt-4o-mini", temperature=0.2, max_tokens=64),
    )
    params = config.to_params()
    assert "raw_input" not in params
    assert TASK not in params.values()
    # the task model's settings are logged once, under the registered model's keys (model/...)
    assert not any(k.startswith("task_model") for k in params)
    assert params["optimizer_model.temperature"] == "0.7"
    assert "task_model" not in params and "optimizer_model" not in params
    assert params["input_fields"] == "review"
    assert params["field_map"] == "text=review"
    assert params["synthetic_data_size"] == "30"
    assert all(isinstance(v, str) for v in params.values())


def test_params_hold_only_what_applies_never_none_or_empty():
    config = OptimizationConfig(TASK)  # no data files, no experiment, no hooks, no api base
    params = config.to_params(("meta_prompt",))
    assert params["meta_prompt"] == "rewrite"
    assert "optimizer" not in params and "dspy_module" not in params  # the dspy backend's options
    assert not {"train_data", "valid_data", "experiment", "hooks", "task_type", "optimizer_model.api_base"} & set(params)
    assert all(v.strip() and v != "None" for v in params.values())
    dspy = config.replace(backend="dspy").to_params(("optimizer", "dspy_module"))
    assert (dspy["optimizer"], dspy["dspy_module"]) == ("MIPROv2", "Predict") and "meta_prompt" not in dspy


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"model": ""}, "model name is empty"),
        ({"model": "   "}, "model name is empty"),
        ({"temperature": -0.1}, "temperature must be between 0 and 2, got -0.1"),
        ({"temperature": 2.5}, "temperature must be between 0 and 2, got 2.5"),
        ({"max_tokens": 0}, "max tokens must be at least 1, got 0"),
    ],
)
def test_model_settings_validation(kwargs, message):
    with pytest.raises(ConfigError) as info:
        ModelSettings(**kwargs)
    assert message in str(info.value)


@pytest.mark.parametrize("temperature", [0.0, 2.0])
def test_model_settings_temperature_bounds_are_inclusive(temperature):
    assert ModelSettings(temperature=temperature).temperature == temperature


def test_a_flag_spelled_otherwise_than_its_field_is_the_same_option_in_python_and_yaml(tmp_path):
    """`--metric NAME=WEIGHT` on the command line is `metric=` in Python and `metric:` in a
    config file, as `metric_weights` is; given under both names it is an error, not a guess."""
    from promptomatix.config.flat import config_from_options

    as_flag = config_from_options(raw_input="Classify", metric={"classification": 0.7, "brevity": 0.3},
                                  hook=["summary"], eval_metric=["classification"])
    as_field = config_from_options(raw_input="Classify", metric_weights={"classification": 0.7, "brevity": 0.3},
                                   hooks=["summary"], eval_metrics=["classification"])
    assert as_flag == as_field
    with pytest.raises(ConfigError, match="'metric' and 'metric_weights' are one option"):
        config_from_options(raw_input="Classify", metric={"a": 1.0}, metric_weights={"b": 1.0})
