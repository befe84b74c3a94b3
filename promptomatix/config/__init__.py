"""One typed configuration for an optimization, validated once when it is built.

The package also holds `flat` (flat options, as users give them, to a config and back),
`plugin_options` (options that plugins declare) and `preflight` (a config checked against the
plugin registries where a run starts).

CLI flags, MLproject parameters and Python keyword arguments all end up in
`OptimizationConfig`; everything below the edge receives it and reads nothing else.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any

from promptomatix.errors import ConfigError
from promptomatix.models.usage import Limits

DEFAULT_MODEL = "embedded/gemma-3-270m"
# The optimizer model's cap per answer: room for a batch of five two-field synthetic examples.
OPTIMIZER_MAX_TOKENS = 1024


@dataclass(frozen=True)
class SearchPreset:
    """A budget a user can read: at most `max_calls` model calls in all (intake, data, search),
    `synthetic_data_size` examples when there is no data, `iterations` of `candidates` new
    prompts each (fewer when the calls left would not pay for them)."""

    max_calls: int
    synthetic_data_size: int
    iterations: int
    candidates: int


# The data sizes follow the original Promptomatix (quick 30, moderate 100, heavy 300 examples).
SEARCH_PRESETS = {
    "quick": SearchPreset(max_calls=250, synthetic_data_size=30, iterations=2, candidates=8),
    "moderate": SearchPreset(max_calls=1000, synthetic_data_size=100, iterations=3, candidates=12),
    "heavy": SearchPreset(max_calls=3000, synthetic_data_size=300, iterations=5, candidates=16),
}


def _option(default: Any = dataclasses.MISSING, help: Any = "", **flag: Any) -> Any:
    """A config field that is also an option of every entry point (promptomatix/config/flat.py):
    `help` is its `--help` text (or a function returning it), and `flag` what its command-line
    flag needs besides what its type and default say: `flag` (its spelling, None for none),
    `metavar`, `choices`, `optimizer_help`. A mapping's default is given as `dict`."""
    metadata = {"help": help, **flag}
    if default is dict:
        return field(default_factory=dict, metadata=metadata)
    return field(default=default, metadata=metadata)


def _preset_help() -> str:
    return "Preset budgets: " + "; ".join(
        f"{name} at most {p.max_calls} model calls, {p.synthetic_data_size} synthetic examples, "
        f"{p.iterations} iterations of {p.candidates} candidates" for name, p in SEARCH_PRESETS.items()) + "."


@dataclass(frozen=True)
class ModelSettings:
    """Which model answers and how. API keys are never here: LiteLLM reads them from the
    environment."""

    # Each is two options, the task model's (`--temperature`) and the optimizer model's
    # (`--optimizer-temperature`), which follows the task model's name and API base when not given.
    model: str = _option(DEFAULT_MODEL, "Task model, any LiteLLM name [default: embedded/gemma-3-270m].",
                         optimizer_help="Model that writes data and rewrites prompts [default: the task model].")
    temperature: float = _option(0.0, "Task model temperature [default: 0].", optimizer_help="[default: 0.7]")
    max_tokens: int = _option(256, "Task model max tokens per answer [default: 256].",
                              optimizer_help="Cap on each optimizer-model answer; synthetic batches shrink to fit "
                                             "[default: 1024]")
    api_base: str | None = _option(None, "Task model API base URL (keys come from the environment).",
                                   optimizer_help="Optimizer model API base URL.")

    def __post_init__(self):
        if not self.model or not self.model.strip():
            raise ConfigError("model name is empty")
        if not 0.0 <= self.temperature <= 2.0:
            raise ConfigError(f"temperature must be between 0 and 2, got {self.temperature}")
        if self.max_tokens < 1:
            raise ConfigError(f"max tokens must be at least 1, got {self.max_tokens}")


# Sizes no job can mean: each is far past what the largest preset uses (`heavy`: 300 synthetic
# examples, 5 iterations of 16 candidates, 3000 calls) and past what one budget and one machine
# serve. A typo (an extra digit, a pasted number) is refused in one line instead of starting a
# job that never ends.
SIZE_LIMITS = {"synthetic_data_size": 10_000, "iterations": 1_000, "candidates": 1_000, "batch_size": 100,
               "num_threads": 256, "num_demos": 100, "max_calls": 1_000_000, "max_retries": 20}
RAW_INPUT_LIMIT = 100_000  # characters; the model's context may allow less (api.check_fits_context)

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


@dataclass(frozen=True)
class OptimizationConfig:
    """Everything one optimization needs. Sizes left as None come from the `search` preset."""

    raw_input: str = _option(help="The task in plain language (markers such as [TASK] allowed).")
    name: str | None = _option(None, "Registry name (default: from the task's first words).")
    backend: str = _option("meta_prompt", "Optimization backend.")
    optimizer: str = _option("MIPROv2", "DSPy optimizer for --backend dspy (MIPROv2, GEPA, BootstrapFewShot, ...).")
    dspy_module: str = _option("Predict", "DSPy module for --backend dspy: Predict, ChainOfThought, "
                                          "ProgramOfThought, ReAct or package.module:Class.")
    # Templates of the optimizer model's work: a registered name, a .txt file, `module:function`
    # or a function returning the text (see promptomatix/templates/__init__.py).
    meta_prompt: Any = _option("rewrite", "Rewrite template of the meta-prompt backend: a registered name, a .txt "
                                          "file or package.module:function returning the text.")
    intake_prompt: Any = _option("intake", "Template that reads the task (as --meta-prompt: name, .txt file or "
                                           "module:function).")
    synthetic_prompt: Any = _option("synthetic", "Template that writes synthetic examples as JSON (as --meta-prompt).")
    inputs_prompt: Any = _option("inputs", "Template that writes the inputs of a classification's synthetic "
                                           "examples (as --meta-prompt).")
    hooks: tuple[str, ...] = _option((), "Run a registered hook (repeatable).", flag="--hook", metavar="NAME")
    data_steps: tuple[str, ...] = _option(
        (), "Preprocess/validate every example with a registered step, in order (repeatable): strip, known_label, "
            "no_duplicates or a plugin's.", flag="--data-step", metavar="NAME")
    metric_weights: dict[str, float] = _option(
        dict, "Score with a weighted mix of metrics instead of the task type's (repeatable), e.g. --metric "
              "classification=0.7 --metric brevity=0.3.", flag="--metric", metavar="NAME[:KEY]=WEIGHT")
    # The final evaluation's metrics (NAME[:KEY]); empty: the task type's.
    eval_metrics: tuple[str, ...] = _option(
        (), "Final-evaluation metric, reported on the run as final.NAME and used by `promptomatix evaluate` "
            "(repeatable; default: the task type's).", flag="--eval-metric", metavar="NAME[:KEY]")
    # The model of MLflow's judges (`--metric mlflow:Correctness=1`, promptomatix/scoring/judges.py).
    judge_model: str | None = _option(None, "Judge model of MLflow scorer metrics (--metric mlflow:Correctness=1), "
                                            "any LiteLLM name [default: the optimizer model].")
    plugin_options: dict[str, Any] = field(default_factory=dict)  # promptomatix/config/plugin_options.py
    task_type: str | None = _option(None, "Override the task type found by intake (e.g. classification, qa).")
    input_fields: tuple[str, ...] | None = _option(None, "Comma-separated input field names (override intake).")
    output_fields: tuple[str, ...] | None = _option(None, "Comma-separated output field names (override intake).")
    labels: tuple[str, ...] | None = _option(None, "Comma-separated labels of a classification (override intake; "
                                                   "your data's labels win over both).")
    task_model: ModelSettings = field(default_factory=ModelSettings)
    optimizer_model: ModelSettings = field(
        default_factory=lambda: ModelSettings(temperature=0.7, max_tokens=OPTIMIZER_MAX_TOKENS)
    )
    search: str = _option("quick", _preset_help, choices=tuple(SEARCH_PRESETS))
    synthetic_data_size: int | None = _option(None, "Number of synthetic examples (overrides --search).")
    train_ratio: float = _option(0.5, "Share of examples used to train.")
    batch_size: int = _option(5, "Synthetic examples per model call.")
    train_data: str | None = _option(None, "Your data: .csv, .tsv, .jsonl, .json, a saved `datasets` folder or "
                                           "hf:NAME[:SPLIT].")
    valid_data: str | None = _option(None, "Validation data (default: split from --train-data).")
    check_rows: int | None = _option(None, "Rows of --train-data held out from the search and scored once at the "
                                           "end, start and winner paired (default: a fifth, 10-100, from 40 rows "
                                           "of data on; 0: none).")
    field_map: dict[str, str] = _option(dict, "Rename a data column to a field (repeatable).", metavar="COLUMN=FIELD")
    iterations: int | None = _option(None, "Optimization rounds (overrides --search).")
    candidates: int | None = _option(None, "New prompts per round (overrides --search).")
    num_demos: int = _option(24, "Few-shot demos a candidate may carry.")
    # One point of accuracy is worth about 125 prompt words: long prompts lose ties, demos that
    # help still win.
    lambda_penalty: float = _option(0.0001, "Length penalty: objective = score x exp(-lambda x prompt words).")
    max_calls: int | None = _option(  # the preset's when None
        None, "Budget: model calls in all, task and optimizer (overrides --search).")
    max_cost: float | None = _option(None, "Budget: US dollars of model calls (as LiteLLM prices them).")
    max_seconds: float | None = _option(None, "Budget: seconds of optimization.")
    num_threads: int = _option(4, "Parallel scoring calls.")
    max_retries: int = _option(3, flag=None)  # a keyword and a config file key, no flag
    seed: int = _option(0)
    experiment: str | None = _option(None, "MLflow experiment name (ignored inside `mlflow run`).")
    register: bool = _option(True, "Register the result.")
    # Answer repeated model requests from the shared cache (models/cache.py).
    cache: bool = _option(True, "Answer repeated model requests from the shared cache (PROMPTOMATIX_CACHE: folder "
                                "or 'off').")
    # Every LLM call as an MLflow trace span of the run (tracing.RunTracer).
    traces: bool = _option(True, "Record every LLM call as an MLflow trace of the run (the run's Traces tab).")

    def __post_init__(self):
        """Checked once, here, at the edge: presets filled in, sizes and names validated, lists
        and mappings made immutable copies."""
        self._check_task()
        self._fill_and_check_sizes()
        self._normalize()

    def _set(self, key: str, value: Any) -> None:
        object.__setattr__(self, key, value)  # a frozen dataclass, set while it is built

    def _check_task(self) -> None:
        if not isinstance(self.raw_input, str) or not self.raw_input.strip():
            raise ConfigError("raw input is empty: describe the task, e.g. 'Classify the sentiment of a movie review'")
        if len(self.raw_input) > RAW_INPUT_LIMIT:
            raise ConfigError(f"raw input is {len(self.raw_input)} characters; the limit is {RAW_INPUT_LIMIT}")
        if self.name is not None and not _NAME_RE.match(self.name):
            raise ConfigError(f"invalid name {self.name!r}: use letters, digits, '-', '_' or '.' (at most 100)")
        if self.valid_data and not self.train_data:
            raise ConfigError("--valid-data needs --train-data")

    def _fill_and_check_sizes(self) -> None:
        if self.search not in SEARCH_PRESETS:
            raise ConfigError(f"unknown search preset {self.search!r}; choose one of {', '.join(SEARCH_PRESETS)}")
        preset = SEARCH_PRESETS[self.search]
        for key in PRESET_KEYS:
            if getattr(self, key) is None:
                self._set(key, getattr(preset, key))
        _positive(self, "synthetic_data_size", "iterations", "candidates", "batch_size", "num_threads", "max_calls")
        for key in ("max_cost", "max_seconds"):
            value = getattr(self, key)
            if value is not None and not value > 0:
                raise ConfigError(f"{key.replace('_', ' ')} must be positive, got {value!r}")
        if (self.synthetic_data_size or 0) < 2:  # filled from the preset above
            raise ConfigError(f"synthetic data size must be at least 2, got {self.synthetic_data_size}")
        _non_negative(self, "num_demos", "max_retries", "lambda_penalty")
        for key, limit in SIZE_LIMITS.items():
            value = getattr(self, key)
            if value is not None and value > limit:
                raise ConfigError(f"{key.replace('_', ' ')} is {value}; the limit is {limit}")
        if self.check_rows is not None and self.check_rows < 0:
            raise ConfigError(f"check rows must be 0 or more, got {self.check_rows}")
        if not 0.0 < self.train_ratio < 1.0:
            raise ConfigError(f"train ratio must be strictly between 0 and 1, got {self.train_ratio}")

    def _normalize(self) -> None:
        for key in ("input_fields", "output_fields"):
            value = getattr(self, key)
            if value is not None:
                self._set(key, _field_names(key, value))
        if self.input_fields and self.output_fields and set(self.input_fields) & set(self.output_fields):
            raise ConfigError("a field cannot be both an input and an output field")
        if self.labels is not None:
            self._set("labels", _labels(self.labels))
        self._set("field_map", dict(self.field_map))
        self._set("hooks", tuple(self.hooks))
        self._set("data_steps", tuple(self.data_steps))
        self._set("metric_weights", dict(self.metric_weights))
        self._set("eval_metrics", tuple(self.eval_metrics))
        for spec, weight in self.metric_weights.items():
            if not isinstance(weight, (int, float)) or isinstance(weight, bool) or weight <= 0:
                raise ConfigError(f"metric weight for {spec!r} must be a positive number, got {weight!r}")

    @property
    def limits(self) -> Limits:
        """The budget: every model call of the optimization counts against it."""
        return Limits(calls=self.max_calls, cost=self.max_cost, seconds=self.max_seconds)

    def changed(self, *keys: str) -> list[str]:
        """Which of `keys` differ from their defaults: what the user chose."""
        defaults = {f.name: f.default for f in dataclasses.fields(self)}
        return [key for key in keys if getattr(self, key) != defaults[key]]

    def replace(self, **changes: Any) -> OptimizationConfig:
        return dataclasses.replace(self, **changes)

    def to_params(self, backend_options: tuple[str, ...] = ()) -> dict[str, str]:
        """Flat key/value pairs for MLflow params: the settings that take effect, each once.
        Options read by one backend only (`BACKEND_OPTIONS`) are kept for the backend that reads
        them (`backend_options`, its `Backend.options`); unset (None) and empty options are left
        out, as is long text such as the raw input, and the task model's settings, which are
        logged under the registered model's keys (`run.registration.model_params`). `to_options`
        (config.yaml) keeps them all."""
        from promptomatix.templates import source_name

        params: dict[str, str] = {}
        for key, value in dataclasses.asdict(self).items():
            if key in ("raw_input", "task_model") or (key in BACKEND_OPTIONS and key not in backend_options):
                continue
            if key in TEMPLATE_KEYS:
                value = source_name(getattr(self, key))
            if key == "plugin_options":  # each its own param, as a built-in option's
                params.update({k: str(v) for k, v in value.items()})
                continue
            if isinstance(value, dict) and key.endswith("model"):
                value = value | {"api_base": redact_url(value["api_base"]) if value["api_base"] else None}
                params.update({f"{key}.{k}": str(v) for k, v in value.items() if v is not None})
            elif isinstance(value, (list, tuple)):
                params[key] = ",".join(value)
            elif isinstance(value, dict):
                params[key] = ",".join(f"{k}={v}" for k, v in value.items())
            elif value is not None:
                params[key] = str(value)
        return {k: v for k, v in params.items() if v != ""}


MODEL_KEYS = ("model", "temperature", "max_tokens", "api_base")
PRESET_KEYS = ("max_calls", "synthetic_data_size", "iterations", "candidates")
TEMPLATE_KEYS = ("meta_prompt", "intake_prompt", "synthetic_prompt", "inputs_prompt")
# Options that only one backend reads: logged as params for that backend only.
BACKEND_OPTIONS = ("optimizer", "dspy_module", "meta_prompt")


def builtin_option_names() -> set[str]:
    """The options promptomatix itself defines: plugin options may not reuse them."""
    return ({f.name for f in dataclasses.fields(OptimizationConfig)} | set(MODEL_KEYS)
            | {f"optimizer_{k}" for k in MODEL_KEYS} | {"config", "config_from", "from", "resume", "dry_run", "quiet"})


def to_number(label: str, value: Any, kind: type) -> int | float:
    """`value` (a number, or its text) as `kind` (int or float); a one-line ConfigError naming
    `label` otherwise. Shared by built-in and plugin options."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ConfigError(f"{label} must be a number, got {value!r}")
    try:
        number = float(value)
    except ValueError:
        raise ConfigError(f"{label} must be a number, got {value!r}") from None
    if kind is int and not number.is_integer():
        raise ConfigError(f"{label} must be a whole number, got {value!r}")
    if kind is int and isinstance(value, int):
        return value  # as given: through a float, 10**23 would become 99999999999999991611392
    return kind(number)


def redact_url(url: str) -> str:
    """A URL fit to log: user, password and query string (where keys hide) left out."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _positive(config, *keys):
    for key in keys:
        value = getattr(config, key)
        if not isinstance(value, int) or value < 1:
            raise ConfigError(f"{key.replace('_', ' ')} must be a positive whole number, got {value!r}")


def _non_negative(config, *keys):
    for key in keys:
        if getattr(config, key) < 0:
            raise ConfigError(f"{key.replace('_', ' ')} must not be negative, got {getattr(config, key)!r}")


_FIELD_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _labels(value) -> tuple[str, ...]:
    names = [value] if isinstance(value, str) else list(value)
    labels = tuple(dict.fromkeys(n.strip() for part in names for n in str(part).split(",") if n.strip()))
    if len(labels) < 2:
        raise ConfigError(f"labels: a classification needs at least two, got {', '.join(labels) or 'none'}")
    return labels


def _field_names(key: str, value) -> tuple[str, ...]:
    names = [value] if isinstance(value, str) else list(value)
    names = [n.strip() for part in names for n in part.split(",") if n.strip()]
    if not names:
        raise ConfigError(f"{key.replace('_', ' ')} is empty")
    for name in names:
        if not _FIELD_RE.match(name):
            raise ConfigError(f"invalid field name {name!r}: use letters, digits and '_'")
    if len(set(names)) != len(names):
        raise ConfigError(f"{key.replace('_', ' ')} repeat a name: {', '.join(names)}")
    return tuple(names)
