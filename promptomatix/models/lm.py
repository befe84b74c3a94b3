"""`LM`: one configured model, called through LiteLLM with retries and usage counting."""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from typing import Any

import openai

from promptomatix.config import ModelSettings
from promptomatix.errors import ConfigError, LLMError, ParseError
from promptomatix.models.providers import import_litellm
from promptomatix.models.usage import UsageMeter

log = logging.getLogger(__name__)


def check_model(settings: ModelSettings) -> None:
    """Fail early, with one line, on a model LiteLLM cannot route or whose API key is missing."""
    litellm = import_litellm()
    try:
        litellm.get_llm_provider(settings.model, api_base=settings.api_base)
    except litellm.exceptions.BadRequestError:
        raise ConfigError(
            f"unknown model provider in {settings.model!r}: use a LiteLLM model name such as "
            f"'openai/gpt-4o-mini', 'ollama/llama3' or 'embedded/gemma-3-270m'"
        ) from None
    provider = settings.model.split("/", 1)[0]
    handler = next((e["custom_handler"] for e in litellm.custom_provider_map if e["provider"] == provider), None)
    if handler is not None and hasattr(handler, "check_model"):  # e.g. the embedded model's file
        try:
            handler.check_model(settings.model.split("/", 1)[1] if "/" in settings.model else "")
        except ValueError as exc:
            raise ConfigError(str(exc).removeprefix("litellm.BadRequestError: ")) from None
    missing = litellm.validate_environment(settings.model, api_base=settings.api_base).get("missing_keys", [])
    missing = [key for key in missing if key.endswith("_API_KEY")]
    if missing:
        raise ConfigError(f"model {settings.model!r} needs {', '.join(missing)} set in the environment")


class LM:
    """Text in, text out. Transient provider faults are retried with exponential backoff;
    every call's tokens, cost and retries go to the shared `UsageMeter`."""

    def __init__(self, settings: ModelSettings, meter: UsageMeter, *, max_retries: int = 3,
                 backoff: float = 1.0, seed: int | None = None):
        self.settings = settings
        self.meter = meter
        self.max_retries = max_retries
        self.backoff = backoff
        self.seed = seed
        self._calls = 0
        self._lock = threading.Lock()

    @property
    def model(self) -> str:
        return self.settings.model

    def complete(self, prompt: str, *, max_tokens: int | None = None, stop: list[str] | None = None,
                 temperature: float | None = None, response_format: dict | None = None,
                 frequency_penalty: float | None = None) -> str:
        litellm = import_litellm()
        transient = (litellm.exceptions.RateLimitError, litellm.exceptions.APIConnectionError,
                     litellm.exceptions.Timeout, litellm.exceptions.InternalServerError,
                     litellm.exceptions.ServiceUnavailableError)
        kwargs: dict[str, Any] = {
            "model": self.settings.model,
            "messages": [{"role": "user", "content": prompt}],
            "max_tokens": max_tokens or self.settings.max_tokens,
            "temperature": self.settings.temperature if temperature is None else temperature,
        }
        if stop:
            kwargs["stop"] = stop
        if self.settings.api_base:
            kwargs["api_base"] = self.settings.api_base
        if self.seed is not None:
            # A new seed per call: sampled calls on the same prompt (rewrites) must differ,
            # and a sequence of calls is still repeatable.
            with self._lock:
                kwargs["seed"] = self.seed + self._calls
                self._calls += 1
        if response_format:
            kwargs["response_format"] = response_format
        if frequency_penalty is not None:
            kwargs["frequency_penalty"] = frequency_penalty
        for attempt in range(self.max_retries + 1):
            try:
                response = litellm.completion(**kwargs)
                break
            except transient as exc:
                if attempt == self.max_retries:
                    raise LLMError(f"{self.model}: {type(exc).__name__} after {attempt + 1} attempts: {_short(exc)}") from exc
                self.meter.add(retries=1)
                delay = self.backoff * 2**attempt * (0.5 + random.random())
                log.warning("%s: %s, retrying in %.1fs", self.model, type(exc).__name__, delay)
                time.sleep(delay)
            except litellm.exceptions.AuthenticationError as exc:
                raise LLMError(f"{self.model}: authentication failed: {_short(exc)}") from exc
            except openai.OpenAIError as exc:  # the base of every other LiteLLM API error
                raise LLMError(f"{self.model}: {type(exc).__name__}: {_short(exc)}") from exc
        usage = getattr(response, "usage", None)
        self.meter.add(
            calls=1,
            prompt_tokens=getattr(usage, "prompt_tokens", 0) or 0,
            completion_tokens=getattr(usage, "completion_tokens", 0) or 0,
            cost=float(response._hidden_params.get("response_cost") or 0.0),
        )
        return response.choices[0].message.content or ""

    def complete_json(self, prompt: str, schema: dict, *, max_tokens: int | None = None,
                      temperature: float | None = None, frequency_penalty: float | None = None,
                      attempts: int = 3) -> dict:
        """Structured output: the answer as a dict that parsed as JSON (the schema is enforced by
        the provider where it can; required keys are checked here). Parse failures are retried,
        sampling warmer, and counted, then raised: never an empty answer in their place."""
        response_format = {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema}}
        last = ""
        for attempt in range(attempts):
            last = self.complete(prompt, max_tokens=max_tokens, response_format=response_format,
                                 frequency_penalty=frequency_penalty,
                                 temperature=temperature if attempt == 0 else max(self.settings.temperature, 0.7))
            try:
                value = json.loads(_strip_fences(last), strict=False)  # raw newlines in strings are common
                if isinstance(value, dict) and all(k in value for k in schema.get("required", [])):
                    return value
            except json.JSONDecodeError:
                pass
            self.meter.add(parse_failures=1)
            log.warning("%s: unparseable JSON answer (attempt %d/%d)", self.model, attempt + 1, attempts)
        raise ParseError(f"{self.model}: no valid JSON after {attempts} attempts; last answer: {_short(last)!r}")


def _strip_fences(text: str) -> str:
    text = text.strip()
    if text.startswith("```"):
        text = text.split("\n", 1)[-1].rsplit("```", 1)[0]
    return text


def _short(value: Any, limit: int = 200) -> str:
    text = " ".join(str(value).split())
    return text if len(text) <= limit else text[:limit] + "..."
