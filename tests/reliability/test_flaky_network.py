"""A flaky network between the optimizer and its tracking server (issue 43, points 1 and 2).

- Against a scripted HTTP server: a body cut short, a reset and a 503 are retried, each a
  WARNING naming the call and the cause and never the credentials; after the bound
  (PROMPTOMATIX_STORE_RETRY_SECONDS) a call fails in one line, and the calls after it are tried
  once until one succeeds; at the command line that is one `Error:` line, exit 1.
- Against a real `mlflow server` on PostgreSQL, through `faultproxy.FaultProxy`:
  - every write the project makes whose answer is lost (reset after the server did it, or cut
    short) is done once: one run, one logged model, one model version, one prompt version, the
    inputs, traces, artifacts and aliases as without faults;
  - eight optimizations at once (processes of their own) and their promotions, with 5% of the
    requests reset (half of them after the server did the work) and 2% of the answers cut
    short: all finish, versions 1-8 without gap or duplicate, every run FINISHED with its
    artifacts, traces and inputs, the aliases where the promotions put them.

One PostgreSQL and one server for the module (starting them takes up to a minute on 2 cores).
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections import Counter
from contextlib import ExitStack
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import mlflow
import pytest
from click.testing import CliRunner
from conftest import skip_or_fail
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

import faultproxy
import reliability_support as support
import services
from promptomatix.errors import ConfigError
from promptomatix.lifecycle.promotion import promote
from promptomatix.lifecycle.versions import all_versions, HISTORY_PREFIX
from promptomatix.tracking import record, storeretry

HERE = os.path.dirname(os.path.abspath(__file__))
API = "/api/2.0/mlflow"
KINDS = ["strong", "weak"] * 4  # as in test_server.py: weak versions keep the starting score
WORKER_LIMIT = 900  # s for all eight, retries included, on a busy 2-core machine
# What every optimization of optimize_worker.py's size stores (iterations=1, candidates=2).
ARTIFACTS = {"candidates.json", "checkpoints/step_000.json", "checkpoints/step_001.json", "config.yaml",
             "data/train.jsonl", "data/valid.jsonl", "evaluation/valid_results.json", "initial_prompt.txt",
             "optimized_prompt.txt", "prompts/step_00_candidate_00.txt", "prompts/step_01_candidate_00.txt",
             "prompts/step_01_candidate_01.txt", "raw_input.txt", "task_reading.json", "task_spec.json",
             "valid_predictions.json"}


# --- A scripted HTTP server: the retry logic, in seconds ------------------------------------------

class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):  # quiet
        pass

    def _answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        action = self.server.next(self.command, self.path.split("?")[0], self.headers)
        self.close_connection = True
        if action == "reset":
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
            return
        if action == "cut":
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "60")
            self.end_headers()
            self.wfile.write(b'{"exp')
            return
        status, body = (action, {"error_code": "TEMPORARILY_UNAVAILABLE", "message": "busy"}) \
            if isinstance(action, int) else (200, action)
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PATCH = do_DELETE = _answer


class Scripted(ThreadingHTTPServer):
    """Answers each path by its script, a list taken in turn (the last one repeated): "cut" (a
    body cut short), "reset", a status (an error answer), or a JSON body (200). `default` for the
    paths without a script. `requests` holds (method, path, Authorization header) of each."""

    daemon_threads = True

    def __init__(self, scripts: dict[str, list], default=404):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.scripts = {path: list(steps) for path, steps in scripts.items()}
        self.default = default
        self.requests: list[tuple[str, str, str]] = []
        self.url = f"http://127.0.0.1:{self.server_address[1]}"
        self._lock = threading.Lock()

    def next(self, method: str, path: str, headers):
        with self._lock:
            self.requests.append((method, path, headers.get("Authorization", "")))
            steps = self.scripts.get(path)
            if not steps:
                return self.default
            return steps.pop(0) if len(steps) > 1 else steps[0]


@pytest.fixture
def scripted(monkeypatch):
    """Start a `Scripted` server as this process's tracking server: `scripted(scripts, default)`.
    The retries are installed afresh (their counts start at zero)."""
    started: list[Scripted] = []

    def start(scripts: dict[str, list], default=404) -> Scripted:
        server = Scripted(scripts, default)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        started.append(server)
        services.point_client_at(server.url, monkeypatch)
        return server

    storeretry.uninstall()
    storeretry.install()
    yield start
    for server in started:
        server.shutdown()
        server.server_close()
    mlflow.set_tracking_uri(None)
    mlflow.set_registry_uri(None)


EXPERIMENT = {"experiment": {"experiment_id": "7", "name": "found", "lifecycle_stage": "active"}}


def test_a_cut_answer_a_reset_and_a_503_are_retried_and_logged_without_credentials(scripted, monkeypatch, caplog):
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "alice")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "pw-s3cret-1234")
    server = scripted({f"{API}/experiments/get-by-name": ["cut", "reset", 503, EXPERIMENT]})

    with caplog.at_level(logging.WARNING, logger="promptomatix.tracking.storeretry"):
        experiment = MlflowClient().get_experiment_by_name("found")

    assert experiment.experiment_id == "7"
    assert len(server.requests) == 4 and all(auth.startswith("Basic ") for _, _, auth in server.requests)
    warnings = [r.getMessage() for r in caplog.records if r.name == "promptomatix.tracking.storeretry"]
    assert len(warnings) == 3, warnings
    assert all(f"GET {API}/experiments/get-by-name failed" in w for w in warnings)
    assert "IncompleteRead(5 bytes read, 55 more expected)" in warnings[0]
    assert "Connection reset by peer" in warnings[1] or "RemoteDisconnected" in warnings[1], warnings[1]
    assert "(HTTP 503)" in warnings[2]
    token = server.requests[0][2].split()[1]
    assert "pw-s3cret-1234" not in caplog.text and token not in caplog.text
    counts = storeretry.counts()
    assert (counts.retries, counts.gave_up) == (3, 0) and counts.seconds > 0


def test_after_the_bound_a_call_fails_in_one_line_and_later_calls_are_tried_once(scripted, monkeypatch):
    monkeypatch.setenv(storeretry.RETRY_SECONDS_VARIABLE, "1.5")
    server = scripted({f"{API}/experiments/get-by-name": [503]})

    started = time.monotonic()
    with pytest.raises(MlflowException) as failed:
        MlflowClient().get_experiment_by_name("found")
    seconds = time.monotonic() - started

    assert 1.0 <= seconds < 4, seconds
    assert len(server.requests) >= 3  # 0.25 s doubling, jittered: three or four tries in 1.5 s
    line = storeretry.error_line(failed.value)
    assert line is not None and "\n" not in line
    assert re.fullmatch(f"the MLflow tracking store {server.url} did not answer GET {API}/experiments/get-by-name "
                        r"\(retried for 1\.\d s, \d tries; last: HTTP 503\)", line), line
    assert storeretry.counts().gave_up == 1

    # the store is still down: the next call is tried once, not for the bound again
    tried = len(server.requests)
    started = time.monotonic()
    with pytest.raises(MlflowException):
        MlflowClient().get_experiment_by_name("found")
    assert time.monotonic() - started < 1 and len(server.requests) == tried + 1

    # back: calls succeed, and a later failure is retried again
    server.scripts[f"{API}/experiments/get-by-name"] = [EXPERIMENT]
    assert MlflowClient().get_experiment_by_name("found").experiment_id == "7"
    server.scripts[f"{API}/experiments/get-by-name"] = ["reset", EXPERIMENT]
    assert MlflowClient().get_experiment_by_name("found").experiment_id == "7"
    assert len(server.requests) == tried + 4


def test_a_store_failing_past_the_bound_is_one_error_line_at_the_command_line(scripted, monkeypatch):
    monkeypatch.setenv(storeretry.RETRY_SECONDS_VARIABLE, "1")
    # The store opens (the command's first check) and then answers nothing but 503.
    scripted({"/health": [{}], f"{API}/experiments/search": [{"experiments": []}],
              f"{API}/registered-models/search": [{}]}, default=503)
    support.install("reliable", support.FaultyLLM(rate=0.0))
    from promptomatix.cli import cli

    done = CliRunner().invoke(cli, ["optimize", "--raw-input", support.RAW_INPUT, "--model", "reliable/fake",
                                    "--name", "reviews"])

    assert done.exit_code == 1, done.output
    errors = [line for line in done.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "Traceback" not in done.stderr, done.stderr
    # checking the registry name, before any run: MLflow's get_prompt reads a failure as "no
    # prompt"; the next call, tried once, is the one that says so
    assert re.match(r"Error: the MLflow tracking store http://127\.0\.0\.1:\d+ did not answer GET "
                    r"/api/2\.0/mlflow/registered-models/get \(tried once: failing for 1\.\d s, past the retries; "
                    r"last: HTTP 503\)$", errors[0]), errors[0]


def test_a_bad_retry_setting_is_one_line(monkeypatch):
    monkeypatch.setenv(storeretry.RETRY_SECONDS_VARIABLE, "soon")

    with pytest.raises(ConfigError, match="PROMPTOMATIX_STORE_RETRY_SECONDS must be a number of seconds between 0 "
                                          "and 86400, got 'soon'"):
        storeretry.install()


def test_a_prompt_created_meanwhile_by_another_process_still_gets_its_version(tracking, monkeypatch):
    """Two first registrations under one name at once: the prompt is new when this process looks,
    and another creates it before this one can. The version is registered all the same, with its
    tags (run id first) in the request that creates it, on the version only: the prompt all
    versions share keeps none of them."""
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import RESOURCE_ALREADY_EXISTS

    from promptomatix.config import ModelSettings
    from promptomatix.run import registration
    from promptomatix.task.prompt import Prompt

    real = MlflowClient.create_prompt
    calls = []

    def racing(self, name, *args, **kwargs):
        calls.append(name)
        real(self, name, description="made by the other process")  # the other process wins
        raise MlflowException(f"Prompt (name={name}) already exists.", error_code=RESOURCE_ALREADY_EXISTS)

    monkeypatch.setattr(MlflowClient, "create_prompt", racing)
    prompt = Prompt("Label the text.", ("text",), ("label",))
    with mlflow.start_run():
        done = registration.register("shared", prompt, ModelSettings(), tags={"run_id": "x", "validation_score": "1.0000"},
                                 change="d", task="t")

    assert calls == ["shared-prompt"]
    assert (done.prompt_version, done.model_version) == ("1", "1")
    client = MlflowClient()
    version = client.get_prompt_version("shared-prompt", "1")
    assert (version.template, version.commit_message) == (prompt.template, "d")
    assert (version.tags["run_id"], version.tags["validation_score"], version.tags["model_version"]) == ("x", "1.0000", "1")
    assert not {"run_id", "validation_score"} & set(client.get_prompt("shared-prompt").tags)


# --- A real server behind a faulty network ---------------------------------------------------------

@pytest.fixture(scope="module")
def team_server(tmp_path_factory):
    """`mlflow server` on PostgreSQL, artifacts served by it, on loopback; stopped after the module."""
    folder = tmp_path_factory.mktemp("flaky-server")
    with ExitStack() as stack:
        try:
            store = stack.enter_context(services.postgres())
            url = stack.enter_context(services.mlflow_server(store, folder / "artifacts", folder / "server.log"))
        except services.Unavailable as exc:
            skip_or_fail(f"postgresql tracking server: {exc}")
        yield SimpleNamespace(url=url, direct=MlflowClient(tracking_uri=url, registry_uri=url))


@pytest.fixture
def through(team_server, monkeypatch):
    """`through(**faults)`: a FaultProxy in front of the team server, as this process's tracking
    server (children inherit it through MLFLOW_TRACKING_URI). `/health` is spared: the start-up
    probe (servercheck.check_server) is one request by design, not retried."""
    stack = ExitStack()

    def start(**faults) -> faultproxy.FaultProxy:
        proxy = stack.enter_context(faultproxy.FaultProxy(team_server.url, spare=("/health",), **faults))
        services.point_client_at(proxy.url, monkeypatch)
        return proxy

    with stack:
        yield start
    mlflow.set_tracking_uri(None)
    mlflow.set_registry_uri(None)


# Each write the project makes that the store would not take twice as it took it once, and a few
# that it would: its answer lost (the server did the work) or its request dropped, in the order the
# requests come (a retry is the next request of its path: "pass" lets it through).
LOST_ANSWERS = [
    ("/experiments/create", ["cut"], ""),  # a repeat: "already exists"
    ("/runs/create", ["reset_after"], ""),  # a repeat: a second run
    ("/runs/log-batch", ["cut"], ""),
    ("/runs/log-inputs", ["cut"], ""),  # issue 43's IncompleteRead
    ("/mlflow/logged-models", ["reset_after"], ""),  # a repeat: a second logged model
    ("/datasets/create", ["cut"], ""),  # the rows as an evaluation dataset: a repeat makes a second
    ("/runs/outputs", ["cut"], ""),  # a repeat: the model listed twice as the run's output
    # the prompt, then the model: a repeat says "already exists"
    ("/registered-models/create", ["cut", "pass", "reset_after"], ""),
    # the prompt version, then the model version: a repeat makes a second version
    ("/model-versions/create", ["reset_after", "cut"], ""),
    ("/api/3.0/mlflow/traces", ["cut"], ""),
    ("/v1/traces", ["reset_after"], ""),
    ("/artifacts/config.yaml", ["reset_before"], "PUT"),
    ("/artifacts/valid_predictions.json", ["cut"], "PUT"),
    ("/artifacts/candidates.json", ["cut"], "GET"),  # a download cut short
    ("/registered-models/alias", ["reset_after"], "POST"),  # promotion
    ("/model-versions/set-tag", ["cut"], ""),
]


def test_each_write_whose_answer_is_lost_is_done_once(through, team_server):
    proxy = through()
    for path, faults, method in LOST_ANSWERS:
        proxy.schedule(path, *faults, method=method)
    storeretry.uninstall()  # counts from zero
    support.install("reliable", support.FaultyLLM(rate=0.0))
    import promptomatix

    result = promptomatix.optimize(raw_input=support.RAW_INPUT, model="reliable/fake", name="lost-answers",
                                   synthetic_data_size=8, iterations=1, candidates=2, num_threads=2,
                                   show_progress=False)
    decision = promote("lost-answers", result.model_version, "champion", show_progress=False)

    assert proxy.pending == {}, "these requests never came: the test no longer covers them"
    client = team_server.direct
    experiment = client.get_experiment_by_name("lost-answers")
    runs = client.search_runs([experiment.experiment_id])
    assert [r.info.run_id for r in runs] == [result.run_id] and runs[0].info.status == "FINISHED"
    run = runs[0]
    assert sorted(i.dataset.name for i in run.inputs.dataset_inputs) == ["train", "valid"]
    models = client.search_logged_models(experiment_ids=[experiment.experiment_id])
    assert [(m.source_run_id, m.status.name) for m in models] == [(result.run_id, "READY")]
    assert [o.model_id for o in run.outputs.model_outputs] == [models[0].model_id]
    versions = client.search_model_versions("name = 'lost-answers'")
    assert [v.version for v in versions] == ["1"] and versions[0].run_id == result.run_id
    prompts = client.search_prompt_versions("lost-answers-prompt")
    assert [p.version for p in prompts] == [1] and prompts[0].tags["run_id"] == result.run_id
    assert prompts[0].tags["model_version"] == "1"
    _assert_recorded(client, run)
    datasets = client.search_datasets(experiment_ids=[experiment.experiment_id])
    assert sorted((d.name, d.tags[record.DATASET_RUN]) for d in datasets) == \
        [("lost-answers · train", result.run_id), ("lost-answers · valid", result.run_id)]
    assert decision.decision == "promoted"
    assert client.get_model_version_by_alias("lost-answers", "champion").version == "1"
    assert json.loads(client.get_registered_model("lost-answers").tags[HISTORY_PREFIX + "champion"]) == ["1"]
    assert client.get_prompt_version_by_alias("lost-answers-prompt", "champion").version == 1
    counts = storeretry.counts()
    # found done instead of sent again: the run, the logged model, an evaluation dataset, the
    # run's output, the two versions; and the three "already exists" of a repeat taken as the
    # first try's result
    assert counts.recovered == 9 and counts.gave_up == 0, counts


def test_a_store_down_past_the_bound_fails_the_run_in_one_line_and_it_resumes(through, team_server, tmp_path):
    proxy = through()
    proxy.down_after("/runs/log-inputs")  # mid-run, its data logged: every request from then on is reset
    command = [sys.executable, os.path.join(HERE, "cli_with_fakes.py"), "optimize", "--raw-input", support.RAW_INPUT,
               "--model", "reliable/fake", "--name", "resumable", "--synthetic-data-size", "8", "--iterations", "1",
               "--candidates", "2", "--quiet"]
    env = os.environ | {"MLFLOW_TRACKING_URI": proxy.url, storeretry.RETRY_SECONDS_VARIABLE: "3"}

    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)

    assert done.returncode == 1, done.stderr[-3000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "Traceback" not in done.stderr, done.stderr[-3000:]
    said = re.fullmatch(r"Error: the MLflow tracking store http://127\.0\.0\.1:\d+ did not answer \S+ \S+ "
                        r"\((?:retried for 3\.\d s, \d+ tries|tried once: failing for \d+\.\d s, past the retries); "
                        r"last: .*Connection reset by peer\)\)"
                        r"; once it answers, go on with: promptomatix optimize --resume ([0-9a-f]{32})", errors[0])
    assert said, errors[0]
    run_id = said.group(1)
    client = team_server.direct
    assert client.get_run(run_id).info.status == "RUNNING"  # its end could not be written either
    assert not client.search_registered_models("name = 'resumable'")

    proxy.down = False
    support.install("reliable", support.FaultyLLM(rate=0.0))
    from promptomatix.cli import cli

    resumed = CliRunner().invoke(cli, ["optimize", "--resume", run_id, "--quiet"])

    assert resumed.exit_code == 0, resumed.output
    assert client.get_run(run_id).info.status == "KILLED"
    versions = client.search_model_versions("name = 'resumable'")
    assert [v.version for v in versions] == ["1"] and versions[0].run_id != run_id
    assert client.get_run(versions[0].run_id).info.status == "FINISHED"


def _artifacts(client: MlflowClient, run_id: str, path: str | None = None) -> dict[str, int]:
    found = {}
    for item in client.list_artifacts(run_id, path):
        found |= _artifacts(client, run_id, item.path) if item.is_dir else {item.path: item.file_size}
    return found


def _assert_recorded(client: MlflowClient, run) -> None:
    """The run holds every artifact (none empty), its traces (one LLM span per model call), and
    no metric twice at one step."""
    stored = _artifacts(client, run.info.run_id)
    assert ARTIFACTS <= set(stored) and all(stored.values()), stored
    traces = client.search_traces(locations=[run.info.experiment_id], run_id=run.info.run_id)
    spans = Counter(span.span_type for trace in traces for span in trace.data.spans)
    assert spans["LLM"] == run.data.metrics["llm_calls"] > 0, (spans, run.data.metrics["llm_calls"])
    for key in run.data.metrics:
        steps = [m.step for m in client.get_metric_history(run.info.run_id, key)]
        assert len(steps) == len(set(steps)), (key, steps)


def _promote_finished(name: str, client: MlflowClient, done: set[str], decisions: list) -> None:
    """Promote to champion, through the faulty network, each version of `name` whose run has
    finished, oldest first, once (`client` reads the store directly)."""
    if not client.search_registered_models(f"name = '{name}'"):
        return
    for version in all_versions(name):
        if version.version in done or client.get_run(version.run_id).info.status != "FINISHED":
            continue
        holder = client.get_registered_model(name).aliases.get("champion")
        decisions.append((version.version, holder, promote(name, version.version, "champion", show_progress=False)))
        done.add(version.version)


RETRY_LINE = re.compile(r"tracking store: (\S+) (\S+) failed after ([\d.]+) s .*; retry \d+ in ([\d.]+) s")


def test_eight_optimizations_and_their_promotions_finish_through_a_faulty_network(through, team_server, tmp_path):
    proxy = through(resets=0.05, cuts=0.02, delays=0.05, seed=43)
    storeretry.uninstall()  # counts from zero
    storeretry.install()  # the promotion loop reads the registry (all_versions) before its first promote()
    name = "flaky"
    started = time.monotonic()
    out_path, err_path = tmp_path / "workers.out", tmp_path / "workers.err"
    with out_path.open("w") as out, err_path.open("w") as err:
        launcher = subprocess.Popen([sys.executable, os.path.join(HERE, "optimize_worker.py"), name, *KINDS],
                                    cwd=tmp_path, env=os.environ | {"MLFLOW_TRACKING_URI": proxy.url}, stdout=out,
                                    stderr=err, start_new_session=True)
    client = team_server.direct
    done: set[str] = set()
    decisions: list = []
    try:
        while launcher.poll() is None:
            assert time.monotonic() - started < WORKER_LIMIT, "the optimizations did not finish in time"
            _promote_finished(name, client, done, decisions)
            time.sleep(1)
    finally:
        if launcher.poll() is None:
            os.killpg(launcher.pid, signal.SIGKILL)
            launcher.wait()
    out, err = out_path.read_text(), err_path.read_text()
    assert launcher.returncode == 0, err[-3000:]
    _promote_finished(name, client, done, decisions)
    seconds = time.monotonic() - started
    results = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert len(results) == len(KINDS), err[-3000:]

    # eight runs, FINISHED, each with all it records; nothing made twice
    experiment = client.get_experiment_by_name(name)
    runs = client.search_runs([experiment.experiment_id])
    assert sorted(r.info.run_id for r in runs) == sorted(r["run_id"] for r in results)
    assert {r.info.status for r in runs} == {"FINISHED"}
    for run in runs:
        assert sorted(i.dataset.name for i in run.inputs.dataset_inputs) == ["train", "valid"]
        assert len(run.outputs.model_outputs) == 1
        _assert_recorded(client, run)
    models = client.search_logged_models(experiment_ids=[experiment.experiment_id])
    assert sorted(m.source_run_id for m in models) == sorted(r["run_id"] for r in results)
    # the rows as evaluation datasets: a run's data set is stored once (runs with the same rows
    # may share one, the first run's)
    made = Counter((d.name, d.tags[record.DATASET_RUN])
                   for d in client.search_datasets(experiment_ids=[experiment.experiment_id], max_results=1000))
    assert {name for name, _ in made} == {f"{name} · train", f"{name} · valid"} and set(made.values()) == {1}, made
    assert {m.status.name for m in models} == {"READY"}

    # versions 1..8 of the model and of its prompt, no gap, no duplicate, each its own run's
    versions = client.search_model_versions(f"name = '{name}'")
    assert sorted(int(v.version) for v in versions) == list(range(1, 9))
    by_run = {v.run_id: v for v in versions}
    assert sorted(by_run) == sorted(r["run_id"] for r in results)
    prompts = {p.version: p for p in client.search_prompt_versions(f"{name}-prompt")}
    assert sorted(prompts) == list(range(1, 9))
    for result in results:
        version = by_run[result["run_id"]]
        assert version.version == result["model_version"]
        assert version.tags["prompt_uri"] == f"prompts:/{name}-prompt/{result['prompt_version']}"
        prompt = prompts[int(result["prompt_version"])]
        assert (prompt.template, prompt.tags["run_id"], prompt.tags["model_version"]) == \
            (result["prompt"], result["run_id"], result["model_version"])

    # every version was put up for champion once, and the aliases are where the promotions put them
    score = {r["model_version"]: r["score"] for r in results}
    assert sorted(v for v, _, _ in decisions) == sorted(score)
    for version, holder, decision in decisions:
        assert decision.decision == ("promoted" if holder is None or score[version] >= score[holder]
                                     else "rejected"), (version, holder, decision)
    promoted = [v for v, _, d in decisions if d.decision == "promoted"]
    champion = client.get_model_version_by_alias(name, "champion")
    assert champion.version == promoted[-1] and score[champion.version] == 1.0
    assert json.loads(client.get_registered_model(name).tags[HISTORY_PREFIX + "champion"]) == promoted
    held = client.get_prompt_version_by_alias(f"{name}-prompt", "champion")
    assert held.template == next(r["prompt"] for r in results if r["model_version"] == champion.version)

    # what it cost, for docs/reliability.md
    retries = [m.groups() for m in RETRY_LINE.finditer(err)]
    found_done = err.count("had been done by the try whose answer was lost")
    ours = storeretry.counts()  # this process: the promotions
    print(f"\nflaky network: {proxy.counts['requests']} requests, {proxy.injected} faults injected "
          f"({proxy.counts['reset_before']} resets before the server, {proxy.counts['reset_after']} after, "
          f"{proxy.counts['cut']} answers cut short; {proxy.counts['delay']} delayed); optimizations: "
          f"{len(retries)} retries, {sum(float(a) + float(w) for _, _, a, w in retries):.1f} s lost to them, "
          f"{found_done} writes found done; promotions: {ours.retries} retries, {ours.seconds:.1f} s, "
          f"{ours.recovered} found done; 8 runs FINISHED, versions 1-8; {seconds:.0f} s in all")
    assert proxy.injected >= 20 and len(retries) + ours.retries >= proxy.injected * 0.9  # the faults were felt
