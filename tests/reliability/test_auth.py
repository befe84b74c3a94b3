"""A server with users: `mlflow server --app-name basic-auth` (MLflow's own authentication) on
loopback, with an admin, `alice` (READ on everything, the server's default) and `bob` (MANAGE on
the registered model and its prompt), created through MLflow's auth API.

The credentials come from MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD only. A wrong
password, or none, is one line and exit 2 before any work; alice cannot promote or roll back
(one line naming the permission, exit 2, the alias and every tag as they were); bob can; no
password appears in any output (debug logging on), run param, tag, artifact, registered version,
prompt or trace, nor in the files the commands leave."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import mlflow
from mlflow.server import get_app_client
import pytest
from conftest import skip_or_fail
from mlflow import MlflowClient
from reliability_support import RAW_INPUT
from test_secrets import everything_recorded, leaks

import services

HERE = Path(__file__).parent
NAME = "reviews"


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory):
    """The basic-auth server and its three users' passwords (MLflow asks for 12 characters or
    more). Stopped after the module."""
    folder = tmp_path_factory.mktemp("auth-server")
    passwords = {user: f"pw-{user}-{secrets.token_hex(10)}" for user in ("admin", "alice", "bob")}
    try:
        with services.mlflow_auth_server(folder, passwords["admin"]) as url:
            users = get_app_client("basic-auth", tracking_uri=url)
            with pytest.MonkeyPatch.context() as patch:  # the auth API reads them at each request
                patch.setenv("MLFLOW_TRACKING_USERNAME", "admin")
                patch.setenv("MLFLOW_TRACKING_PASSWORD", passwords["admin"])
                for user in ("alice", "bob"):
                    users.create_user(user, passwords[user])
            yield SimpleNamespace(url=url, passwords=passwords, users=users)
    except services.Unavailable as exc:
        skip_or_fail(f"basic-auth tracking server: {exc}")


@pytest.fixture
def as_admin(auth_server, monkeypatch):
    """This process's MLflow client on the auth server, as the admin."""
    services.point_client_at(auth_server.url, monkeypatch)
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "admin")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", auth_server.passwords["admin"])
    yield auth_server
    mlflow.set_tracking_uri(None)
    mlflow.set_registry_uri(None)


def cli(args: list[str], server, cwd: Path, user: str | None, password: str | None = None) -> tuple[
        subprocess.CompletedProcess, float]:
    """`promptomatix -v ARGS` (debug logging on, the scripted model installed) as `user`, with
    that user's password unless `password` is given; no credentials at all for user None."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("MLFLOW_TRACKING_") and k not in ("MLFLOW_REGISTRY_URI", "MLFLOW_RUN_ID",
                                                                 "MLFLOW_EXPERIMENT_ID")}
    env["MLFLOW_TRACKING_URI"] = server.url
    if user is not None:
        env["MLFLOW_TRACKING_USERNAME"] = user
        env["MLFLOW_TRACKING_PASSWORD"] = password or server.passwords[user]
    started = time.monotonic()
    done = subprocess.run([sys.executable, str(HERE / "cli_with_fakes.py"), "-v", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)
    return done, time.monotonic() - started


def one_error_line(done: subprocess.CompletedProcess, message: str) -> None:
    """Exit 2 and one `Error: ...` line holding `message` on stderr (debug logging goes to
    stderr too: its lines are left out, a traceback is not)."""
    assert done.returncode == 2, done.stderr[-3000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1 and message in errors[0], done.stderr[-3000:]


def registry_state() -> dict:
    """The model's and its prompt's aliases and tags, and every version's tags and description."""
    client = MlflowClient()
    model = client.get_registered_model(NAME)
    state = {"model aliases": model.aliases, "model tags": model.tags}
    for version in client.search_model_versions(f"name='{NAME}'"):
        state[f"v{version.version}"] = (version.tags, version.description)
    for number in (1, 2):
        prompt = client.get_prompt_version(f"{NAME}-prompt", number)  # not load_prompt: it caches
        state[f"prompt v{number}"] = (prompt.tags, prompt.aliases)
    return state


def champion() -> str:
    return MlflowClient().get_registered_model(NAME).aliases.get("champion")


def prompt_champion() -> int:
    return int(MlflowClient().get_prompt_version_by_alias(f"{NAME}-prompt", "champion").version)


def test_users_and_permissions_on_a_basic_auth_server(as_admin, tmp_path):
    server, outputs = as_admin, {}
    optimize = ["optimize", "--raw-input", RAW_INPUT, "--model", "reliable/fake", "--synthetic-data-size", "6",
                "--iterations", "1", "--candidates", "2", "--quiet", "--name", NAME]

    # no credentials, or a wrong password: one line, exit 2, in seconds, before any work
    for who, user, password in [("nobody", None, None), ("wrong", "admin", "not-the-password-" + secrets.token_hex(6))]:
        done, seconds = cli(optimize, server, tmp_path, user, password)
        outputs[who] = done.stdout + done.stderr
        one_error_line(done, (f"the MLflow tracking server {server.url} asks for a login (401)" if user is None else
                              f"the MLflow tracking server {server.url} refused the credentials (401): check "
                              f"MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD"))
        assert seconds < 30, seconds
    assert mlflow.search_runs(output_format="list", search_all_experiments=True) == []
    assert list(tmp_path.iterdir()) == []  # not even a local store

    # the admin optimizes twice (versions 1 and 2) and makes version 1 champion
    for _ in range(2):
        done, _ = cli(optimize, server, tmp_path, "admin")
        outputs[f"optimize {_}"] = done.stdout + done.stderr
        assert done.returncode == 0, done.stderr[-3000:]
    done, _ = cli(["promote", NAME, "--version", "1", "--alias", "champion"], server, tmp_path, "admin")
    assert done.returncode == 0 and champion() == "1", done.stderr[-3000:]
    for resource_type, resource in (("registered_model", NAME), ("prompt", f"{NAME}-prompt")):
        server.users.grant_user_permission("bob", resource_type, resource, "MANAGE")

    # alice (READ) can neither promote nor roll back: one line naming the permission, nothing changed
    before = registry_state()
    done, _ = cli(["promote", NAME, "--version", "2", "--alias", "champion", "--force"], server, tmp_path, "alice")
    outputs["alice promote"] = done.stdout + done.stderr
    one_error_line(done, f"user 'alice' lacks EDIT permission (EDIT or MANAGE) on registered model '{NAME}', "
                         f"which promoting needs")
    assert registry_state() == before

    # bob (MANAGE) can
    done, _ = cli(["promote", NAME, "--version", "2", "--alias", "champion", "--force"], server, tmp_path, "bob")
    outputs["bob promote"] = done.stdout + done.stderr
    assert done.returncode == 0, done.stderr[-3000:]
    assert champion() == "2"
    assert prompt_champion() == 2

    before = registry_state()
    done, _ = cli(["rollback", NAME, "--alias", "champion"], server, tmp_path, "alice")
    outputs["alice rollback"] = done.stdout + done.stderr
    one_error_line(done, f"user 'alice' lacks EDIT permission (EDIT or MANAGE) on registered model '{NAME}', "
                         f"which rolling back needs")
    assert registry_state() == before

    done, _ = cli(["rollback", NAME, "--alias", "champion"], server, tmp_path, "bob")
    outputs["bob rollback"] = done.stdout + done.stderr
    assert done.returncode == 0, done.stderr[-3000:]
    assert champion() == "1"
    assert prompt_champion() == 1

    # the secret scan: no password anywhere a run or a command leaves it
    places = everything_recorded(tmp_path) | {f"output of {k}": v for k, v in outputs.items()}
    assert any(" artifact " in where for where in places)
    assert any(json.loads(places[where]) for where in places if where.endswith(" params"))
    assert leaks(places, {f"{user}'s password": value for user, value in server.passwords.items()}) == []
