"""Bad input, all kinds in one table: each row is one clear line on stderr starting "Error:",
exit status 2, no traceback, and the registry exactly as it was (no model, no prompt, no run
left RUNNING).

Most rows go through the click command in-process (fast). The rows where the process itself
matters (noise from libraries on stderr, the real exit status, a store that cannot be opened)
run `promptomatix` in a subprocess as a user would.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import mlflow
import pytest
from click.testing import CliRunner
from mlflow import MlflowClient
from reliability_support import RAW_INPUT, FaultyLLM, install

from promptomatix.cli import cli

HERE = Path(__file__).parent
MODEL = "reliable/fake"
BASE = ["optimize", "--raw-input", RAW_INPUT, "--model", MODEL, "--synthetic-data-size", "6",
        "--iterations", "1", "--candidates", "1", "--quiet"]
REVIEWS = "review,sentiment\na good film,positive\na bad film,negative\nsuperb,positive\ndull,negative\n"


@dataclass(frozen=True)
class Case:
    """One kind of bad input: the command line (after `promptomatix`), files to write first (name
    -> text, in the test's directory, which is the working directory), environment changes
    (None removes), and the text the one error line must contain. The registered model
    `reviews` (no version, no alias) exists, and `foreign`, whose one version another tool registered."""

    args: list[str]
    message: str
    files: dict[str, str] = field(default_factory=dict)
    env: dict[str, str | None] = field(default_factory=dict)


def optimize(*extra: str, **kwargs) -> Case:
    message = kwargs.pop("message")
    return Case([*BASE, *extra], message, **kwargs)


CASES = {
    "empty raw input": optimize("--raw-input", "", message="raw input is empty"),
    "whitespace raw input": optimize("--raw-input", " \n\t ", message="raw input is empty"),
    "1 MB raw input": optimize("--raw-input", "Classify reviews. " * 58255,
                               message="raw input is 1048590 characters; the limit is 100000"),
    "unknown backend": optimize("--backend", "nope", message="unknown backend 'nope'"),
    "unknown DSPy optimizer": optimize("--backend", "dspy", "--optimizer", "NoSuchOptimizer",
                                       message="unknown DSPy optimizer 'NoSuchOptimizer'"),
    "unknown DSPy module": optimize("--backend", "dspy", "--dspy-module", "NoSuchModule",
                                    message="unknown DSPy module 'NoSuchModule'"),
    "unknown meta prompt": optimize("--meta-prompt", "nosuch", message="unknown meta prompt 'nosuch'"),
    "unknown task type": optimize("--task-type", "poetry", message="unknown task type 'poetry'"),
    "unknown metric": optimize("--metric", "nosuch=1", message="unknown metric 'nosuch'"),
    "unknown hook": optimize("--hook", "nosuch", message="unknown hook 'nosuch'"),
    "malformed CSV": optimize("--train-data", "bad.csv", files={"bad.csv": REVIEWS + "too,many,values\n"},
                              message="bad.csv: line 6 has more values than the header's 2 columns"),
    "JSONL with a broken line": optimize(
        "--train-data", "bad.jsonl", files={"bad.jsonl": '{"review": "ok", "sentiment": "positive"}\n{"review": oops}\n'},
        message="bad.jsonl: line 2 is not valid JSON"),
    "unknown data format": optimize("--train-data", "data.xlsx", files={"data.xlsx": "x"},
                                    message="unknown data format .xlsx"),
    "missing data file": optimize("--train-data", "missing.csv", message="missing.csv: no such file"),
    "data missing a declared field": optimize(
        "--train-data", "partial.jsonl",
        files={"partial.jsonl": '{"review": "a good film", "sentiment": "positive"}\n{"review": "a bad film"}\n'},
        message="partial.jsonl: example 2 lacks field 'sentiment'"),
    "empty data set": optimize("--train-data", "empty.csv", files={"empty.csv": "review,sentiment\n"},
                               message="empty.csv: no examples in the data"),
    "validation data without training data": optimize("--valid-data", "v.csv", files={"v.csv": REVIEWS},
                                                      message="--valid-data needs --train-data"),
    "field map naming no column": optimize("--train-data", "d.csv", "--field-map", "text=review",
                                           files={"d.csv": REVIEWS}, message="field map names columns not in the data"),
    "field map with an empty column": optimize("--train-data", "d.csv", "--field-map", "=review",
                                               files={"d.csv": REVIEWS}, message="'=review' is not COLUMN=FIELD"),
    "a size that is not a number": optimize("--candidates", "abc", message="'abc' is not a valid integer"),
    "candidates beyond any budget": optimize("--candidates", "99999999999999999999999",
                                             message="candidates is 99999999999999999999999; the limit is 1000"),
    "synthetic size beyond any budget": optimize("--synthetic-data-size", "10000000",
                                                 message="synthetic data size is 10000000; the limit is 10000"),
    "raw input longer than the model's context": optimize(
        "--raw-input", "Classify reviews. " * 2500,  # 45000 characters; the scripted model reads 8192 tokens
        message="raw input is about 12857 tokens (45000 characters); model 'reliable/fake' reads at most 7168 tokens"),
    "one-row data set": optimize("--train-data", "one.csv", files={"one.csv": "review,sentiment\na good film,positive\n"},
                                 message="one.csv: one example cannot be split into train and validation"),
    "null label": optimize(
        "--train-data", "null.jsonl",
        files={"null.jsonl": '{"review": "a good film", "sentiment": "positive"}\n{"review": "meh", "sentiment": null}\n'},
        message="null.jsonl: example 2 has an empty 'sentiment'"),
    "a single label": optimize("--train-data", "same.csv", files={"same.csv": "review,sentiment\n" + "".join(
        f"a good film {i},positive\n" for i in range(6))},
        message="same.csv: every example has the label 'positive'; a classification needs examples of at least two labels"),
    "duplicate CSV headers": optimize("--train-data", "dup.csv",
                                      files={"dup.csv": "review,review,sentiment\na,good film,positive\nb,bad film,negative\n"},
                                      message="dup.csv: the header names column 'review' more than once"),
    "NUL byte in CSV data": optimize("--train-data", "nul.csv", files={"nul.csv": REVIEWS.replace("superb", "sup\x00erb")},
                                     message="nul.csv: example 3 has a NUL character in 'review'"),
    "--name of another tool's model": optimize("--name", "foreign",
                                               message="the model 'foreign' holds versions promptomatix did not register"),
    "negative size": optimize("--synthetic-data-size", "-5", message="synthetic data size must be a positive"),
    "zero iterations": optimize("--iterations", "0", message="iterations must be a positive whole number"),
    "zero candidates": optimize("--candidates", "0", message="candidates must be a positive whole number"),
    "zero threads": optimize("--num-threads", "0", message="num threads must be a positive whole number"),
    "negative demos": optimize("--num-demos", "-1", message="num demos must not be negative"),
    "train ratio 0": optimize("--train-ratio", "0", message="train ratio must be strictly between 0 and 1"),
    "train ratio 1": optimize("--train-ratio", "1", message="train ratio must be strictly between 0 and 1"),
    "train ratio above 1": optimize("--train-ratio", "1.5", message="train ratio must be strictly between 0 and 1"),
    "invalid registry name": optimize("--name", "bad name!", message="invalid name 'bad name!'"),
    "unknown model provider": optimize("--model", "nosuchprovider/model-x", message="unknown model provider"),
    "missing API key for a hosted model": optimize("--model", "openai/gpt-4o-mini", env={"OPENAI_API_KEY": None},
                                                   message="needs OPENAI_API_KEY set in the environment"),
    "unreachable API base": optimize("--model", "openai/gpt-4o-mini", "--api-base", "http://127.0.0.1:9/v1",
                                     env={"OPENAI_API_KEY": "sk-dummy"},
                                     message="cannot reach the API base http://127.0.0.1:9/v1"),
    "config file that is not YAML": Case(["optimize", "--config", "job.yaml"], "not valid YAML",
                                         files={"job.yaml": "iterations: [1"}),
    "config from an unknown run": Case(["optimize", "--config-from", "0123456789abcdef"], "has no config.yaml"),
    "unknown registered name (promote)": Case(["promote", "nosuch", "--version", "1", "--alias", "champion"],
                                              "no registered model named 'nosuch'"),
    "unknown registered name (evaluate)": Case(["evaluate", "nosuch@champion", "--data", "d.csv"],
                                               "no registered model named 'nosuch'", files={"d.csv": REVIEWS}),
    "unknown alias": Case(["evaluate", "reviews@nosuch", "--data", "d.csv"],
                          "model 'reviews' has no alias 'nosuch'", files={"d.csv": REVIEWS}),
    "unknown version": Case(["promote", "reviews", "--version", "7", "--alias", "champion"],
                            "model 'reviews' has no version 7"),
    "rollback of an unknown name": Case(["rollback", "nosuch", "--alias", "champion"], "nosuch"),
}


@pytest.fixture
def reliable():
    """A scripted model that never fails, as `reliable/fake`."""
    return install("reliable", FaultyLLM(rate=0.0))


@pytest.fixture(scope="module")
def shared_store(tmp_path_factory):
    """One MLflow store for the whole table (each row must leave it as it found it), holding a
    registered model `reviews` with no version and no alias, and `foreign` with one version that
    another tool registered (another flavor, no prompt)."""
    uri = f"sqlite:///{tmp_path_factory.mktemp('store') / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        patch.setenv("MLFLOW_REGISTRY_URI", uri)
        patch.delenv("MLFLOW_RUN_ID", raising=False)
        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(uri)
        MlflowClient().create_registered_model("reviews")
        MlflowClient().create_registered_model("foreign")
        MlflowClient().create_model_version("foreign", str(tmp_path_factory.mktemp("sklearn-model")))
        yield uri
        while mlflow.active_run():
            mlflow.end_run()
        mlflow.set_tracking_uri(None)
        mlflow.set_registry_uri(None)


def registry_state() -> dict:
    """Everything a failed command must leave as it was."""
    client = MlflowClient()
    models = {m.name: (sorted((m.aliases or {}).items()),
                       sorted(v.version for v in client.search_model_versions(f"name='{m.name}'")))
              for m in client.search_registered_models()}
    prompts = sorted(p.name for p in mlflow.genai.search_prompts())
    running = [r.info.run_id for r in mlflow.search_runs(output_format="list", search_all_experiments=True)
               if r.info.status == "RUNNING"]
    return {"models": models, "prompts": prompts, "running": running}


def prepare(case: Case, tmp_path: Path, monkeypatch) -> None:
    for name, text in case.files.items():
        (tmp_path / name).write_text(text)
    for key, value in case.env.items():
        if value is None:
            monkeypatch.delenv(key, raising=False)
        else:
            monkeypatch.setenv(key, value)
    monkeypatch.chdir(tmp_path)


def assert_one_error_line(stderr: str, message: str) -> None:
    assert "Traceback" not in stderr, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("Error: ") and message in lines[0], stderr


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_bad_input_is_one_line_exit_2_and_changes_nothing(case, shared_store, reliable, tmp_path, monkeypatch):
    prepare(case, tmp_path, monkeypatch)
    before = registry_state()

    result = CliRunner().invoke(cli, case.args, catch_exceptions=False)

    assert result.exit_code == 2, result.output
    assert_one_error_line(result.stderr, case.message)
    assert registry_state() == before


def test_the_table_has_every_kind_the_issue_lists():
    kinds = " | ".join(CASES)
    for kind in ("empty raw input", "whitespace raw input", "1 MB raw input", "unknown backend", "optimizer",
                 "module", "task type", "unknown metric", "malformed CSV", "JSONL with a broken line",
                 "missing a declared field", "empty data set", "negative", "zero", "train ratio",
                 "unknown model provider", "unreachable API base", "missing API key", "unknown registered name",
                 "unknown alias"):
        assert kind in kinds
    assert len(CASES) >= 20


# -- the same contract in a real process ------------------------------------------------------

def run_cli(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    """`promptomatix ARGS` in a new process that also knows the `reliable` scripted provider."""
    return subprocess.run([sys.executable, str(HERE / "cli_with_fakes.py"), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def _env(**changes: str | None) -> dict[str, str]:
    env = dict(os.environ)
    for key, value in changes.items():
        env.pop(key, None) if value is None else env.__setitem__(key, value)
    return env


@pytest.mark.parametrize("kind", ["data missing a declared field", "unreachable API base", "unknown alias"])
def test_in_a_real_process_the_error_is_one_line_and_exit_2(kind, shared_store, tmp_path, monkeypatch):
    case = CASES[kind]
    prepare(case, tmp_path, monkeypatch)
    before = registry_state()

    done = run_cli(case.args, _env(**case.env), tmp_path)

    assert done.returncode == 2, done.stderr
    assert_one_error_line(done.stderr, case.message)
    assert registry_state() == before


def test_a_raw_input_of_1_mb_from_a_config_file_is_one_line(shared_store, tmp_path):
    (tmp_path / "job.yaml").write_text(json.dumps({"raw_input": "x" * 1_000_000, "model": MODEL}))

    done = run_cli(["optimize", "--config", "job.yaml"], _env(), tmp_path)

    assert done.returncode == 2
    assert_one_error_line(done.stderr, "raw input is 1000000 characters; the limit is 100000")


@pytest.mark.parametrize("where", ["directory path through a file", "directory that cannot be written"])
def test_an_unwritable_tracking_store_is_one_line_before_any_work(where, tmp_path):
    if where == "directory path through a file":
        (tmp_path / "blocker").write_text("")
        store = tmp_path / "blocker" / "mlflow.db"
    else:
        if os.geteuid() == 0:
            pytest.skip("root writes to read-only directories")
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        store = locked / "mlflow.db"
    uri = f"sqlite:///{store}"

    done = run_cli([*BASE], _env(MLFLOW_TRACKING_URI=uri, MLFLOW_REGISTRY_URI=uri, MLFLOW_RUN_ID=None), tmp_path)

    assert done.returncode == 2, done.stderr
    assert_one_error_line(done.stderr, f"cannot use the MLflow tracking store {uri}")
    assert not store.exists()


def test_on_a_new_store_the_error_is_still_the_only_line(tmp_path):
    # A first command on a new sqlite store makes MLflow create its tables (and say so at INFO).
    uri = f"sqlite:///{tmp_path / 'new' / 'mlflow.db'}"

    done = run_cli([*BASE, "--name", "reviews-prompt-x", "--meta-prompt", "nosuch"],
                   _env(MLFLOW_TRACKING_URI=uri, MLFLOW_REGISTRY_URI=uri, MLFLOW_RUN_ID=None), tmp_path)

    assert done.returncode == 2
    assert_one_error_line(done.stderr, "unknown meta prompt 'nosuch'")


def test_resuming_a_finished_run_or_one_without_options_is_one_line(shared_store, tmp_path):
    # In a real process: MLflow drew a "Downloading artifacts" bar for each artifact it read.
    client = MlflowClient()
    experiment = client.create_experiment("resume-errors")
    bare = client.create_run(experiment).info.run_id
    finished = client.create_run(experiment).info.run_id
    client.log_text(finished, "raw_input: x\n", "config.yaml")
    client.set_terminated(finished)
    client.set_terminated(bare, "KILLED")

    for run_id, message in ((finished, "finished; there is nothing to resume"),
                            (bare, "stopped before saving its options")):
        done = run_cli(["optimize", "--resume", run_id], _env(MLFLOW_RUN_ID=None), tmp_path)

        assert done.returncode == 2, done.stderr
        assert_one_error_line(done.stderr, message)


def promptomatix(args: list[str], env: dict[str, str], cwd: Path) -> tuple[subprocess.CompletedProcess, float]:
    """The plain `promptomatix` command (no scripted model: these fail before any model call), and
    the seconds it took."""
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "promptomatix.cli", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120)
    return done, time.monotonic() - started


@pytest.mark.parametrize("command", [["optimize", "--raw-input", RAW_INPUT], ["compare", "reviews"]],
                         ids=["optimize", "compare"])
def test_a_tracking_server_that_refuses_is_one_line_in_seconds(command, tmp_path):
    # Nothing listens on port 9 (discard): MLflow's client alone retried for 255 s.
    uri = "http://127.0.0.1:9"

    done, seconds = promptomatix(command, _env(MLFLOW_TRACKING_URI=uri, MLFLOW_REGISTRY_URI=None, MLFLOW_RUN_ID=None),
                                 tmp_path)

    assert done.returncode == 2, done.stderr
    assert_one_error_line(done.stderr, f"cannot reach the MLflow tracking server {uri}: Connection refused")
    assert seconds < 5


def test_a_tracking_server_that_accepts_but_never_answers_is_one_line_after_the_timeout(tmp_path):
    with socket.socket() as silent:  # accepts connections (the kernel does), never reads nor answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        uri = f"http://127.0.0.1:{silent.getsockname()[1]}"

        done, seconds = promptomatix(["compare", "reviews"],
                                     _env(MLFLOW_TRACKING_URI=uri, MLFLOW_REGISTRY_URI=None, MLFLOW_RUN_ID=None,
                                          PROMPTOMATIX_SERVER_TIMEOUT="2"), tmp_path)

    assert done.returncode == 2, done.stderr
    assert_one_error_line(done.stderr, f"the MLflow tracking server {uri} did not answer within 2 s "
                                       f"(set PROMPTOMATIX_SERVER_TIMEOUT to wait longer)")
    assert 2 <= seconds < 10


def test_a_server_whose_health_answer_is_reset_is_not_refused_as_unreachable():
    """A connection made and then reset (a flaky network, a proxy) is a server that is there:
    the store calls' retries (storeretry.py) ride it out, so the check lets it through; only no
    connection at all is 'cannot reach'."""
    import threading

    from promptomatix.tracking.servercheck import check_server

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)

        def reset_each():
            for _ in range(2):
                conn, _ = server.accept()
                conn.recv(1024)
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST, not FIN
                conn.close()

        threading.Thread(target=reset_each, daemon=True).start()
        check_server(f"http://127.0.0.1:{server.getsockname()[1]}")  # no ConfigError
