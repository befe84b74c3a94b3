"""`MeteredLM`: a `dspy.LM` whose every provider call is counted in an optimization's `UsageMeter`.

    lm = MeteredLM(ModelSettings(model="embedded/gemma-3-270m"), meter, num_retries=3)
    with dspy.context(lm=lm):
        program(text="...")          # meter.snapshot().calls == 1

Calls go through LiteLLM (`engine="litellm"`), the route every promptomatix model takes, so the
providers promptomatix registers (`embedded/`, plugins, the test suite's `scripted/`) answer DSPy
too. DSPy's response cache is off (`cache=False`: nothing is written to disk, nothing leaks between
runs); instead one optimization (an LM and its copies) never pays twice for an identical request,
as `promptomatix.scoring.evaluator.Evaluator` never pays twice for a prompt. Requests that differ in any
option (a `rollout_id`, a temperature) are different requests, as in DSPy's own cache.

Metering overrides `forward`/`aforward`, the LM-subclass hook of DSPy 3.4 (the project pins
`dspy<3.5`): DSPy calls it once per provider request, and LiteLLM's response carries the usage
and `_hidden_params["response_cost"]`. With a `tracer` (the run's `tracking.tracer.RunTracer`) each
request, answered or read back from the answers it already has, is also a span of the trace the
backend opened around it (`traces.group`).
"""

from __future__ import annotations

import contextlib
import json
import threading

import dspy

from promptomatix.backends.dspy.traces import answer_text, current_group, usage
from promptomatix.config import ModelSettings
from promptomatix.models.providers import import_litellm
from promptomatix.models.usage import UsageMeter


# The request options a span shows. A list of what to show, not of what to hide: the LM's
# options also hold client settings (the API base, which may carry a key).
SHOWN_OPTIONS = ("temperature", "max_tokens", "stop", "n", "top_p", "seed", "rollout_id", "response_format",
                 "frequency_penalty", "logprobs")


class MeteredLM(dspy.LM):
    """`settings` say which model and how; `meter` receives calls, tokens and cost."""

    def __init__(self, settings: ModelSettings, meter: UsageMeter, *, num_retries: int = 3, tracer=None):
        import_litellm()  # installs promptomatix's LiteLLM providers before DSPy routes a call
        client = {"api_base": settings.api_base} if settings.api_base else {}
        super().__init__(settings.model, temperature=settings.temperature, max_tokens=settings.max_tokens,
                         cache=False, num_retries=num_retries, engine="litellm", **client)
        self.model_settings = settings
        self.meter = meter
        self.tracer = tracer  # shared with copies, as the meter is
        # Shared with copies (`copy()` is shallow): keys carry every request option.
        self._answers: dict[str, object] = {}
        self._answers_lock = threading.Lock()

    def __deepcopy__(self, memo):
        # Programs holding an LM get deep-copied by optimizers; the copy must still count in
        # the same meter, so it is a runtime copy (own history and kwargs), not a new meter.
        return self.copy()

    def forward(self, prompt=None, messages=None, **kwargs):
        with self._span(prompt, messages, kwargs) as span:
            key = self._key(prompt, messages, kwargs)
            known = self._known(key)
            if known is not None:
                span(answer_text(known), cached=True)
                return known
            self.meter.take()  # the optimization's budget: BudgetExhausted once a limit is reached
            return self._record(key, super().forward(prompt=prompt, messages=messages, **kwargs), span)

    async def aforward(self, prompt=None, messages=None, **kwargs):
        with self._span(prompt, messages, kwargs) as span:
            key = self._key(prompt, messages, kwargs)
            known = self._known(key)
            if known is not None:
                span(answer_text(known), cached=True)
                return known
            self.meter.take()
            return self._record(key, await super().aforward(prompt=prompt, messages=messages, **kwargs), span)

    @contextlib.contextmanager
    def _span(self, prompt, messages, kwargs):
        """The request as a span (a no-op without a tracer): its messages and options in, the
        answer, tokens and cost out, under the group DSPy's context carries."""
        if self.tracer is None:
            yield _no_span
            return
        group = current_group()
        options = {**self.kwargs, **kwargs}
        request = {"messages": messages if messages is not None else [{"role": "user", "content": prompt}],
                   **{k: options[k] for k in SHOWN_OPTIONS if options.get(k) is not None}}
        with self.tracer.within(group) if group is not None else contextlib.nullcontext(), \
                self.tracer.call(self.model, None, request) as record:
            yield record

    def _key(self, prompt, messages, kwargs) -> str:
        request = {"prompt": prompt, "messages": messages, "options": {**self.kwargs, **kwargs}}
        return json.dumps(request, sort_keys=True, default=repr)

    def _known(self, key: str):
        with self._answers_lock:
            return self._answers.get(key)

    def _record(self, key: str, response, span):
        prompt_tokens, completion_tokens, cost = usage(response)
        self.meter.add(calls=1, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens, cost=cost)
        span(answer_text(response), prompt_tokens, completion_tokens, cost)
        with self._answers_lock:
            self._answers[key] = response
        return response


def _no_span(*answer, **details) -> None:
    """What a request records of its answer when nothing traces it."""
