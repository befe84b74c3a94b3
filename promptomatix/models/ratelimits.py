"""Shared rate limits: models `shared/<name>` are called through one LiteLLM Router per process.

Several optimizations (and `score` jobs) in one process that name their model `shared/<name>`
share the Router built from the LiteLLM config file PROMPTOMATIX_ROUTER_CONFIG names: the file
a LiteLLM proxy reads (`model_list`, `router_settings`), so one file serves both set-ups:

    model_list:
      - model_name: team-gpt                     # what `--model shared/team-gpt` asks for
        litellm_params:
          model: openai/gpt-4o-mini
          api_key: os.environ/OPENAI_API_KEY
          rpm: 500                               # the provider's limits, counted for everyone
          tpm: 200000
    router_settings:
      routing_strategy: usage-based-routing-v2   # refuse calls over rpm/tpm before sending them

Over a limit (the Router's own count, or the provider's 429) a call fails with LiteLLM's
RateLimitError, which promptomatix's model layer waits out with backoff and asks again, counting
each retry in the run's usage (`total_retries`, the summary's "retries"); `max_retries` (config)
sets how long it keeps trying. The Router's own retries are off by default (`router_settings:
num_retries` turns them on), so that every wait is counted where the user sees it. Processes on
several machines share a limit through a LiteLLM proxy started on the same file instead (see
docs/deployment.md).

Installed as the provider `shared` through this package's `promptomatix.providers` entry point.
"""

from __future__ import annotations

import os
import threading

import litellm

PROVIDER = "shared"
CONFIG_ENV = "PROMPTOMATIX_ROUTER_CONFIG"


class SharedRouter(litellm.CustomLLM):
    """The provider `shared`: forwards each completion to the process's Router (made on first use)."""

    def __init__(self, config_path: str | None = None):
        super().__init__()
        self._config_path = config_path
        self._router = None
        self._models: tuple[str, ...] = ()
        self._lock = threading.Lock()

    @property
    def config_path(self) -> str:
        path = self._config_path or os.environ.get(CONFIG_ENV)
        if not path:
            raise ValueError(f"models {PROVIDER}/<name> need a LiteLLM router config: set {CONFIG_ENV} "
                             f"to its path (see docs/deployment.md)")
        return path

    def router(self):
        with self._lock:
            if self._router is None:
                self._router, self._models = _build_router(self.config_path)
            return self._router

    def check_model(self, name: str) -> None:
        """A ValueError (one line) when the config is missing or broken, or does not name `name`."""
        self.router()
        if name not in self._models:
            raise ValueError(f"model {name!r} is not in the router config {self.config_path} "
                             f"(models: {', '.join(self._models) or 'none'})")

    def completion(self, model, messages, api_base=None, custom_prompt_dict=None, model_response=None,
                   print_verbose=None, encoding=None, api_key=None, logging_obj=None, optional_params=None,
                   **kwargs):
        name = model.split("/", 1)[1] if model.startswith(f"{PROVIDER}/") else model
        params = {k: v for k, v in (optional_params or {}).items() if k not in ("max_retries", "stream")}
        try:
            return self.router().completion(model=name, messages=messages, **params)
        except ValueError as exc:
            # The Router's own refusal (no deployment under its rpm/tpm now) is a plain
            # ValueError ("No deployments available ..."), or one with status 429, which LiteLLM
            # would pass on as a connection error: say what it is.
            from litellm.types.router import RouterErrors

            if getattr(exc, "status_code", None) != 429 and \
                    not str(exc).startswith(RouterErrors.no_deployments_available.value):
                raise
            raise litellm.RateLimitError(message=" ".join(str(exc).split())[:300], llm_provider=PROVIDER,
                                         model=name) from exc


def _build_router(path: str):
    """(Router, its model names) from a LiteLLM config file."""
    import yaml

    try:
        with open(path) as handle:
            config = yaml.safe_load(handle) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"cannot read the router config {path}: {' '.join(str(exc).split())[:200]}") from None
    models = config.get("model_list") if isinstance(config, dict) else None
    if not models or not all(isinstance(m, dict) and m.get("model_name") and m.get("litellm_params") for m in models):
        raise ValueError(f"the router config {path} needs a model_list of entries with model_name and litellm_params")
    settings = dict(config.get("router_settings") or {})
    settings.setdefault("num_retries", 0)  # waits are ours to make and count (see the module docstring)
    try:
        router = litellm.Router(model_list=models, **settings)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"the router config {path} is not accepted by LiteLLM: {' '.join(str(exc).split())[:200]}") from None
    return router, tuple(dict.fromkeys(m["model_name"] for m in models))
