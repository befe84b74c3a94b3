"""`LM`: one configured model, called through LiteLLM with retries and usage counting."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import re
import socket
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import openai

from promptomatix.config import ModelSettings, redact_url
from promptomatix.errors import ConfigError, LLMError, ParseError
from promptomatix.models.cache import ResponseCache
from promptomatix.models.providers import import_litellm
from promptomatix.models.usage import UsageMeter
from promptomatix.scoring.labels import best_label, read_label

log = logging.getLogger(__name__)


def check_model(settings: ModelSettings) -> None:
    """Fail early, with one line (a ConfigError), on a model LiteLLM cannot route, whose API key
    is missing, or whose API base cannot be reached."""
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
    if handler is None and settings.api_base:  # a custom handler may not speak HTTP at all
        check_api_base(settings.api_base, settings.model)
    if handler is not None and hasattr(handler, "check_model"):  # e.g. the embedded model's file
        try:
            handler.check_model(settings.model.split("/", 1)[1] if "/" in settings.model else "")
        except ValueError as exc:
            raise ConfigError(str(exc).removeprefix("litellm.BadRequestError: ")) from None
    missing = litellm.validate_environment(settings.model, api_base=settings.api_base).get("missing_keys", [])
    missing = [key for key in missing if key.endswith("_API_KEY")]
    if missing:
        raise ConfigError(f"model {settings.model!r} needs {', '.join(missing)} set in the environment")


def check_api_base(api_base: str, model: str, timeout: float = 5.0) -> None:
    """A ConfigError when nothing accepts a connection at `api_base`'s host and port (a wrong
    URL or a server that is not running), so that the mistake is reported at once instead of
    after every retry of the first call. Skipped when a proxy carries the connection."""
    parts = urlsplit(api_base)
    where = redact_url(api_base)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"API base {where!r} of model {model!r} is not an http(s) URL")
    proxies = urllib.request.getproxies()
    if proxies.get(parts.scheme) and not urllib.request.proxy_bypass(parts.hostname):
        return
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise ConfigError(f"API base {where!r} of model {model!r} has an invalid port") from None
    try:
        socket.create_connection((parts.hostname, port), timeout=timeout).close()
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        raise ConfigError(f"cannot reach the API base {where} of model {model!r}: {reason}") from None


class LM:
    """Text in, text out. Transient provider faults are retried with exponential backoff;
    every call's tokens, cost and retries go to the shared `UsageMeter`."""

    def __init__(self, settings: ModelSettings, meter: UsageMeter, *, max_retries: int = 3,
                 backoff: float = 1.0, seed: int | None = None, cache: ResponseCache | None = None,
                 tracer=None):
        self.settings = settings
        self.cache = cache
        # Optional: records each request as a trace span (`tracking.tracer.RunTracer`'s `call`).
        self.tracer = tracer
        self.meter = meter
        self.max_retries = max_retries
        self.backoff = backoff
        self.seed = seed

    @property
    def model(self) -> str:
        return self.settings.model

    def complete(self, prompt: str, *, max_tokens: int | None = None, stop: list[str] | None = None,
                 temperature: float | None = None, response_format: dict | None = None,
                 frequency_penalty: float | None = None, salt: str = "") -> str:
        return self._send(prompt, max_tokens=max_tokens, stop=stop, temperature=temperature,
                          response_format=response_format, frequency_penalty=frequency_penalty, salt=salt)[0]

    def choose(self, prompt: str, labels: Sequence[str], *, stop: list[str] | None = None, salt: str = "") -> Choice:
        """The model's answer to `prompt` as one of `labels`. A provider that scores options
        (the embedded model) returns every label's log-probability; a model that supports
        structured output answers under a schema whose only values are the labels; any other
        answers in a few words of text, mapped to the label it names (`scoring.labels.read_label`).
        An answer naming no label has `label` None and is counted in `unmapped_answers`."""
        labels = list(labels)
        mode = choice_mode(self.settings.model)
        if mode == "score":
            text, scores = self._send(prompt, salt=salt, scores=True, **score_request(labels))
        elif mode == "schema":
            schema = {"type": "object", "properties": {"label": {"type": "string", "enum": labels}},
                      "required": ["label"], "additionalProperties": False}
            text, scores = self._send(prompt, max_tokens=_label_tokens(labels) + 16, salt=salt,
                                      response_format={"type": "json_schema",
                                                       "json_schema": {"name": "label", "schema": schema, "strict": True}})
        else:
            text, scores = self._send(prompt, max_tokens=_label_tokens(labels), stop=stop, salt=salt)
        if scores is not None and len(scores) == len(labels):
            return Choice(best_label(labels, scores), text, tuple(scores))
        label = read_label(text, labels)
        if label is None:
            self.meter.add(unmapped_answers=1)
            log.debug("%s: answer %r names none of the labels %s", self.model, _short(text), labels)
        return Choice(label, text)

    def _send(self, prompt: str, **options) -> tuple[str, list[float] | None]:
        """One request: the answer's text and, with `scores`, the option scores a provider
        returned as logprobs (None when it returned none); a trace span with a tracer."""
        if self.tracer is None:
            return self._request(prompt, **options)
        shown = {k: v for k, v in options.items() if v not in (None, "", False) and k != "salt"}
        with self.tracer.call(self.model, prompt, shown) as record:
            answer, option_scores = self._request(prompt, record=record, **options)
        return answer, option_scores

    def _request(self, prompt: str, *, max_tokens: int | None = None, stop: list[str] | None = None,
                 temperature: float | None = None, response_format: dict | None = None,
                 frequency_penalty: float | None = None, salt: str = "", scores: bool = False,
                 record=None) -> tuple[str, list[float] | None]:
        kwargs = self._kwargs(prompt, max_tokens=max_tokens, stop=stop, temperature=temperature,
                              response_format=response_format, frequency_penalty=frequency_penalty, salt=salt)
        # Repeatable requests (greedy, or seeded) are answered from the cache when asked before.
        request = None
        if self.cache is not None and (kwargs["temperature"] == 0 or "seed" in kwargs):
            request = {k: v for k, v in kwargs.items() if k != "max_retries"} | ({"scores": True} if scores else {})
            request["api_base"] = redact_url(self.settings.api_base) if self.settings.api_base else None
            cached = self.cache.get(request)
            if cached is not None:
                self.meter.add(cache_hits=1)
                text, option_scores = (json.loads(cached)["text"], json.loads(cached)["scores"]) if scores \
                    else (cached, None)
                if record:
                    record(text, cached=True)
                return text, option_scores
        self.meter.take()  # the budget: BudgetExhausted once a limit is reached
        response = self._completion(kwargs)
        usage = getattr(response, "usage", None)
        spent = {"prompt_tokens": getattr(usage, "prompt_tokens", 0) or 0,
                 "completion_tokens": getattr(usage, "completion_tokens", 0) or 0,
                 "cost": float(response._hidden_params.get("response_cost") or 0.0)}
        self.meter.add(calls=1, **spent)
        answer = response.choices[0].message.content or ""
        if record:
            record(answer, **spent)
        option_scores = _option_scores(response) if scores else None
        if request is not None and answer.strip():  # an empty answer is a fault, not worth keeping
            assert self.cache is not None  # `request` is only built when there is a cache
            self.cache.put(request, json.dumps({"text": answer, "scores": option_scores}) if scores else answer)
        return answer, option_scores

    def _kwargs(self, prompt: str, *, max_tokens: int | None, stop: list[str] | None, temperature: float | None,
                response_format: dict | None, frequency_penalty: float | None, salt: str) -> dict[str, Any]:
        """LiteLLM's arguments for one request."""
        kwargs: dict[str, Any] = {
            "model": self.settings.model,
            "messages": [{"role": "user", "content": prompt}],
            # The settings' max tokens caps every call: a caller asks for what it needs, up to that.
            "max_tokens": min(max_tokens, self.settings.max_tokens) if max_tokens else self.settings.max_tokens,
            "temperature": self.settings.temperature if temperature is None else temperature,
            # This loop is the only retry loop (the provider SDK's own is off), so that every
            # retry waits its backoff and is counted.
            "max_retries": 0,
        }
        if stop:
            kwargs["stop"] = stop
        if self.settings.api_base:
            kwargs["api_base"] = self.settings.api_base
        if self.seed is not None:
            # The seed follows from the request (and `salt`), not from the order of calls: runs
            # repeat whatever the threads' timing, and sampled calls on one prompt (the rewrites
            # of an iteration) differ by their salt.
            digest = hashlib.sha256(f"{self.seed}\0{salt}\0{prompt}".encode()).digest()
            kwargs["seed"] = int.from_bytes(digest[:4], "big") % 2**31
        if response_format:
            kwargs["response_format"] = response_format
        if frequency_penalty is not None:
            kwargs["frequency_penalty"] = frequency_penalty
        return kwargs

    def _completion(self, kwargs: dict[str, Any]):
        """LiteLLM's answer, transient faults retried with backoff (each counted); other API
        errors as `LLMError`."""
        litellm = import_litellm()
        transient = (litellm.exceptions.RateLimitError, litellm.exceptions.APIConnectionError,
                     litellm.exceptions.Timeout, litellm.exceptions.InternalServerError,
                     litellm.exceptions.ServiceUnavailableError)
        for attempt in range(self.max_retries + 1):
            try:
                return litellm.completion(**kwargs)
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
        raise AssertionError("unreachable: the last attempt returns or raises")

    def complete_json(self, prompt: str, schema: dict, *, max_tokens: int | None = None,
                      temperature: float | None = None, frequency_penalty: float | None = None,
                      attempts: int = 3, salt: str = "") -> dict:
        """Structured output: the answer as a dict that parsed as JSON (the schema is enforced by
        the provider where it can; required keys are checked here). Parse failures are retried,
        sampling warmer, and counted, then raised: never an empty answer in their place."""
        response_format = {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema}}
        last = ""
        for attempt in range(attempts):
            last = self.complete(prompt, max_tokens=max_tokens, response_format=response_format,
                                 frequency_penalty=frequency_penalty, salt=f"{salt}\0{attempt}",
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


@dataclass(frozen=True)
class Choice:
    """An answer that must be one of a task's labels: `label` (None when the answer named none),
    the model's `text`, and each label's log-probability (in the order asked) where the
    provider scores labels, for calibration."""

    label: str | None
    text: str
    scores: tuple[float, ...] | None = None


def score_request(labels: Sequence[str]) -> dict:
    """The request options asking a provider that scores options (`choice_mode` "score") for
    every label's log-probability: a string schema whose only values are the labels."""
    schema = {"type": "string", "enum": list(labels)}
    return {"response_format": {"type": "json_schema", "json_schema": {"name": "label", "schema": schema}},
            "max_tokens": 1, "temperature": 0.0}


def choice_mode(model: str) -> str:
    """How `model` answers a choice among labels: `score` (its provider scores each option:
    a LiteLLM custom handler with `scores_options = True`, such as the embedded model),
    `schema` (structured output, per LiteLLM's model table) or `text`."""
    litellm = import_litellm()
    provider = model.split("/", 1)[0]
    handler = next((e["custom_handler"] for e in litellm.custom_provider_map if e["provider"] == provider), None)
    if handler is not None:
        return "score" if getattr(handler, "scores_options", False) else "text"
    return "schema" if litellm.supports_response_schema(model) else "text"


DEFAULT_CONTEXT_TOKENS = 8192  # for a model LiteLLM's table does not know
# Characters per token of English text, estimated low: a prompt checked against a context by
# it fits, and an answer cap sized by it is not too short (a cap too large only costs time).
CHARS_PER_TOKEN = 3.5


def context_tokens(model: str) -> int:
    """How many prompt tokens `model` takes (LiteLLM's model table, where the embedded model
    enters its own), or a cautious default for a model the table does not know."""
    litellm = import_litellm()
    try:
        info = litellm.get_model_info(model)
    except Exception:  # LiteLLM raises a bare Exception for a model it does not know
        return DEFAULT_CONTEXT_TOKENS
    return int(info.get("max_input_tokens") or info.get("max_tokens") or DEFAULT_CONTEXT_TOKENS)


def _label_tokens(labels: Sequence[str]) -> int:
    """Tokens for a label answer: the longest label (about 3 characters a token) and a margin,
    never the general answer cap (a base model rarely stops on its own)."""
    return max(len(label) for label in labels) // 3 + 6


def _option_scores(response) -> list[float] | None:
    """The option scores a provider put in the answer's logprobs (`top_logprobs`, one per
    option, in the order asked), or None."""
    logprobs = getattr(response.choices[0], "logprobs", None)
    content = getattr(logprobs, "content", None) if logprobs is not None else None
    if not content:
        return None
    top = getattr(content[0], "top_logprobs", None) or []
    return [float(entry.logprob) for entry in top] or None


def _strip_fences(text: str) -> str:
    text = text.strip()
    if text.startswith("```"):
        text = text.split("\n", 1)[-1].rsplit("```", 1)[0]
    return text


def _short(value: Any, limit: int = 200) -> str:
    text = redact(" ".join(str(value).split()))
    return text if len(text) <= limit else text[:limit] + "..."


_SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL", re.IGNORECASE)
_URL_USER = re.compile(r"(?P<scheme>\b[a-z][a-z0-9+.-]*://)[^/\s@]+@", re.IGNORECASE)
_URL_QUERY_SECRET = re.compile(r"(?P<name>[?&](?:[a-z_-]*key|[a-z_-]*token|sig|signature|password)=)[^&#\s]+",
                               re.IGNORECASE)


def redact(text: str) -> str:
    """`text` fit to show or record: the values of secret-looking environment variables (names
    with KEY, TOKEN, SECRET, PASSWORD or CREDENTIAL, values of 8 characters or more), URL user
    and password, and key-like URL query values replaced by `***`. Provider errors may echo
    the key or the URL a request went to; our error messages end up in run tags and logs."""
    for name, value in os.environ.items():
        if len(value) >= 8 and _SECRET_NAME.search(name) and value in text:
            text = text.replace(value, "***")
    text = _URL_USER.sub(r"\g<scheme>***@", text)
    return _URL_QUERY_SECRET.sub(r"\g<name>***", text)
