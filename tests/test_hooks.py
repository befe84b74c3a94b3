"""Hooks: called before, during and after an optimization; can stop it; their errors are
reported without breaking the run."""

from __future__ import annotations

import mlflow
import pytest
from test_api import run_optimize

from promptomatix.run.callbacks import Callback, register_hook, StopOptimization


class Recorder(Callback):
    def __init__(self):
        self.events = []

    def on_optimization_start(self, task):
        self.events.append(("start", len(task.train), len(task.valid)))

    def on_iteration_end(self, step, best, candidates):
        self.events.append(("iteration", step))

    def on_optimization_end(self, result):
        self.events.append(("end", result.model_version))


def test_hooks_see_start_each_iteration_and_end(tracking, scripted):  # noqa: F811
    hook = Recorder()
    run_optimize(callbacks=[hook], iterations=2)
    assert hook.events == [("start", 4, 4), ("iteration", 0), ("iteration", 1), ("iteration", 2), ("end", "1")]


def test_a_hook_can_stop_the_search_early(tracking, scripted):  # noqa: F811
    class StopWhenPerfect(Callback):
        def on_iteration_end(self, step, best, candidates):
            if best.score == 1.0:
                raise StopOptimization

    result = run_optimize(callbacks=[StopWhenPerfect()], iterations=5)
    history = mlflow.MlflowClient().get_metric_history(result.run_id, "best_score")
    assert [m.step for m in history] == [0, 1]  # stopped after the first iteration reached 1.0
    assert result.optimized_score == 1.0 and result.extra["stopped_early"]


def test_a_failing_hook_is_reported_and_the_run_still_finishes(tracking, scripted):  # noqa: F811
    class Broken(Callback):
        def on_iteration_end(self, step, best, candidates):
            raise RuntimeError("webhook unreachable")

    after = Recorder()
    result = run_optimize(callbacks=[Broken(), after])
    run = mlflow.get_run(result.run_id)
    assert run.info.status == "FINISHED" and result.model_version == "1"
    assert run.data.tags["promptomatix.hook_error.Broken"] == "RuntimeError: webhook unreachable"
    assert result.extra["hook_errors"] == {"Broken": "RuntimeError: webhook unreachable"}
    assert ("end", "1") in after.events  # the other hooks kept running


def test_registered_hooks_are_chosen_by_name(tracking, scripted):  # noqa: F811
    seen = []

    class Named(Callback):
        def on_optimization_end(self, result):
            seen.append(result.run_id)

    register_hook("named-test-hook", Named, replace=True)
    result = run_optimize(hooks=["named-test-hook"], iterations=1)
    assert seen == [result.run_id]


def test_an_unknown_hook_name_is_a_config_error():
    from promptomatix.config import OptimizationConfig
    from promptomatix.config.preflight import checked
    from promptomatix.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown hook 'nope'"):
        checked(OptimizationConfig(raw_input="x", hooks=("nope",)))
