"""Optimizations in processes of their own, for the server test:
`python optimize_worker.py NAME KIND [KIND ...]`, with MLFLOW_TRACKING_URI pointing at the
shared server. One process per KIND (`strong` or `weak`), all at once, forked from this one
after the imports: eight fresh interpreters would each spend ~15-30 s of CPU importing LiteLLM,
MLflow and `evaluate` on a 2-core machine, which is not what the test is about. Each child is
its own process with its own connections to the server, made after the fork.

Uses the scripted sentiment task (`reliable/fake`); `weak` makes every rewrite miss the word the
task model needs, so that version keeps the starting score (0.0) while the others reach 1.0.
Prints one JSON line per optimization, in KIND order; exits 1 if any failed."""

import json
import os
import sys
import tempfile
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import reliability_support as support  # noqa: E402

WEAK = "Answer positive or negative for the review."


def weak_answer(prompt: str, params: dict) -> str:
    if "Improved instruction" in prompt:
        return json.dumps({"instruction": WEAK})
    return support.scripted_answer(prompt, params)


def optimize(name: str, weak: bool) -> dict:
    support.install("reliable", support.FaultyLLM(weak_answer if weak else support.scripted_answer, rate=0.0))
    import promptomatix

    result = promptomatix.optimize(raw_input=support.RAW_INPUT, model="reliable/fake", name=name,
                                   synthetic_data_size=8, iterations=1, candidates=2, num_threads=2,
                                   show_progress=False)
    return {"run_id": result.run_id, "model_version": result.model_version,
            "prompt_version": result.prompt_version, "score": result.optimized_score, "prompt": result.prompt}


def main(name: str, kinds: list[str]) -> int:
    # Everything an optimization imports, imported once before forking (nothing connects yet).
    import mlflow.pyfunc  # noqa: F401

    import promptomatix.api  # noqa: F401
    from promptomatix.scoring import build_metric
    from promptomatix.task.types import get_task_type

    task = get_task_type("classification")
    build_metric(task.metric, task.score_key)
    folder = tempfile.mkdtemp(prefix="optimize-worker-")
    children = []
    for index, kind in enumerate(kinds):
        pid = os.fork()
        if pid == 0:
            status = 1
            try:
                result = optimize(name, kind == "weak")
                with open(os.path.join(folder, f"{index}.json"), "w") as out:
                    json.dump(result, out)
                status = 0
            except BaseException:  # os._exit below would swallow it: the test shows stderr
                traceback.print_exc()
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(status)
        children.append(pid)
    codes = {pid: os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in children}
    failed = [pid for pid, code in codes.items() if code != 0]
    for pid in failed:  # the test shows the end of stderr: say which child failed, and how
        print(f"optimization process {pid} exited with {codes[pid]}", file=sys.stderr, flush=True)
    for index in range(len(kinds)):
        path = os.path.join(folder, f"{index}.json")
        if os.path.exists(path):
            with open(path) as result:
                print(result.read(), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2:] or ["strong"]))
