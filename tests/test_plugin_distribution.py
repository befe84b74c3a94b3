"""A real plugin distribution (tests/plugin_dist), built and installed with pip, then used by
`promptomatix` in fresh processes: every entry-point group is picked up, and its broken entry
point is reported by name while the others work."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow import MlflowClient

PLUGIN = Path(__file__).parent / "plugin_dist"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """pmx-demo-plugins installed (not imported from source) into a folder of its own."""
    target = tmp_path_factory.mktemp("site")
    source = tmp_path_factory.mktemp("build") / "plugin"
    shutil.copytree(PLUGIN, source)  # the build writes beside its sources: not into the checkout
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--no-index", "--target", str(target), str(source)],
                   check=True, cwd=source, env=os.environ | {"PIP_NO_CACHE_DIR": "1"})
    assert list(target.glob("pmx_demo_plugins-1.0.dist-info"))
    return target


def cli(site, tmp_path, *args):
    env = os.environ | {"PYTHONPATH": str(site), "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/mlflow.db",
                        "MLFLOW_REGISTRY_URI": f"sqlite:///{tmp_path}/mlflow.db", "PMX_MARKER": str(tmp_path / "marker")}
    return subprocess.run([sys.executable, "-m", "promptomatix.cli", *args], capture_output=True, text=True,
                          cwd=tmp_path, env=env, timeout=300)


def test_plugins_lists_every_group_and_the_broken_entry_point(site, tmp_path):
    out = cli(site, tmp_path, "plugins")
    assert out.returncode == 0, out.stderr
    lines = {line.split(" ", 1)[0]: line for line in out.stdout.splitlines() if not line.startswith(" ")}
    for kind, name in [("providers", "canned"), ("data_sources", "words"), ("data_steps", "no_ugly"),
                       ("metrics", "first_word"), ("hooks", "marker"), ("commands", "hello"),
                       ("dspy_optimizers", "Labeled"), ("task_types", "polarity")]:
        assert name in lines[kind], (kind, lines[kind])
    assert "failed plugin 'broken': ModuleNotFoundError" in out.stdout
    assert "meta_prompt" in lines["backends"]  # the built-ins still work


def test_an_optimization_uses_the_installed_plugins(site, tmp_path):
    out = cli(site, tmp_path, "optimize", "--raw-input", "Say whether a text is pos or neg",
              "--model", "canned/v1", "--train-data", "words:8", "--data-step", "no_ugly",
              "--metric", "first_word=1", "--hook", "marker", "--task-type", "polarity",
              "--iterations", "1", "--candidates", "1", "--num-threads", "1", "--name", "plugged", "--quiet")
    assert out.returncode == 0, out.stderr

    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db", f"sqlite:///{tmp_path}/mlflow.db")
    (run,) = client.search_runs([client.get_experiment_by_name("plugged").experiment_id])  # named after --name
    assert run.info.status == "FINISHED"
    assert run.data.params["model/model"] == "canned/v1"
    assert run.data.metrics["data_rejected.no_ugly"] == 1
    assert run.data.tags["promptomatix.task_type"] == "polarity"
    assert (tmp_path / "marker").read_text().startswith(run.info.run_id)
    assert client.get_model_version("plugged", "1").run_id == run.info.run_id


def test_a_plugin_command_runs_and_naming_the_broken_backend_says_why(site, tmp_path):
    hello = cli(site, tmp_path, "hello")
    assert (hello.returncode, hello.stdout.strip()) == (0, "hello from pmx-demo-plugins")

    broken = cli(site, tmp_path, "optimize", "--raw-input", "x", "--model", "canned/v1", "--backend", "broken")
    assert broken.returncode == 2
    assert "Traceback" not in broken.stderr
    assert broken.stderr.strip().splitlines()[-1].startswith(
        "Error: unknown backend 'broken' (its plugin failed: ModuleNotFoundError: No module named "
        "'pmx_demo_plugins.not_there'); choose one of: dspy, meta_prompt")
