"""An `evaluate` module called as a function (`scoring.modules`): the same answers as
`module.compute`, without its Arrow round trip for string inputs."""

from __future__ import annotations

import textwrap

import evaluate
import pytest

from promptomatix.scoring import builtin_metrics_dir
from promptomatix.scoring.modules import compute_function
from tests.test_scoring import BUILTINS, CASES, SOURCES


def _module(tmp_path, name: str, features: str, body: str):
    path = tmp_path / name
    path.mkdir()
    (path / f"{name}.py").write_text(textwrap.dedent(f'''
        import datasets
        import evaluate
        import numpy as np


        class Module(evaluate.Metric):
            def _info(self):
                return evaluate.MetricInfo(description="test", citation="", inputs_description="",
                                           features=datasets.Features({features}))

            def _compute(self, predictions, references):
        ''') + textwrap.indent(textwrap.dedent(body), " " * 8))
    return evaluate.load(str(path), keep_in_memory=True)


def _count_compute(module, monkeypatch) -> list[dict]:
    """The calls of `module.compute` from now on (each still computed)."""
    calls: list[dict] = []
    real = module.compute
    monkeypatch.setattr(module, "compute", lambda **kwargs: calls.append(kwargs) or real(**kwargs))
    return calls


def _refuse(*args, **kwargs):
    raise AssertionError("module.compute was called")


@pytest.mark.parametrize("name", BUILTINS)
def test_each_builtin_metric_gives_what_compute_gives_without_calling_it(name, monkeypatch):
    key, predictions, references, _ = CASES[name]
    extra = {"sources": SOURCES[name]} if name in SOURCES else {}
    module = evaluate.load(str(builtin_metrics_dir() / name), keep_in_memory=True)
    expected = module.compute(predictions=predictions, references=references, **extra)

    monkeypatch.setattr(module, "compute", _refuse)
    assert compute_function(module)(predictions=predictions, references=references, **extra) == expected


def test_a_module_drawing_random_numbers_draws_the_same_ones_as_under_compute(tmp_path):
    module = _module(tmp_path, "noisy", '{"predictions": datasets.Value("string"), '
                                        '"references": datasets.Value("string")}',
                     'return {"noisy": float(np.random.rand())}')
    expected = module.compute(predictions=["a"], references=["b"])
    assert compute_function(module)(predictions=["a"], references=["b"]) == expected


def test_inputs_that_are_not_strings_go_through_compute_which_casts_them(tmp_path, monkeypatch):
    module = _module(tmp_path, "ints", '{"predictions": datasets.Value("int32"), '
                                       '"references": datasets.Value("int32")}',
                     'return {"types": sorted({type(v).__name__ for v in predictions + references})}')
    calls = _count_compute(module, monkeypatch)

    assert compute_function(module)(predictions=[1, 0], references=[True, 1]) == {"types": ["int"]}  # cast
    assert len(calls) == 1


def test_a_string_module_given_other_values_goes_through_compute_which_refuses_them(tmp_path, monkeypatch):
    module = _module(tmp_path, "strs", '{"predictions": datasets.Value("string"), '
                                       '"references": datasets.Value("string")}',
                     'return {"types": sorted({type(v).__name__ for v in predictions + references})}')
    calls = _count_compute(module, monkeypatch)
    run = compute_function(module)

    assert run(predictions=["a"], references=["b"]) == {"types": ["str"]}
    assert calls == []
    with pytest.raises(ValueError, match="don't match the expected format"):  # compute's own check
        run(predictions=[1], references=["b"])
    assert len(calls) == 1
