"""One optimization in its own process, for the server test: `python optimize_worker.py NAME
[weak]`, with MLFLOW_TRACKING_URI pointing at the shared server. Uses the scripted sentiment
task (`reliable/fake`); `weak` makes every rewrite miss the word the task model needs, so that
version keeps the starting score (0.0) while the others reach 1.0. Prints the result as JSON."""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import reliability_support as support  # noqa: E402

WEAK = "Answer positive or negative for the review."


def weak_answer(prompt: str, params: dict) -> str:
    if "Improved instruction" in prompt:
        return json.dumps({"instruction": WEAK})
    return support.scripted_answer(prompt, params)


if __name__ == "__main__":
    name, weak = sys.argv[1], sys.argv[2:] == ["weak"]
    support.install("reliable", support.FaultyLLM(weak_answer if weak else support.scripted_answer, rate=0.0))
    import promptomatix

    result = promptomatix.optimize(raw_input=support.RAW_INPUT, model="reliable/fake", name=name,
                                   synthetic_data_size=8, iterations=1, candidates=2, num_threads=2,
                                   show_progress=False)
    print(json.dumps({"run_id": result.run_id, "model_version": result.model_version,
                      "prompt_version": result.prompt_version, "score": result.optimized_score,
                      "prompt": result.prompt}))
