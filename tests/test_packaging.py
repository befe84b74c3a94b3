"""The built wheel works on its own: metrics, templates and modules ship inside the package."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import zipfile
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
METRIC_MODULES = ["brevity", "chrf", "classification", "exact_match", "numeric_match", "rouge_l", "sari", "token_f1"]


def _backend_in_venv() -> bool:
    """Whether this environment has the build backend the project asks for (setuptools>=69
    that can build wheels), so that the wheel can be built without build isolation."""
    try:
        major, minor = (int(part) for part in metadata.version("setuptools").split(".")[:2])
    except metadata.PackageNotFoundError:
        return False
    if (major, minor) >= (70, 1):  # bdist_wheel is part of setuptools from 70.1
        return True
    try:
        metadata.version("wheel")
    except metadata.PackageNotFoundError:
        return False
    return major >= 69


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """The project built as a wheel and installed, without dependencies, into a target folder."""
    tmp = tmp_path_factory.mktemp("packaging")
    # A copy of the sources: building in place would leave build/ and *.egg-info in the work tree.
    source = tmp / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".venv", ".git", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache", "mlruns", "mlartifacts",
        "mlflow.db", "tests"))
    wheels = tmp / "wheels"
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(source)]
    if _backend_in_venv():
        command.insert(5, "--no-build-isolation")
    build = subprocess.run(command, capture_output=True, text=True)
    assert build.returncode == 0, build.stdout + build.stderr
    (wheel,) = wheels.glob("promptomatix-*.whl")
    site = tmp / "site"
    install = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site),
                              str(wheel)], capture_output=True, text=True)
    assert install.returncode == 0, install.stdout + install.stderr
    return wheel, site


def run_installed(site: Path, cwd: Path, code: str) -> dict:
    """Run `code` against the installed copy (not the work tree) from another folder; it prints JSON."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(PYTHONPATH=str(site), HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", HF_EVALUATE_OFFLINE="1",
               LITELLM_LOCAL_MODEL_COST_MAP="True", HF_MODULES_CACHE=str(cwd / "hf_modules"))
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_wheel_holds_the_modules_metrics_and_templates(installed):
    wheel, _ = installed
    names = set(zipfile.ZipFile(wheel).namelist())

    assert "promptomatix/serving.py" in names
    assert "promptomatix/backends/metaprompt.py" in names
    for template in ("intake", "rewrite", "synthetic", "critique"):
        assert f"promptomatix/templates/{template}.txt" in names
    for metric in METRIC_MODULES:
        assert f"promptomatix/builtin_metrics/{metric}/{metric}.py" in names
    assert not any(name.startswith(("tests/", "metrics/")) for name in names)


def test_every_subpackage_and_module_of_the_source_is_in_the_wheel(installed):
    wheel, _ = installed
    names = set(zipfile.ZipFile(wheel).namelist())
    source = {str(p.relative_to(ROOT)) for p in (ROOT / "promptomatix").rglob("*.py") if "__pycache__" not in p.parts}
    assert source - names == set()  # a package missing from pyproject's list would show here


def test_the_installed_package_scores_and_loads_templates_on_its_own(installed, tmp_path):
    _, site = installed

    result = run_installed(site, tmp_path, """
        import json
        import promptomatix
        from promptomatix.scoring import builtin_metrics_dir, Metric, METRICS
        from promptomatix.templates import load_template

        root = builtin_metrics_dir()
        print(json.dumps({
            "package": promptomatix.__file__,
            "metrics_dir": str(root),
            "modules": sorted(p.name for p in root.iterdir() if (p / (p.name + ".py")).is_file()),
            "registered": METRICS.names(),
            "accuracy": Metric("classification", "accuracy").score(["a"], ["a"]).score,
            "rouge": Metric("rouge_l", "rouge_l").score(["the cat sat"], ["the cat sat"]).score,
            "rewrite": load_template("rewrite").template,
        }))
    """)

    site = site.resolve()
    assert Path(result["package"]).resolve().is_relative_to(site)
    assert Path(result["metrics_dir"]).resolve().is_relative_to(site)
    assert result["modules"] == METRIC_MODULES
    assert set(METRIC_MODULES) <= set(result["registered"])
    assert result["accuracy"] == 1.0
    assert result["rouge"] == 1.0
    assert "$instruction" in result["rewrite"] and "$failures" in result["rewrite"]
