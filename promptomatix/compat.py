"""The interface of the original Promptomatix guide, translated at the edge onto ours.

In: the guide's keywords and flags (`process_input(human_input=..., backend="simple_meta_prompt",
model_name=..., model_provider=..., search_type="quick_search", load_data_local=True, ...)`,
`promtomatic --raw_input ... --backend dspy --dspy_module dspy.ChainOfThought`).
Out: one call of `promptomatix.api.optimize` with our option names, and the original's result
dict (`result`, `initial_prompt`, `session_id`, `backend`, `metrics`, `synthetic_data`,
`input_fields`, `output_fields`, `task_type`) plus ours (`run_id`, the registered versions).

Nothing below this module sees a guide name: `simple_meta_prompt` becomes `meta_prompt`,
`quick_search` becomes `quick`, `model_name` + `model_provider` become one LiteLLM model name,
and so on. A session id is the MLflow run id of the optimization. Errors are the typed
exceptions of `promptomatix.errors`; nothing returns `{"error": ...}`.

    from promptomatix.main import process_input          # or: from promptomatix import process_input
    result = process_input(human_input="Classify text sentiment", backend="dspy")
    result["result"], result["metrics"]["optimized_prompt_score"], result["session_id"]
"""

from __future__ import annotations

import ast
import copy
import json
import logging
import sys
from typing import Any

import click
from click.core import ParameterSource

from promptomatix.config import DEFAULT_MODEL, SEARCH_PRESETS
from promptomatix.errors import ConfigError, PromptomatixError, RegistryError, UsageError

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
_WRAPPED = "__promptomatix_guide__"  # marks a callback add_guide_aliases has wrapped


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
    if "backend" in out:
        out["backend"] = backend_name(out["backend"])
    if "search" in out:
        out["search"] = search_name(out["search"])
    if isinstance(out.get("task_type"), str):
        out["task_type"] = GUIDE_TASK_TYPES.get(out["task_type"], out["task_type"])
    for key in ("input_fields", "output_fields"):
        if key in out:
            out[key] = field_list(key, out[key])
    if provider is not None:
        out["model"], api_base = model_name(out.get("model"), provider, "model_provider")
        if api_base and "api_base" not in out:
            out["api_base"] = api_base
    if optimizer_provider is not None:
        out["optimizer_model"], api_base = model_name(out.get("optimizer_model"), optimizer_provider,
                                                      "config_model_provider")
        if api_base and "optimizer_api_base" not in out:
            out["optimizer_api_base"] = api_base
    _check_local_data(load_local, out)
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


def _check_local_data(load_local: Any, options: dict[str, Any]) -> None:
    if load_local is None:
        return
    if not isinstance(load_local, bool):
        raise ConfigError(f"load_data_local must be True or False, got {load_local!r}")
    if load_local and "train_data" not in options:
        raise ConfigError("load_data_local=True needs local_train_data_path (and optionally local_test_data_path)")
    if not load_local and "train_data" in options:
        raise ConfigError("local data paths were given with load_data_local=False: set it True to use them")


# --- results: ours -> the guide's dict ---------------------------------------------------------

def result_dict(result) -> dict[str, Any]:
    """The original's result dict for an `OptimizationResult`, with our run and registry keys.

    `synthetic_data` is every example the run optimized on (train then validation, as logged in
    the run); `metrics.cost` is the total LLM cost in dollars, `metrics.time_taken` seconds."""
    import mlflow

    params = mlflow.get_run(result.run_id).data.params
    backend = params.get("promptomatix.backend", "")
    return {
        "result": result.prompt,
        "initial_prompt": result.initial_prompt,
        "session_id": result.run_id,
        "backend": guide_backend_name(backend),
        "metrics": {
            "initial_prompt_score": result.initial_score,
            "optimized_prompt_score": result.optimized_score,
            "cost": result.usage.cost,
            "time_taken": round(result.seconds, 6),
        },
        "synthetic_data": _logged_examples(result.run_id, "train") + _logged_examples(result.run_id, "valid"),
        "llm_cost": result.usage.cost,
        "input_fields": list(result.spec.input_fields),
        "output_fields": list(result.spec.output_fields),
        "task_type": result.spec.task_type,
        # ours
        "run_id": result.run_id,
        "experiment_id": result.experiment_id,
        "registered_model": result.model_name,
        "model_version": result.model_version,
        "model_uri": result.model_uri,
        "prompt_uri": result.prompt_uri,
    }


def _logged_examples(run_id: str, name: str) -> list[dict]:
    import mlflow

    from promptomatix import record

    text = mlflow.artifacts.load_text(f"runs:/{run_id}/{record.data_artifact(name)}")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


# --- the Python API of the guide ---------------------------------------------------------------

def process_input(**kwargs) -> dict[str, Any]:
    """Run one optimization from the guide's keywords (see `translate_options`); returns the
    original's result dict (`result_dict`). `raw_input` and `human_input` both name the task.

    `config` may be a dict of further keywords (as the original's web API passed) or our
    `OptimizationConfig`; `show_progress` and `callbacks` are passed to `optimize`."""
    from promptomatix.api import optimize
    from promptomatix.config import OptimizationConfig

    config = kwargs.pop("config", None)
    run = {key: kwargs.pop(key) for key in ("show_progress", "callbacks") if key in kwargs}
    if isinstance(config, dict):
        kwargs = config | kwargs
        config = None
    elif config is not None and not isinstance(config, OptimizationConfig):
        raise ConfigError(f"config must be a dict of options or an OptimizationConfig, got {type(config).__name__}")
    return result_dict(optimize(config, **run, **translate_options(kwargs)))


def optimize_with_feedback(session_id: str, **kwargs) -> dict[str, Any]:
    """Optimize again from the version session `session_id` registered, with its open feedback
    (`save_feedback`); returns the new run's result dict (a new session id).

    Raises RegistryError for an unknown session or one that registered nothing, UsageError when
    the version has no open feedback (as the original refused), ConfigError for bad keywords."""
    ref = session_ref(session_id)
    from promptomatix.api import optimize
    from promptomatix.feedback import list_feedback

    if not list_feedback(ref, resolved=False):
        raise UsageError(f"no open feedback on {ref} (session {session_id}): add some with save_feedback first")
    run = {key: kwargs.pop(key) for key in ("show_progress", "callbacks") if key in kwargs}
    return result_dict(optimize(from_=ref, **run, **translate_options(kwargs)))


def save_feedback(text: str, start_offset: int, end_offset: int, feedback: str, prompt_id: str) -> dict[str, Any]:
    """Store a comment (`feedback`) on characters [start_offset, end_offset) of the prompt that
    session `prompt_id` registered (a run id, or a `name@version` ref); `text` is that span
    (or the whole prompt, or empty). Returns the stored comment as a dict with the original's
    keys (`text`, `start_offset`, `end_offset`, `feedback`, `prompt_id`, `created_at`, `id`)
    and ours. A `text` that is not the span is a ConfigError, and nothing is stored."""
    ref = prompt_id if "@" in str(prompt_id) else session_ref(prompt_id)
    from promptomatix.feedback import add_feedback

    if text:
        prompt = _prompt_of(ref)
        if text not in (prompt, prompt[start_offset:end_offset]):
            raise ConfigError(f"text {text[:60]!r} is not characters {start_offset}..{end_offset} of the prompt of "
                              f"{ref} (they read {prompt[start_offset:end_offset][:60]!r})")
    stored = add_feedback(ref, feedback, start=start_offset, end=end_offset)
    data = stored.to_dict()
    return data | {"id": stored.id, "text": stored.text, "start_offset": stored.start, "end_offset": stored.end,
                   "feedback": stored.comment, "prompt_id": prompt_id, "created_at": stored.created}


def session_ref(session_id: str) -> str:
    """`name@version` of the model version an optimization run (a session) registered.

    The run's tag `promptomatix.model_uri` says it; else the version tagged `run_id` = the
    session. RegistryError when there is no such run or it registered nothing."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient()
    try:
        run = client.get_run(str(session_id))
    except MlflowException:
        raise RegistryError(f"no session {session_id!r}: a session id is the run id of an optimization") from None
    uri = run.data.tags.get("promptomatix.model_uri", "")
    if uri.startswith("models:/"):
        name, _, version = uri.removeprefix("models:/").rpartition("/")
        return f"{name}@{version}"
    versions = [v for v in client.search_model_versions(f"tags.run_id = '{run.info.run_id}'")
                if v.tags.get("run_id") == run.info.run_id]
    if not versions:
        raise RegistryError(f"session {session_id!r} registered no prompt version "
                            f"(it ran with register off, or did not finish)")
    first = min(versions, key=lambda v: v.creation_timestamp)
    return f"{first.name}@{first.version}"


def _prompt_of(ref: str) -> str:
    """The prompt template of the model version `name@version` (RegistryError if unknown)."""
    from promptomatix.feedback import prompt_text
    from promptomatix.lifecycle.versions import resolve

    return prompt_text(resolve(ref))


# --- the guide's command line ------------------------------------------------------------------

class _GuideValue(click.ParamType):
    """A parameter type that maps the guide's values onto ours, then converts as `inner` does."""

    def __init__(self, inner: click.ParamType, mapping: dict[str, str]):
        self.inner = inner
        self.mapping = mapping
        self.name = inner.name

    def convert(self, value, param, ctx):
        if isinstance(value, str):
            value = self.mapping.get(value, value)
        return self.inner.convert(value, param, ctx)

    def get_metavar(self, param, ctx=None):
        return self.inner.get_metavar(param, ctx) if hasattr(self.inner, "get_metavar") else None


def add_guide_aliases(command: click.Command) -> click.Command:
    """Give the `optimize` command (or a copy of it) the guide's flags, in place, and return it.

    Flags that only differ in spelling are added to the existing options' spellings
    (`--raw_input` next to `--raw-input`); the guide's values are translated as they are parsed
    (`--backend simple_meta_prompt`, `--search_type quick_search`); `--model_provider`,
    `--config_model_provider` and `--load_data_local` are new options combined with the model
    and data options before the command runs. Calling it again changes nothing."""
    params = {param.name: param for param in command.params}
    for name, spelling in GUIDE_FLAGS.items():
        param = params.get(name)
        if param is not None and spelling not in param.opts:
            param.opts.append(spelling)
    if "backend" in params and not isinstance(params["backend"].type, _GuideValue):
        params["backend"].type = _GuideValue(params["backend"].type, GUIDE_BACKENDS)
    if "task_type" in params and not isinstance(params["task_type"].type, _GuideValue):
        params["task_type"].type = _GuideValue(params["task_type"].type, GUIDE_TASK_TYPES)
    search = params.get("search")
    if search is not None and not isinstance(search.type, _GuideValue):
        inner = search.type
        if isinstance(inner, click.Choice):  # the guide's names are valid choices too
            inner = click.Choice([*inner.choices, *GUIDE_SEARCH_TYPES])
        search.type = _GuideValue(inner, GUIDE_SEARCH_TYPES)
    for option in (
        click.Option(["--model_provider", "--model-provider"],
                     help="The guide's provider of --model_name (openai, anthropic, togetherai, local, "
                          "or any LiteLLM provider): openai + gpt-4o is openai/gpt-4o."),
        click.Option(["--config_model_provider"], help="The guide's provider of --config_model_name."),
        click.Option(["--load_data_local"], is_flag=True, default=False,
                     help="The guide's switch for --local_train_data_path / --local_test_data_path."),
    ):
        if option.name not in params:
            command.params.append(option)
    if not getattr(command.callback, _WRAPPED, False):
        command.callback = _guide_callback(command.callback)
    return command


def _guide_callback(callback):
    """`callback` after the guide's combined options are folded into ours."""

    def run(**kwargs):
        ctx = click.get_current_context()
        for provider_key, model_key, base_key in (("model_provider", "model", "api_base"),
                                                  ("config_model_provider", "optimizer_model", "optimizer_api_base")):
            provider = kwargs.pop(provider_key, None)
            if provider:
                kwargs[model_key], api_base = model_name(kwargs.get(model_key), provider, provider_key)
                ctx.set_parameter_source(model_key, ParameterSource.COMMANDLINE)
                if api_base and not kwargs.get(base_key):
                    kwargs[base_key] = api_base
                    ctx.set_parameter_source(base_key, ParameterSource.COMMANDLINE)
        if isinstance(kwargs.get("backend"), str):  # the guide's message for an unknown name
            kwargs["backend"] = backend_name(kwargs["backend"])
        if kwargs.pop("load_data_local", False) and not kwargs.get("train_data"):
            raise ConfigError("--load_data_local needs --local_train_data_path (and optionally --local_test_data_path)")
        for key in ("input_fields", "output_fields"):
            value = kwargs.get(key)
            if isinstance(value, str) and value.strip().startswith("["):
                kwargs[key] = ",".join(field_list(key, value))
        return callback(**kwargs)

    setattr(run, _WRAPPED, True)
    run.__doc__ = callback.__doc__
    return run


class _GuideCommand(click.Command):
    """A top-level command: typed errors become one line and the error's exit status; plugin
    options are flags as on `promptomatix optimize`."""

    def get_params(self, ctx):
        from promptomatix.cli import with_plugin_options

        return with_plugin_options(super().get_params(ctx))

    def invoke(self, ctx):
        logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
        for noisy in ("LiteLLM", "litellm", "httpx", "mlflow", "alembic", "urllib3"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
        from promptomatix.signals import Terminated, exit_now, stop_on_signals

        with stop_on_signals():  # SIGTERM/SIGHUP end the run KILLED, as under `promptomatix`
            try:
                return super().invoke(ctx)
            except PromptomatixError as exc:
                click.echo(f"Error: {exc}", err=True)
                sys.exit(exc.exit_code)
            except Terminated as exc:
                click.echo(f"Error: {exc}", err=True)
                exit_now(exc.exit_code)


def guide_command(base: click.Command | None = None, name: str = "promtomatic") -> click.Command:
    """A copy of `promptomatix optimize` (or `base`) named `name`, taking the guide's flags as
    well as ours. `base` itself is left as it is."""
    if base is None:
        from promptomatix.cli import optimize as base
    params = []
    for param in base.params:
        clone = copy.copy(param)
        clone.opts, clone.secondary_opts = list(param.opts), list(param.secondary_opts)
        params.append(clone)
    command = _GuideCommand(name, params=params, callback=base.callback, help=base.help,
                            context_settings=dict(base.context_settings))
    return add_guide_aliases(command)


def main() -> None:
    """The `promtomatic` console script: `promptomatix optimize` under the guide's name."""
    guide_command().main(prog_name="promtomatic")


def __getattr__(name: str):
    # `promtomatic`, the click command, is built when asked for: building it reads
    # `promptomatix.cli`, which imports this module to add the guide's flags to `optimize`.
    if name == "promtomatic":
        return guide_command()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
