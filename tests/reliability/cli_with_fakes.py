"""`promptomatix` as a user runs it, in its own process, with the scripted providers of
`reliability_support` installed: `python cli_with_fakes.py optimize --model reliable/fake ...`.

`reliable/fake` answers with the scripted sentiment task. With RELIABILITY_FAIL_REWRITES=1 in
the environment, every rewrite call fails the way a provider rejects a key, echoing the key
(OPENAI_API_KEY) and the API base it was sent to, as some providers and proxies do.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import litellm  # noqa: E402
import reliability_support as support  # noqa: E402


def answer(prompt: str, params: dict) -> str:
    if os.environ.get("RELIABILITY_FAIL_REWRITES") == "1" and "Improved instruction" in prompt:
        raise litellm.AuthenticationError(
            message=f"Incorrect API key provided: {os.environ.get('OPENAI_API_KEY')} "
                    f"(sent to {os.environ.get('RELIABILITY_API_BASE')})",
            llm_provider="reliable", model="fake")
    return support.scripted_answer(prompt, params)


if __name__ == "__main__":
    support.install("reliable", support.FaultyLLM(answer, rate=0.0))
    from promptomatix.cli import main

    sys.argv[0] = "promptomatix"
    main()
