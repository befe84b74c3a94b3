"""The original Promptomatix guide's names (keywords, flags and values) translated onto ours.

Nothing below this layer sees a guide name: `simple_meta_prompt` becomes `meta_prompt`,
`quick_search` becomes `quick`, `model_name` + `model_provider` become one LiteLLM model name,
and so on. Both the guide's Python keywords (`translate_options`) and its command-line flags
(cli/guide.py) go through `fold_guide_options`, so the two cannot drift.
"""

from __future__ import annotations

import ast
from typing import Any

from promptomatix.config import DEFAULT_MODEL, SEARCH_PRESETS
from promptomatix.errors import ConfigError

# --- the guide's names and ours --------------------------------------------------------------

GUIDE_BACKENDS = {"simple_meta_prompt": "meta_prompt", "dspy": "dspy"}
GUIDE_SEARCH_TYPES = {"quick_search": "quick", "moderate_search": "moderate", "heavy_search": "heavy"}
# Task type spellings the original's metrics knew, where ours differ.
GUIDE_TASK_TYPES = {"question-answering": "qa", "text-classification": "classification",
                    "text-generation": "generation"}
# The original's providers: the LiteLLM prefix of their models and, for `local`, the API base
# the original assumed. Another provider name is taken as a LiteLLM (or plugin) provider as is.
GUIDE_PROVIDERS = {"openai": ("openai", None), "anthropic": ("anthropic", None),
                   "databricks": ("databricks", None), "togetherai": ("together_ai", None),
                   "local": ("openai", "http://localhost:8000/v1")}
# A provider given without a model name: the original's defaults for it.
GUIDE_DEFAULT_MODELS = {"openai": "gpt-4o", "togetherai": "mistralai/Mistral-Small-24B-Instruct-2501"}

# Guide keyword -> our option, where only the name differs.
RENAMED = {
    "human_input": "raw_input",
    "model_name": "model",
    "model_api_base": "api_base",
    "config_model_name": "optimizer_model",
    "config_model_api_base": "optimizer_api_base",
    "config_temperature": "optimizer_temperature",
    "config_max_tokens": "optimizer_max_tokens",
    "search_type": "search",
    "trainer": "optimizer",
    "local_train_data_path": "train_data",
    "local_test_data_path": "valid_data",
}
# Guide keywords with no counterpart here, and what to do instead.
REFUSED = {
    "model_api_key": "API keys are read from the environment (e.g. OPENAI_API_KEY), so they never reach MLflow",
    "config_model_api_key": "API keys are read from the environment (e.g. OPENAI_API_KEY), so they never reach MLflow",
    "session_id": "a session id is the MLflow run id, which MLflow assigns",
    "huggingface_dataset_name": "pass train_data='hf:NAME' (and valid_data='hf:NAME:test') with a raw input",
}

# Our `optimize` command's parameter -> the guide's spelling of its flag.
GUIDE_FLAGS = {
    "raw_input": "--raw_input",
    "backend": "--backend",
    "dspy_module": "--dspy_module",
    "model": "--model_name",
    "api_base": "--model_api_base",
    "temperature": "--temperature",
    "max_tokens": "--max_tokens",
    "optimizer_model": "--config_model_name",
    "optimizer_api_base": "--config_model_api_base",
    "optimizer_temperature": "--config_temperature",
    "optimizer_max_tokens": "--config_max_tokens",
    "optimizer": "--trainer",
    "search": "--search_type",
    "synthetic_data_size": "--synthetic_data_size",
    "train_ratio": "--train_ratio",
    "lambda_penalty": "--lambda_penalty",
    "task_type": "--task_type",
    "input_fields": "--input_fields",
    "output_fields": "--output_fields",
    "train_data": "--local_train_data_path",
    "valid_data": "--local_test_data_path",
}

# --- keywords: guide -> ours ------------------------------------------------------------------

def translate_options(options: dict[str, Any]) -> dict[str, Any]:
    """The guide's keywords (ours may be mixed in) as `promptomatix.optimize` options.

    `model_name`/`model_provider` set the task model only, as in the guide: the optimizer model
    is then `config_model_name` (+ `config_model_provider`) or, without them, the default
    (`DEFAULT_MODEL`, the embedded model).

    Raises ConfigError for a guide value with no meaning here (an unknown backend or search
    type, an API key, a keyword given twice under both names); options that are ours pass
    through unchanged and are checked by `config_from_options`."""
    options = {k: v for k, v in options.items() if v is not None}
    for key, why in REFUSED.items():
        if key in options:
            raise ConfigError(f"{key} is not accepted: {why}")
    load_local = options.pop("load_data_local", None)
    provider = options.pop("model_provider", None)
    optimizer_provider = options.pop("config_model_provider", None)
    out: dict[str, Any] = {}
    given_as: dict[str, str] = {}
    for key, value in options.items():
        target = RENAMED.get(key, key)
        if target in out and out[target] != value:
            raise ConfigError(f"{given_as[target]} and {key} are the same option with different values: give one")
        out[target], given_as[target] = value, key
    if "search" in out:
        out["search"] = search_name(out["search"])
    if isinstance(out.get("task_type"), str):
        out["task_type"] = GUIDE_TASK_TYPES.get(out["task_type"], out["task_type"])
    fold_guide_options(out, {"model_provider": provider, "config_model_provider": optimizer_provider},
                       load_local, KEYWORDS)
    guide_model = "model_name" in options or provider is not None
    if guide_model and "optimizer_model" not in out:
        # The guide's model_name/model_provider name the task model only; the optimizer model
        # (intake, data, rewrites) stays promptomatix's default unless config_model_name says.
        out["optimizer_model"] = DEFAULT_MODEL
    return out


def backend_name(name: Any) -> str:
    """Our backend for the guide's name (`simple_meta_prompt` -> `meta_prompt`); our own names
    and registered plugins pass; anything else is the registry's ConfigError, with the guide's names."""
    from promptomatix.backends import BACKENDS

    if not isinstance(name, str):
        raise ConfigError(f"backend must be text, got {name!r}")
    if name in GUIDE_BACKENDS:
        return GUIDE_BACKENDS[name]
    try:
        BACKENDS.get(name)  # our registry's error names the choices, and a failed plugin's reason
    except ConfigError as exc:
        raise ConfigError(f"{exc} (the guide's names: simple_meta_prompt, dspy)") from None
    return name


def guide_backend_name(name: str) -> str:
    """The guide's spelling of one of our backends (`meta_prompt` -> `simple_meta_prompt`)."""
    return {ours: guide for guide, ours in GUIDE_BACKENDS.items()}.get(name, name)


def search_name(name: Any) -> str:
    """Our search preset for the guide's search type (`quick_search` -> `quick`)."""
    if name in GUIDE_SEARCH_TYPES:
        return GUIDE_SEARCH_TYPES[name]
    if name in SEARCH_PRESETS:
        return name
    raise ConfigError(f"unknown search type {name!r}; choose one of {', '.join(GUIDE_SEARCH_TYPES)}")


def model_name(name: str | None, provider: str, label: str = "model_provider") -> tuple[str, str | None]:
    """`(LiteLLM model name, API base or None)` for the guide's model name and provider:
    ("gpt-3.5-turbo", "openai") -> "openai/gpt-3.5-turbo"; ("llama3", "local") -> "openai/llama3"
    at http://localhost:8000/v1. A name already carrying the provider's prefix is kept."""
    if not isinstance(provider, str) or not provider.strip():
        raise ConfigError(f"{label} must be a provider name, got {provider!r}")
    key = provider.strip().lower().removeprefix("modelprovider.")
    prefix, api_base = GUIDE_PROVIDERS.get(key, (key, None))
    if not name:
        if key not in GUIDE_DEFAULT_MODELS:
            raise ConfigError(f"{label} {provider!r} needs a model name too (model_name / --model_name)")
        name = GUIDE_DEFAULT_MODELS[key]
    if not isinstance(name, str):
        raise ConfigError(f"model name must be text, got {name!r}")
    return (name if name.startswith(f"{prefix}/") else f"{prefix}/{name}"), api_base


def field_list(key: str, value: Any) -> Any:
    """Field names as the guide passed them: a list, "a,b", or a Python list in a string
    ("['a', 'b']", as the original's CLI took them)."""
    if isinstance(value, str) and value.strip().startswith("["):
        try:
            value = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError):
            raise ConfigError(f"{key.replace('_', ' ')} {value!r} is not a list of names") from None
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{key.replace('_', ' ')} must be a list of names, got {value!r}")
    return value


# How the guide's combined options are spelled in messages: as Python keywords, or as flags.
KEYWORDS = {"load_data_local": "load_data_local=True", "train_data": "local_train_data_path",
            "valid_data": "local_test_data_path"}
FLAGS = {"load_data_local": "--load_data_local", "train_data": "--local_train_data_path",
         "valid_data": "--local_test_data_path"}
# The guide's provider options: which model (and API base) of ours each one completes.
PROVIDER_KEYS = (("model_provider", "model", "api_base"),
                 ("config_model_provider", "optimizer_model", "optimizer_api_base"))


def fold_guide_options(options: dict[str, Any], providers: dict[str, Any], load_local: Any,
                       spelling: dict[str, str]) -> set[str]:
    """Fold the guide's options that combine with ours into `options` (our names, in place):
    each provider into its model name (and API base, unless given), the backend's guide name,
    a Python list of field names, and the `load_data_local` switch checked against the data
    options. Returns the keys set here. `spelling` names the options in messages (`KEYWORDS` or
    `FLAGS`); `load_local` is None when not given."""
    changed = set()
    for provider_key, model_key, base_key in PROVIDER_KEYS:
        provider = providers.get(provider_key)
        if provider is None:
            continue
        options[model_key], api_base = model_name(options.get(model_key), provider, provider_key)
        changed.add(model_key)
        if api_base and not options.get(base_key):
            options[base_key] = api_base
            changed.add(base_key)
    if options.get("backend") is not None:  # the guide's message for an unknown name
        options["backend"] = backend_name(options["backend"])
    for key in ("input_fields", "output_fields"):
        if key in options:
            options[key] = field_list(key, options[key])
    _check_local_data(load_local, options, spelling)
    return changed


def _check_local_data(load_local: Any, options: dict[str, Any], spelling: dict[str, str]) -> None:
    if load_local is None:
        return
    if not isinstance(load_local, bool):
        raise ConfigError(f"load_data_local must be True or False, got {load_local!r}")
    if load_local and not options.get("train_data"):
        raise ConfigError(f"{spelling['load_data_local']} needs {spelling['train_data']} "
                          f"(and optionally {spelling['valid_data']})")
    if not load_local and "train_data" in options:
        raise ConfigError("local data paths were given with load_data_local=False: set it True to use them")


