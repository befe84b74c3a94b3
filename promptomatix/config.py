"""One typed configuration for an optimization, validated once when it is built.

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


@dataclass(frozen=True)
class ModelSettings:
    """Which model answers and how. API keys are never here: LiteLLM reads them from the
    environment."""

    model: str = DEFAULT_MODEL
    temperature: float = 0.0
    max_tokens: int = 256
    api_base: str | None = None

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

    raw_input: str
    name: str | None = None
    backend: str = "meta_prompt"
    optimizer: str = "MIPROv2"
    dspy_module: str = "Predict"
    # Templates of the optimizer model's work: a registered name, a .txt file, `module:function`
    # or a function returning the text (see promptomatix/metaprompts.py).
    meta_prompt: Any = "rewrite"
    intake_prompt: Any = "intake"
    synthetic_prompt: Any = "synthetic"
    inputs_prompt: Any = "inputs"
    hooks: tuple[str, ...] = ()
    data_steps: tuple[str, ...] = ()
    metric_weights: dict[str, float] = field(default_factory=dict)
    eval_metrics: tuple[str, ...] = ()  # final evaluation (NAME[:KEY]); empty: the task type's
    plugin_options: dict[str, Any] = field(default_factory=dict)  # promptomatix/options.py
    task_type: str | None = None
    input_fields: tuple[str, ...] | None = None
    output_fields: tuple[str, ...] | None = None
    task_model: ModelSettings = field(default_factory=ModelSettings)
    optimizer_model: ModelSettings = field(
        default_factory=lambda: ModelSettings(temperature=0.7, max_tokens=OPTIMIZER_MAX_TOKENS)
    )
    search: str = "quick"
    synthetic_data_size: int | None = None
    train_ratio: float = 0.5
    batch_size: int = 5
    train_data: str | None = None
    valid_data: str | None = None
    field_map: dict[str, str] = field(default_factory=dict)
    iterations: int | None = None
    candidates: int | None = None
    num_demos: int = 8
    # One point of accuracy is worth about 125 prompt words: long prompts lose ties, demos that
    # help still win.
    lambda_penalty: float = 0.0001
    max_calls: int | None = None  # the preset's when None
    max_cost: float | None = None
    max_seconds: float | None = None
    num_threads: int = 4
    max_retries: int = 3
    seed: int = 0
    experiment: str | None = None
    register: bool = True
    cache: bool = True  # answer repeated model requests from the shared cache (models/cache.py)
    traces: bool = True  # every LLM call as an MLflow trace span of the run (tracing.RunTracer)

    def __post_init__(self):
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731 (frozen dataclass)
        if not isinstance(self.raw_input, str) or not self.raw_input.strip():
            raise ConfigError("raw input is empty: describe the task, e.g. 'Classify the sentiment of a movie review'")
        if len(self.raw_input) > RAW_INPUT_LIMIT:
            raise ConfigError(f"raw input is {len(self.raw_input)} characters; the limit is {RAW_INPUT_LIMIT}")
        if self.search not in SEARCH_PRESETS:
            raise ConfigError(f"unknown search preset {self.search!r}; choose one of {', '.join(SEARCH_PRESETS)}")
        preset = SEARCH_PRESETS[self.search]
        for key in PRESET_KEYS:
            if getattr(self, key) is None:
                set_(key, getattr(preset, key))
        _positive(self, "synthetic_data_size", "iterations", "candidates", "batch_size", "num_threads", "max_calls")
        for key in ("max_cost", "max_seconds"):
            value = getattr(self, key)
            if value is not None and not value > 0:
                raise ConfigError(f"{key.replace('_', ' ')} must be positive, got {value!r}")
        if self.synthetic_data_size < 2:
            raise ConfigError(f"synthetic data size must be at least 2, got {self.synthetic_data_size}")
        _non_negative(self, "num_demos", "max_retries", "lambda_penalty")
        for key, limit in SIZE_LIMITS.items():
            value = getattr(self, key)
            if value is not None and value > limit:
                raise ConfigError(f"{key.replace('_', ' ')} is {value}; the limit is {limit}")
        if not 0.0 < self.train_ratio < 1.0:
            raise ConfigError(f"train ratio must be strictly between 0 and 1, got {self.train_ratio}")
        if self.name is not None and not _NAME_RE.match(self.name):
            raise ConfigError(f"invalid name {self.name!r}: use letters, digits, '-', '_' or '.' (at most 100)")
        for key in ("input_fields", "output_fields"):
            value = getattr(self, key)
            if value is not None:
                set_(key, _field_names(key, value))
        if self.input_fields and self.output_fields and set(self.input_fields) & set(self.output_fields):
            raise ConfigError("a field cannot be both an input and an output field")
        if self.valid_data and not self.train_data:
            raise ConfigError("--valid-data needs --train-data")
        set_("field_map", dict(self.field_map))
        set_("hooks", tuple(self.hooks))
        set_("data_steps", tuple(self.data_steps))
        set_("metric_weights", dict(self.metric_weights))
        set_("eval_metrics", tuple(self.eval_metrics))
        for spec, weight in self.metric_weights.items():
            if not isinstance(weight, (int, float)) or isinstance(weight, bool) or weight <= 0:
                raise ConfigError(f"metric weight for {spec!r} must be a positive number, got {weight!r}")
        _check_registered(self)

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

    def to_options(self) -> dict[str, Any]:
        """The flat options (`promptomatix optimize` flags, `optimize(**options)` keywords and
        `--config` file keys) that rebuild this config with `config_from_options`."""
        from promptomatix.metaprompts import source_name
        from promptomatix.options import OPTIONS

        options = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                   if f.name not in ("task_model", "optimizer_model", "plugin_options")}
        options |= {k: source_name(options[k]) for k in TEMPLATE_KEYS}
        # Plugin options flat, as they are given; those at their default left out.
        options |= {k: v for k, v in self.plugin_options.items() if k in OPTIONS.names() and v != OPTIONS.get(k).default}
        # Sizes equal to the preset's and optimizer settings equal to what the task model
        # implies are left out, so that a re-run with another --search or --model moves them.
        preset = SEARCH_PRESETS[self.search]
        for key in PRESET_KEYS:
            if options[key] == getattr(preset, key):
                del options[key]
        options |= dataclasses.asdict(self.task_model)
        derived = {"model": self.task_model.model, "api_base": self.task_model.api_base,
                   "temperature": 0.7, "max_tokens": OPTIMIZER_MAX_TOKENS}
        options |= {f"optimizer_{k}": v for k, v in dataclasses.asdict(self.optimizer_model).items() if v != derived[k]}
        for key in ("api_base", "optimizer_api_base"):
            if options.get(key):
                options[key] = redact_url(options[key])
        return {k: list(v) if isinstance(v, tuple) else v for k, v in options.items()}

    def to_params(self, backend_options: tuple[str, ...] = ()) -> dict[str, str]:
        """Flat key/value pairs for MLflow params: the settings that take effect, each once.
        Options read by one backend only (`BACKEND_OPTIONS`) are kept for the backend that reads
        them (`backend_options`, its `Backend.options`); unset (None) and empty options are left
        out, as is long text such as the raw input, and the task model's settings, which are
        logged under the registered model's keys (`registry.model_params`). `to_options`
        (config.yaml) keeps them all."""
        from promptomatix.metaprompts import source_name

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


def config_from_options(**options) -> OptimizationConfig:
    """Build the config from flat options. `model`, `temperature`, `max_tokens` and `api_base`
    set the task model, the same names prefixed `optimizer_` the optimizer model, which
    otherwise follows the task model (and its API base) but samples warmer. None means unset."""
    from promptomatix.options import OPTIONS

    options = {k: v for k, v in options.items() if v is not None}
    known = {f.name for f in dataclasses.fields(OptimizationConfig)} | set(MODEL_KEYS) | {f"optimizer_{k}" for k in MODEL_KEYS}
    plugin = {k: options.pop(k) for k in list(options) if k not in known and k in OPTIONS.names()}
    unknown = sorted(set(options) - known)
    if unknown:
        choices = (known - {"task_model", "optimizer_model", "plugin_options"}) | set(OPTIONS.names())
        raise ConfigError(f"unknown option {unknown[0]!r}; known options: {', '.join(sorted(choices))}")
    if plugin:
        options["plugin_options"] = {**options.get("plugin_options", {}), **plugin}
    if "raw_input" not in options:
        raise ConfigError("raw input is empty: describe the task, e.g. 'Classify the sentiment of a movie review'")
    options = {k: _coerce(k, v) for k, v in options.items()}
    task = {k: options.pop(k) for k in MODEL_KEYS if k in options}
    opt = {k: options.pop(f"optimizer_{k}") for k in MODEL_KEYS if f"optimizer_{k}" in options}
    if task:
        options["task_model"] = ModelSettings(**task)
    defaults = {"model": task.get("model", DEFAULT_MODEL), "api_base": task.get("api_base"),
                "temperature": 0.7, "max_tokens": OPTIMIZER_MAX_TOKENS}
    options["optimizer_model"] = ModelSettings(**(defaults | opt))
    for key in ("input_fields", "output_fields"):
        if isinstance(options.get(key), list):
            options[key] = tuple(options[key])
    return OptimizationConfig(**options)


_NUMBERS = {"temperature": float, "optimizer_temperature": float, "max_tokens": int, "optimizer_max_tokens": int,
            "train_ratio": float, "lambda_penalty": float, "synthetic_data_size": int, "batch_size": int,
            "iterations": int, "candidates": int, "num_demos": int, "num_threads": int, "max_retries": int,
            "seed": int, "max_calls": int, "max_cost": float, "max_seconds": float}
_TEXTS = ("raw_input", "name", "backend", "optimizer", "dspy_module", "task_type", "search",
          "train_data", "valid_data", "experiment", "model", "optimizer_model", "api_base", "optimizer_api_base")


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


def _coerce(key: str, value: Any) -> Any:
    """Option values from a file or from Python, checked and converted to their types once."""
    label = key.replace("_", " ")
    if key in _NUMBERS:
        return to_number(label, value, _NUMBERS[key])
    if key in _TEXTS and not isinstance(value, str):
        raise ConfigError(f"{label} must be text, got {value!r}")
    if key in TEMPLATE_KEYS and not (isinstance(value, str) or callable(value)):
        raise ConfigError(f"{label} must be a template name, a .txt file, module:function or a function, got {value!r}")
    if key in ("input_fields", "output_fields", "hooks", "data_steps", "eval_metrics"):
        items = value.split(",") if isinstance(value, str) and key in ("input_fields", "output_fields") else value
        if isinstance(items, str) or not isinstance(items, (list, tuple)) or not all(isinstance(i, str) for i in items):
            raise ConfigError(f"{label} must be a list of names, got {value!r}")
        return tuple(items)
    if key in ("field_map", "metric_weights", "plugin_options") and not isinstance(value, dict):
        raise ConfigError(f"{label} must be a mapping, got {value!r}")
    if key in ("register", "cache", "traces") and not isinstance(value, bool):
        raise ConfigError(f"{key} must be true or false, got {value!r}")
    return value


def load_options(path: str) -> dict[str, Any]:
    """Options from a YAML (or JSON) file: a mapping of option names to values."""
    import yaml

    try:
        with open(path, encoding="utf-8") as handle:
            options = yaml.safe_load(handle) or {}
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(options, dict):
        raise ConfigError(f"{path}: expected a mapping of option names to values")
    return {str(k).replace("-", "_"): v for k, v in options.items()}


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


def _check_registered(config: OptimizationConfig) -> None:
    # Imported here: the registries import this module for their types.
    from promptomatix.backends import get_backend
    from promptomatix.tasks import get_task_type

    from promptomatix.callbacks import HOOKS
    from promptomatix.data.selflabel import INPUTS_FIELDS
    from promptomatix.data.steps import DATA_STEPS
    from promptomatix.data.synthetic import SYNTHETIC_FIELDS
    from promptomatix.intake import INTAKE_FIELDS
    from promptomatix.metaprompts import check_source
    from promptomatix.options import resolve
    from promptomatix.scoring import METRICS, metric_shape

    object.__setattr__(config, "plugin_options", resolve(config.plugin_options))
    for key, allowed in (("intake_prompt", INTAKE_FIELDS), ("synthetic_prompt", SYNTHETIC_FIELDS),
                         ("inputs_prompt", INPUTS_FIELDS)):
        check_source(getattr(config, key), allowed, key.replace("_", " "))
    for spec in (*config.metric_weights, *config.eval_metrics):  # an entry point's metric too
        name = spec.partition(":")[0]
        metric_shape(name, METRICS.get(name))
    get_backend(config.backend)
    for hook in config.hooks:
        HOOKS.get(hook)
    for step in config.data_steps:
        DATA_STEPS.get(step)
    if config.task_type is not None:
        get_task_type(config.task_type)
