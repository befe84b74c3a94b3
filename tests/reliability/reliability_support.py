"""Shared by the reliability tests (and by the worker processes of the server test).

- `scripted_answer(prompt, params)`: a stateless scripted model for a sentiment task. The same
  prompt always gets the same answer, so a run can be repeated exactly, faults or not, in any
  thread order and in any process.
- `FaultyLLM`: a LiteLLM custom provider that answers with `scripted_answer` but fails a share
  of the calls: 429, 500, 503, timeouts, truncated JSON, malformed JSON, empty content. Which
  calls fail depends on the requests only (see the class), not on the thread order.
- `install(name, handler)`: registers a handler as provider `name` (models `name/<anything>`).

Kept out of a conftest.py on purpose: `tests/conftest.py` is imported as module `conftest`, and a
second conftest without a package would replace it for the other test modules.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import Counter

import litellm

RAW_INPUT = "Classify the sentiment of a movie review as positive or negative"
INTAKE = {"description": "Classify the sentiment of a movie review.", "task_type": "classification",
          "input_fields": ["review"], "output_fields": ["sentiment"], "labels": ["positive", "negative"]}
BETTER = "Read the review CAREFULLY and answer positive or negative."

EXCEPTION_FAULTS = ("rate_limit", "server_error", "unavailable", "timeout")
CONTENT_FAULTS = ("truncated_json", "malformed_json", "empty")


def _digest(*parts: object) -> int:
    return int(hashlib.sha256("\x1f".join(map(str, parts)).encode()).hexdigest()[:16], 16)


def _schema_of(params: dict) -> dict | None:
    response_format = params.get("response_format")
    if isinstance(response_format, dict) and response_format.get("type") == "json_schema":
        return response_format["json_schema"]["schema"]
    return None


def input_request(prompt: str, output: str) -> str | None:
    """The label a synthetic-input request asks for (as conftest.input_request; this module is
    also imported by worker processes, outside pytest)."""
    lines = prompt.rstrip().split("\n")
    if len(lines) < 2 or not lines[-1].endswith(":") or lines[-1] == f"{output}:" \
            or not lines[-2].startswith(f"{output}: "):
        return None
    return lines[-2][len(output) + 2:].strip()


def scripted_answer(prompt: str, params: dict) -> str:
    """Intake names the sentiment task; synthetic batches are reviews that say "good" or "bad"
    (unique per prompt); rewrites give `BETTER`; the task model is right only when the prompt
    says CAREFULLY."""
    if "Request:" in prompt:
        return json.dumps(INTAKE)
    if "new, varied and realistic examples" in prompt:
        examples = _schema_of(params)["properties"]["examples"]
        label = examples["items"]["properties"]["sentiment"]["enum"][0]
        word = "good" if label == "positive" else "bad"
        tag = _digest(prompt) % 10**8
        return json.dumps({"examples": [{"review": f"a {word} film, take {tag}-{i}", "sentiment": label}
                                        for i in range(examples["minItems"])]})
    if "Improved instruction" in prompt:
        return json.dumps({"instruction": BETTER})
    asked = input_request(prompt, "Sentiment")
    if asked is not None:  # a synthetic input, unique per request
        seed = params.get("seed")
        return f"a {'good' if asked == 'positive' else 'bad'} film, take {_digest(prompt, seed) % 10**8} " \
               f"w{_digest(prompt, seed, 1) % 10**6} w{_digest(prompt, seed, 2) % 10**6}"
    if "Sentiment:" in prompt:
        if "CAREFULLY" not in prompt:
            return "maybe"
        return "positive" if "good" in prompt.rsplit("Review:", 1)[-1] else "negative"
    return "ok"


def _exception(kind: str) -> Exception:
    args = {"llm_provider": "faulty", "model": "fake"}
    if kind == "rate_limit":
        return litellm.RateLimitError(message="429 Too Many Requests: rate limit reached", **args)
    if kind == "server_error":
        return litellm.InternalServerError(message="500 Internal Server Error", **args)
    if kind == "unavailable":
        return litellm.ServiceUnavailableError(message="503 Service Unavailable", **args)
    return litellm.Timeout(message="Request timed out after 600 s", **args)


def _corrupt(kind: str, text: str) -> str:
    if kind == "truncated_json":
        return text[: max(1, len(text) // 2)]
    if kind == "malformed_json":
        return "{'instruction': unquoted, " + text[1:]
    return ""


class FaultyLLM(litellm.CustomLLM):
    """Fails about `rate` of the calls, never more than `max_in_a_row` times for the same request
    (so that retries can succeed):

    - structured calls (a JSON schema in `response_format`; made one at a time, by intake, the
      synthetic data and the rewrites): every `structured_period`-th (default `1/rate`) fails,
      taking the kinds in turn, bad JSON first: truncated, malformed, empty, then 429, 500, 503,
      timeout;
    - plain-text calls (the task model, scored in threads): those whose hash of (salt, request,
      times sent before) falls under `rate` fail, with the exception kinds in turn. A truncated
      or empty plain answer cannot be told from a real one, so these get no content faults.

    Which calls fail is fixed by the requests, whatever the thread order. `kinds` restricts the
    faults to those kinds. Counts what it injected in `injected` (kind -> count), calls in `calls`."""

    def __init__(self, answer=scripted_answer, *, rate: float = 0.1, max_in_a_row: int = 2, salt: str = "",
                 kinds: tuple[str, ...] | None = None, structured_period: int | None = None):
        super().__init__()
        self.answer = answer
        self.rate = rate
        self.structured_period = structured_period
        self.max_in_a_row = max_in_a_row
        self.salt = salt
        self.kinds = kinds
        self.calls = 0
        self.injected: Counter[str] = Counter()
        self._sent: Counter[str] = Counter()
        self._structured = 0
        self._turn = Counter()
        self._lock = threading.Lock()

    def _fault_for(self, request: str, attempt: int, structured: bool) -> str | None:
        """The fault for this sending of `request` (`attempt` from 0), or None. Call under the lock."""
        kinds = CONTENT_FAULTS + EXCEPTION_FAULTS if structured else EXCEPTION_FAULTS
        kinds = tuple(k for k in kinds if self.kinds is None or k in self.kinds)
        if not self.rate or not kinds or attempt >= self.max_in_a_row:
            return None
        if structured:
            period = self.structured_period or max(1, round(1 / self.rate))
            number, self._structured = self._structured, self._structured + 1
            if number % period != period // 2:
                return None
        elif (_digest(self.salt, attempt, request) % 10**6) / 10**6 >= self.rate:
            return None
        turn = self._turn[structured]
        self._turn[structured] += 1
        return kinds[turn % len(kinds)]

    def completion(self, model, messages, api_base=None, custom_prompt_dict=None, model_response=None,
                   print_verbose=None, encoding=None, api_key=None, logging_obj=None, optional_params=None,
                   **kwargs):
        params = dict(optional_params or {})
        prompt = "\n\n".join(str(m.get("content", "")) for m in messages)
        schema = _schema_of(params)
        request = prompt + "\x1e" + json.dumps(schema, sort_keys=True)
        with self._lock:
            attempt = self._sent[request]
            self._sent[request] += 1
            self.calls += 1
            fault = self._fault_for(request, attempt, schema is not None)
            if fault:
                self.injected[fault] += 1
        if fault in EXCEPTION_FAULTS:
            raise _exception(fault)
        text = self.answer(prompt, params)
        if fault:
            text = _corrupt(fault, text)
        response = litellm.ModelResponse(model=model)
        response.choices[0].message.content = text
        response.usage = litellm.Usage(prompt_tokens=len(prompt.split()), completion_tokens=len(text.split()),
                                       total_tokens=len(prompt.split()) + len(text.split()))
        response._hidden_params["response_cost"] = 0.001
        return response

    @property
    def exception_faults(self) -> int:
        return sum(n for k, n in self.injected.items() if k in EXCEPTION_FAULTS)

    @property
    def content_faults(self) -> int:
        return sum(n for k, n in self.injected.items() if k in CONTENT_FAULTS)


def install(name: str, handler: litellm.CustomLLM) -> str:
    """Make `handler` answer models `name/...` (through LiteLLM and our model layer); returns
    the model name `name/fake`."""
    from promptomatix.models.providers import import_litellm, register_provider

    register_provider(name, lambda: handler, replace=True)
    import_litellm()
    return f"{name}/fake"
