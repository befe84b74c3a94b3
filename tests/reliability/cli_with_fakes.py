"""`promptomatix` as a user runs it, in its own process, with the scripted providers of
`reliability_support` installed: `python cli_with_fakes.py optimize --model reliable/fake ...`.
`python cli_with_fakes.py python-api` runs the same job through `promptomatix.optimize` instead,
as a user's script does.

`reliable/fake` answers with the scripted sentiment task. With RELIABILITY_FAIL_REWRITES=1 in
the environment, every rewrite call fails the way a provider rejects a key, echoing the key
(OPENAI_API_KEY) and the API base it was sent to, as some providers and proxies do.
With RELIABILITY_BLOCK=rewrite:<file> the first rewrite call (iteration 1, after the starting
prompt was scored and saved), and with
RELIABILITY_BLOCK=register:<file> the return from `mlflow.register_model` (the model version is
written, the registration not finished), write <file> and block, for a test to signal the
process there.
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import litellm  # noqa: E402
import reliability_support as support  # noqa: E402


BLOCK_AT, _, MARKER = os.environ.get("RELIABILITY_BLOCK", "").partition(":")


def block() -> None:
    with open(MARKER, "w") as marker:
        marker.write(BLOCK_AT)
    time.sleep(600)


def answer(prompt: str, params: dict) -> str:
    if BLOCK_AT == "rewrite" and "Improved instruction" in prompt:
        block()
    if os.environ.get("RELIABILITY_FAIL_REWRITES") == "1" and "Improved instruction" in prompt:
        raise litellm.AuthenticationError(
            message=f"Incorrect API key provided: {os.environ.get('OPENAI_API_KEY')} "
                    f"(sent to {os.environ.get('RELIABILITY_API_BASE')})",
            llm_provider="reliable", model="fake")
    return support.scripted_answer(prompt, params)


if __name__ == "__main__":
    support.install("reliable", support.FaultyLLM(answer, rate=0.0))
    if BLOCK_AT == "register":
        import mlflow

        register_model = mlflow.register_model

        def register_then_block(*args, **kwargs):
            register_model(*args, **kwargs)
            block()

        mlflow.register_model = register_then_block
    if sys.argv[1:] == ["python-api"]:
        import promptomatix

        promptomatix.optimize(raw_input=support.RAW_INPUT, model="reliable/fake", synthetic_data_size=6,
                              iterations=2, candidates=1, num_threads=2, name="reviews", show_progress=False)
        sys.exit(0)
    from promptomatix.cli import main

    sys.argv[0] = "promptomatix"
    main()
