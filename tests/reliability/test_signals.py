"""SIGTERM and SIGHUP (what `timeout`, `docker stop`, Kubernetes, systemd and a closed terminal
send) stop an optimization the way Ctrl-C does: the run ends KILLED with the reason, nothing
half-registered stays, the process exits 128 + the signal within seconds, and the run can be
resumed. Each test runs `promptomatix` in its own process, as a user would, and signals it where
the scripted model blocks (`cli_with_fakes.py`, RELIABILITY_BLOCK)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
from click.testing import CliRunner
from mlflow import MlflowClient
from reliability_support import RAW_INPUT

from promptomatix.cli import cli

HERE = Path(__file__).parent
JOB = ["optimize", "--raw-input", RAW_INPUT, "--model", "reliable/fake", "--synthetic-data-size", "6",
       "--iterations", "2", "--candidates", "1", "--num-threads", "2", "--name", "reviews", "--quiet"]


def from_a_terminal() -> None:
    """The signal dispositions of a job started from a terminal: SIGHUP at its default, even when
    the test itself runs under nohup (which ignores it, and children inherit that)."""
    signal.signal(signal.SIGHUP, signal.SIG_DFL)


def signal_job(tmp_path: Path, block_at: str, signum: int, while_blocked=lambda child: None, job=JOB,
               preexec_fn=from_a_terminal) -> tuple[subprocess.CompletedProcess, float]:
    """Run `job` until the scripted model blocks at `block_at`, call `while_blocked(process)`,
    send `signum`, and return the finished process and the seconds from the signal to its exit."""
    marker = tmp_path / "blocked"
    env = dict(os.environ, RELIABILITY_BLOCK=f"{block_at}:{marker}")
    env.pop("MLFLOW_RUN_ID", None)
    child = subprocess.Popen([sys.executable, str(HERE / "cli_with_fakes.py"), *job], cwd=tmp_path, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=preexec_fn)
    try:
        deadline = time.monotonic() + 180
        while not marker.exists():
            assert child.poll() is None, child.communicate()[1]
            assert time.monotonic() < deadline, f"the job never got to {block_at}"
            time.sleep(0.1)
        while_blocked(child)
        sent = time.monotonic()
        child.send_signal(signum)
        stdout, stderr = child.communicate(timeout=60)
        return subprocess.CompletedProcess(child.args, child.returncode, stdout, stderr), time.monotonic() - sent
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def only_run():
    (run,) = mlflow.search_runs(search_all_experiments=True, output_format="list")
    return run


def test_sigterm_mid_search_ends_the_run_killed_exit_143_and_resume_finishes_it(tracking, tmp_path):
    def resume_while_alive(child):  # two processes would do one job: refused while the first one lives
        refused = CliRunner().invoke(cli, ["optimize", "--resume", only_run().info.run_id])
        assert refused.exit_code == 2
        assert refused.stderr.startswith(f"Error: run {only_run().info.run_id} is still running, in process ")

    done, seconds = signal_job(tmp_path, "rewrite", signal.SIGTERM, resume_while_alive)

    assert done.returncode == 143, done.stderr
    assert seconds < 10
    run = only_run()
    assert run.info.status == "KILLED"
    reason = run.data.tags["promptomatix.error"]
    assert reason.startswith("stopped by SIGTERM") and f"--resume {run.info.run_id}" in reason
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1] == f"Error: {reason}"

    resumed = subprocess.run([sys.executable, str(HERE / "cli_with_fakes.py"), "optimize", "--resume",
                              run.info.run_id, "--quiet"], cwd=tmp_path, capture_output=True, text=True,
                             timeout=180, env={k: v for k, v in os.environ.items() if k != "MLFLOW_RUN_ID"})

    assert resumed.returncode == 0, resumed.stderr
    versions = MlflowClient().search_model_versions("name = 'reviews'")
    assert [str(v.version) for v in versions] == ["1"]
    assert MlflowClient().get_run(versions[0].run_id).data.tags["promptomatix.resumed_from"] == run.info.run_id


def test_sighup_while_registering_undoes_the_registration(tracking, tmp_path):
    done, seconds = signal_job(tmp_path, "register", signal.SIGHUP)

    assert done.returncode == 128 + signal.SIGHUP, done.stderr
    assert seconds < 10
    run = only_run()
    assert run.info.status == "KILLED"
    assert run.data.tags["promptomatix.error"].startswith("stopped by SIGHUP")
    client = MlflowClient()
    assert client.search_registered_models() == []  # the model version, and the model it created, undone
    assert mlflow.genai.search_prompts() == []  # the prompt version too


def test_sigterm_to_a_script_calling_the_python_api_ends_its_run_killed(tracking, tmp_path):
    # what `timeout 600 python my_script.py` does when the time is up
    done, seconds = signal_job(tmp_path, "rewrite", signal.SIGTERM, job=["python-api"])

    assert done.returncode == -signal.SIGTERM and seconds < 10  # dies of the signal, as by default
    run = only_run()
    assert run.info.status == "KILLED"
    assert run.data.tags["promptomatix.error"].startswith("stopped by SIGTERM")
    assert f"promptomatix: stopped by SIGTERM; run {run.info.run_id} ended KILLED" in done.stderr


def test_a_job_started_under_nohup_goes_on_when_its_terminal_closes(tracking, tmp_path):
    def hang_up(child):
        child.send_signal(signal.SIGHUP)
        time.sleep(2)
        assert child.poll() is None, "SIGHUP, ignored by nohup, stopped the job"

    # nohup starts the job with SIGHUP ignored; the job must not take it back. SIGTERM then ends it.
    done, _ = signal_job(tmp_path, "rewrite", signal.SIGTERM, hang_up,
                         preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN))
    assert done.returncode == 143, done.stderr
    assert only_run().data.tags["promptomatix.error"].startswith("stopped by SIGTERM")
