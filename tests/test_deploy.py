"""deploy/: what `mlflow run deploy --backend kubernetes --backend-config deploy/kubernetes_config.json`
needs, checked as far as a machine without a cluster allows. The config and job template go
through MLflow's own parsing and rendering, and the rendered Job through the Kubernetes client's
model of a batch/v1 Job; the cluster MLproject is the local one with a docker image; the image
builds where a docker daemon answers."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml
from conftest import skip_or_fail

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"


def load_yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def test_the_cluster_mlproject_is_the_local_one_with_the_image():
    local, cluster = load_yaml(ROOT / "MLproject"), load_yaml(DEPLOY / "MLproject")
    assert local.pop("conda_env") == "conda.yaml"
    image = cluster.pop("docker_env")["image"]
    assert cluster == local  # same name, entry points, parameters and commands
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert image == f"promptomatix:{version}"
    assert f"-t {image} ." in (DEPLOY / "Dockerfile").read_text()


def entry_point_args(argv: list[str]) -> list[str]:
    """What the pipeline scripts make of their command line (pipelines/step_utils.py)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("step_utils", ROOT / "pipelines" / "step_utils.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.given(argv)


def test_entry_points_read_words_quoted_by_mlflows_kubernetes_backend():
    assert entry_point_args(["'--raw-input=it'\"'\"'s a b'", "--name=", "--seed=0", "'--name='"]) == [
        "--raw-input=it's a b", "--seed=0"]
    assert entry_point_args(["--raw-input='kept as given'", "'unbalanced"]) == [
        "--raw-input='kept as given'", "'unbalanced"]


def render_job(monkeypatch, entry_point: str, parameters: dict) -> dict:
    """The Job MLflow would submit for `entry_point`, from the shipped config and template."""
    try:
        from mlflow.projects import kubernetes  # imports the Kubernetes client
    except ImportError:
        skip_or_fail("the Kubernetes client is not installed (pip install 'promptomatix[team]')")
    from mlflow.projects import _parse_kubernetes_config
    from mlflow.projects._project_spec import load_project
    from mlflow.projects.utils import get_entry_point_command

    monkeypatch.chdir(ROOT)  # the config names the template relative to the repository root
    monkeypatch.setenv("KUBE_MLFLOW_TRACKING_URI", "http://mlflow.promptomatix.svc:5000")
    config = _parse_kubernetes_config(json.loads((DEPLOY / "kubernetes_config.json").read_text()))
    project = load_project(str(DEPLOY))
    command = get_entry_point_command(project, entry_point, parameters, None)
    return kubernetes._get_kubernetes_job_definition(
        project.name, config["repository-uri"] + ":abc123", "sha256:" + "0" * 64,
        kubernetes._get_run_command(command),
        {"MLFLOW_RUN_ID": "r1", "MLFLOW_TRACKING_URI": "http://localhost:5000", "MLFLOW_EXPERIMENT_ID": "1"},
        config["kube-job-template"])


def test_mlflow_renders_a_valid_kubernetes_job_from_the_config_and_template(monkeypatch):
    try:
        from kubernetes.client import ApiClient, V1Job
    except ImportError:
        skip_or_fail("the Kubernetes client is not installed (pip install 'promptomatix[team]')")

    # raw_input declared in MLproject; iterations, as any other option, a `-P` MLflow passes on
    job = render_job(monkeypatch, "main", {"raw_input": "Classify the sentiment of a movie review", "iterations": "2"})

    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "registry.example.com/ml/promptomatix-job:abc123@sha256:" + "0" * 64
    assert container["command"][:2] == ["python", "pipelines/main.py"]
    assert (ROOT / container["command"][1]).is_file()  # in the image at MLflow's work dir (see the Dockerfile)
    # Kubernetes runs the words without a shell, quotes and all; the entry point takes them off.
    assert "'--raw-input=Classify the sentiment of a movie review'" in container["command"]
    assert entry_point_args(container["command"][2:]) == [
        "--raw-input=Classify the sentiment of a movie review", "--iterations=2"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["MLFLOW_TRACKING_URI"] == "http://mlflow.promptomatix.svc:5000"  # the cluster's view
    assert env["MLFLOW_RUN_ID"] == "r1" and env["LITELLM_LOCAL_MODEL_COST_MAP"] == "True"
    # The Kubernetes client's model of a Job: required fields present, types right, and no key
    # it does not know (those would be dropped on the way in, so the round trip would differ).
    client = ApiClient()
    parsed = client.deserialize(json.dumps(job), "V1Job", "application/json")
    assert isinstance(parsed, V1Job) and parsed.kind == "Job" and parsed.api_version == "batch/v1"
    assert client.sanitize_for_serialization(parsed) == job
    assert parsed.spec.backoff_limit == 0 and parsed.spec.template.spec.restart_policy == "Never"


def test_every_entry_point_renders(monkeypatch):
    from mlflow.projects._project_spec import load_project

    project = load_project(str(DEPLOY))
    for name, entry_point in project._entry_points.items():
        required = {p: str(ROOT / "pyproject.toml") if spec.type == "path" else "x"  # a path must exist
                    for p, spec in entry_point.parameters.items() if spec.default is None}
        job = render_job(monkeypatch, name, required)
        command = job["spec"]["template"]["spec"]["containers"][0]["command"]
        script = next(part for part in command if part.endswith(".py"))
        assert (ROOT / script).is_file(), (name, script)


def test_the_image_builds_with_the_makefile_build_options():
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r'CMAKE_ARGS="([^"]+)"', dockerfile)[1] == re.search(r"CMAKE_ARGS \?= (.+)", makefile)[1]
    for source in re.findall(r"^COPY (.+) \S+$", dockerfile, flags=re.MULTILINE):
        for name in source.split():
            assert (ROOT / name).exists(), name


def docker_daemon() -> str | None:
    """None when a docker daemon answers, else why not."""
    if shutil.which("docker") is None:
        return "no docker client"
    done = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True,
                          timeout=30)
    if done.returncode != 0:
        return "no docker daemon answers: " + " ".join((done.stderr or done.stdout).split())[:200]
    return None


def test_the_image_builds():
    reason = docker_daemon()
    if reason:
        pytest.skip(f"building deploy/Dockerfile needs a docker daemon ({reason})")
    image = load_yaml(DEPLOY / "MLproject")["docker_env"]["image"]
    built = subprocess.run(["docker", "build", "-f", str(DEPLOY / "Dockerfile"), "-t", image, str(ROOT)],
                           capture_output=True, text=True, timeout=3600)
    assert built.returncode == 0, built.stderr[-3000:]
    ran = subprocess.run(["docker", "run", "--rm", image, "promptomatix", "--help"], capture_output=True, text=True,
                         timeout=300)
    assert ran.returncode == 0 and "score" in ran.stdout, ran.stderr[-2000:]
