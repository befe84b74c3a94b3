"""`MeteredLM`: a `dspy.LM` whose every provider call is counted in an optimization's `UsageMeter`.

    lm = MeteredLM(ModelSettings(model="embedded/gemma-3-270m"), meter, num_retries=3)
    with dspy.context(lm=lm):
        program(text="...")          # meter.snapshot().calls == 1

Calls go through LiteLLM (`engine="litellm"`), the route every promptomatix model takes, so the
providers promptomatix registers (`embedded/`, plugins, the test suite's `scripted/`) answer DSPy
too. DSPy's response cache is off (`cache=False`: nothing is written to disk, nothing leaks between
runs); instead one optimization (an LM and its copies) never pays twice for an identical request,
as `promptomatix.evaluation.Evaluator` never pays twice for a prompt. Requests that differ in any
option (a `rollout_id`, a temperature) are different requests, as in DSPy's own cache.

Metering overrides `forward`/`aforward`, the LM-subclass hook of DSPy 3.4 (the project pins
`dspy<3.5`): DSPy calls it once per provider request, and LiteLLM's response carries the usage
and `_hidden_params["response_cost"]`.
"""

from __future__ import annotations

import json
import threading

import dspy

from promptomatix.config import ModelSettings
from promptomatix.models.providers import import_litellm
from promptomatix.models.usage import UsageMeter


class MeteredLM(dspy.LM):
    """`settings` say which model and how; `meter` receives calls, tokens and cost."""

    def __init__(self, settings: ModelSettings, meter: UsageMeter, *, num_retries: int = 3):
        import_litellm()  # installs promptomatix's LiteLLM providers before DSPy routes a call
        client = {"api_base": settings.api_base} if settings.api_base else {}
        super().__init__(settings.model, temperature=settings.temperature, max_tokens=settings.max_tokens,
                         cache=False, num_retries=num_retries, engine="litellm", **client)
        self.model_settings = settings
        self.meter = meter
        # Shared with copies (`copy()` is shallow): keys carry every request option.
        self._answers: dict[str, object] = {}
        self._answers_lock = threading.Lock()

    def __deepcopy__(self, memo):
        # Programs holding an LM get deep-copied by optimizers; the copy must still count in
        # the same meter, so it is a runtime copy (own history and kwargs), not a new meter.
        return self.copy()

    def forward(self, prompt=None, messages=None, **kwargs):
        key = self._key(prompt, messages, kwargs)
        known = self._known(key)
        if known is not None:
            return known
        self.meter.take()  # the optimization's budget: BudgetExhausted once a limit is reached
        return self._record(key, super().forward(prompt=prompt, messages=messages, **kwargs))

    async def aforward(self, prompt=None, messages=None, **kwargs):
        key = self._key(prompt, messages, kwargs)
        known = self._known(key)
        if known is not None:
            return known
        self.meter.take()
        return self._record(key, await super().aforward(prompt=prompt, messages=messages, **kwargs))

    def _key(self, prompt, messages, kwargs) -> str:
        request = {"prompt": prompt, "messages": messages, "options": {**self.kwargs, **kwargs}}
        return json.dumps(request, sort_keys=True, default=repr)

    def _known(self, key: str):
        with self._answers_lock:
            return self._answers.get(key)

    def _record(self, key: str, response):
        usage = getattr(response, "usage", None)
        hidden = getattr(response, "_hidden_params", None) or {}
        self.meter.add(
            calls=1,
            prompt_tokens=getattr(usage, "prompt_tokens", 0) or 0,
            completion_tokens=getattr(usage, "completion_tokens", 0) or 0,
            cost=float(hidden.get("response_cost") or 0.0),
        )
        with self._answers_lock:
            self._answers[key] = response
        return response
