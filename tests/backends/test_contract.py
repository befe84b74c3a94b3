"""The backend contract of `promptomatix.backends.base`: what a backend may use is declared on the
interface, the keep-best rule lives once, and backends import no MLflow (directly or through a
helper), as `run/callbacks.py` promises."""

from __future__ import annotations

import os
import subprocess
import sys

from promptomatix.backends.base import keep_best
from promptomatix.run.callbacks import Callback, CallbackList, StopOptimization


class Ranked:
    def __init__(self, objective: float, label: str):
        self.objective, self.label = objective, label


def test_backends_import_no_mlflow():
    code = ("import sys\n"
            "import promptomatix.backends.base, promptomatix.backends.metaprompt, promptomatix.backends.search\n"
            "import promptomatix.backends.dspy.backend, promptomatix.tracking.record\n"
            "print(sorted(m for m in sys.modules if m == 'mlflow' or m.startswith('mlflow.')))\n")
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert found.stdout.strip() == "[]", found.stdout


def test_ties_keep_the_incumbent_and_the_first_of_equal_challengers_wins():
    start = Ranked(0.5, "start")
    assert keep_best(start, [Ranked(0.5, "same")]) is start
    assert keep_best(start, []) is start
    assert keep_best(start, [Ranked(0.4, "worse"), Ranked(0.7, "first"), Ranked(0.7, "second")]).label == "first"
    assert keep_best(start, [Ranked(0.9, "by key")], key=lambda c: -c.objective) is start


def test_the_stop_request_is_declared_on_every_callback():
    class Stop(Callback):
        def on_iteration_end(self, step, best, candidates):
            raise StopOptimization

    assert Callback().should_stop is False
    events = CallbackList([Callback()], [Stop()])
    assert events.should_stop is False
    events.on_iteration_end(0, None, [])
    assert events.should_stop is True
