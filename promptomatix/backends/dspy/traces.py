"""The DSPy backend's LLM calls as spans of the run's traces, as the meta-prompt backend's are.

`group(tracer, name, attributes)` opens a trace (scoring a program in a step, DSPy's compile) for
the block. The calls DSPy makes inside it, on this thread or in DSPy's worker threads, become its
spans: DSPy's `ParallelExecutor` carries `dspy.context` settings into its threads but not other
context variables, so the group travels as a DSPy setting (`GROUP_SETTING`) and `MeteredLM`
reads it there (`current_group`).
"""

from __future__ import annotations

import contextlib

GROUP_SETTING = "promptomatix_trace_group"  # the dspy.context key the open group travels under


@contextlib.contextmanager
def group(tracer, name: str, attributes: dict | None = None, inputs: dict | None = None):
    """The calls of the block as spans of one trace named `name`, with `inputs` (what the step
    was given) on its top span; the block may `set_outputs` on the span it is given (nothing
    without a tracer)."""
    if tracer is None:
        yield None
        return
    import dspy

    with tracer.phase(name, attributes, inputs) as span, dspy.context(**{GROUP_SETTING: span}):
        yield span


def current_group():
    """The group opened by `group` around this call, whichever thread DSPy runs it on."""
    import dspy

    return dspy.settings.get(GROUP_SETTING)


def answer_text(response) -> str:
    """A LiteLLM response's text: a chat answer's content, or a text completion's."""
    choices = getattr(response, "choices", None) or []
    if not choices:
        return ""
    message = getattr(choices[0], "message", None)
    text = getattr(message, "content", None) if message is not None else getattr(choices[0], "text", None)
    return text or ""


def usage(response) -> tuple[int, int, float]:
    """A LiteLLM response's prompt tokens, completion tokens and cost (its `response_cost`)."""
    counts = getattr(response, "usage", None)
    hidden = getattr(response, "_hidden_params", None) or {}
    return (getattr(counts, "prompt_tokens", 0) or 0, getattr(counts, "completion_tokens", 0) or 0,
            float(hidden.get("response_cost") or 0.0))
