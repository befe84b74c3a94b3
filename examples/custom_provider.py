"""A model provider `echo`: a LiteLLM custom handler whose model `echo/<label>` answers every
request with `<label>`. Handy as a baseline, or to exercise a pipeline without a model.

After `register()`, any model option accepts it: `model="echo/positive"`.
"""

import litellm

from promptomatix.models.providers import register_provider

NAME = "echo"


class EchoLabelLLM(litellm.CustomLLM):
    def completion(self, model, messages, *args, **kwargs):
        label = model.split("/", 1)[-1]  # LiteLLM may pass "echo/positive" or just "positive"
        response = litellm.ModelResponse(model=model)
        response.choices[0].message.content = label
        prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in messages)
        response.usage = litellm.Usage(prompt_tokens=prompt_tokens, completion_tokens=1,
                                       total_tokens=prompt_tokens + 1)
        response._hidden_params["response_cost"] = 0.0  # free: nothing to look up in the cost map
        return response


def register(*, replace: bool = False):
    return register_provider(NAME, EchoLabelLLM, replace=replace)
