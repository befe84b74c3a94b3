"""The tracking server, and separately its PostgreSQL, killed and restarted while four
optimizations run (issue 43, point 3).

Four `promptomatix optimize` commands at once (processes of their own, forked from one launcher
after the imports, as `optimize_worker.py` does; the scripted model answers after a short delay,
so that the runs take a while) against a real `mlflow server` on PostgreSQL, registering under
one name. Once the four runs are in their search (the starting prompt scored):

- the server is killed (SIGKILL to its process group: no request under way is answered) and
  started again on the same port with the same store and artifacts;
- PostgreSQL is stopped as a crash stops it (immediate shutdown: no checkpoint, connections cut)
  and started again on the same port and data; the server stays up meanwhile, answering 503.

The retry bound (PROMPTOMATIX_STORE_RETRY_SECONDS) is longer than the outage, so each
optimization is expected to ride it out; one that still fails must say so in the one line that
tells how to resume it, and is then resumed. Either way, in the end: four FINISHED runs (a
resumed one KILLED and linked to its successor), none left RUNNING or FAILED, versions 1-4 of the
model and of its prompt without gap or duplicate, each model version with its prompt version and
each prompt version with its model version, every finished run with all it records.

Also here: a tag that several processes set at the same moment lands for each (the race the
restart test met when the four registrations, held up by the outage, came at once).

One PostgreSQL and one server for the module. Run as a script, this file is the launcher:
`python test_restarts.py NAME COUNT FOLDER` (MLFLOW_TRACKING_URI set), one process per
optimization, each one's stdout, stderr, store retries (timed) and exit status in FOLDER.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from types import SimpleNamespace

import mlflow
import pytest
from click.testing import CliRunner
from mlflow import MlflowClient

import reliability_support as support
import services
from promptomatix.tracking import record, storeretry

OPTIMIZATIONS = 4
LLM_DELAY = 0.15  # s per model call (43 calls, two threads): an optimization takes ~15-30 s on 2 cores
# s from the fault to the restart: the server then takes 10-30 s more to answer (its start-up),
# PostgreSQL well under one
PAUSE = {"server": 3, "postgresql": 12}
RETRY_SECONDS = 240  # the retry bound: past the longest outage a busy 2-core machine gives here
WORKER_LIMIT = 600  # s for the four optimizations, the outage included
JOB = ["optimize", "--raw-input", support.RAW_INPUT, "--model", "reliable/fake", "--synthetic-data-size", "8",
       "--iterations", "1", "--candidates", "2", "--num-threads", "2"]
RESUMABLE = re.compile(r"Error: the MLflow tracking store http://127\.0\.0\.1:\d+ did not answer \S+ \S+ \(.*\)"
                       r"; once it answers, go on with: promptomatix optimize --resume ([0-9a-f]{32})")
RETRY_LINE = re.compile(r"^([\d.]+) tracking store: (\S+) (\S+) failed after ([\d.]+) s .*; retry \d+ in ([\d.]+) s",
                        re.M)


# --- The launcher (this file run as a script) ----------------------------------------------------

def _slow_answer(prompt: str, params: dict) -> str:
    time.sleep(LLM_DELAY)
    return support.scripted_answer(prompt, params)


def _launch(name: str, count: int, folder: Path) -> None:
    """Fork `count` processes, each running `promptomatix optimize ... --name NAME` with its
    stdout and stderr in FOLDER/<i>.out and .err, its store retries with their times in
    FOLDER/<i>.retries, its exit status in FOLDER/<i>.status; wait for them."""
    import mlflow.pyfunc  # noqa: F401  (what an optimization imports, imported once before forking)

    import promptomatix.api  # noqa: F401
    import promptomatix.cli
    from promptomatix.scoring import build_metric
    from promptomatix.task.types import get_task_type

    task = get_task_type("classification")
    build_metric(task.metric, task.score_key)
    children = []
    for index in range(count):
        pid = os.fork()
        if pid == 0:
            status = 1
            try:
                for fd, suffix in ((1, "out"), (2, "err")):
                    os.dup2(os.open(folder / f"{index}.{suffix}", os.O_WRONLY | os.O_CREAT | os.O_TRUNC), fd)
                timed = logging.FileHandler(folder / f"{index}.retries")
                timed.setFormatter(logging.Formatter("%(created).3f %(message)s"))
                logging.getLogger(storeretry.__name__).addHandler(timed)
                support.install("reliable", support.FaultyLLM(_slow_answer, rate=0.0))
                sys.argv = ["promptomatix", *JOB, "--name", name]
                promptomatix.cli.main()
                status = 0
            except SystemExit as exc:
                status = exc.code if isinstance(exc.code, int) else 1
            except BaseException:  # os._exit below would swallow it
                import traceback

                traceback.print_exc()
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                (folder / f"{index}.status").write_text(str(status))
                os._exit(status)
        children.append(pid)
    for pid in children:
        os.waitpid(pid, 0)


if __name__ == "__main__":
    _launch(sys.argv[1], int(sys.argv[2]), Path(sys.argv[3]))
    sys.exit(0)


# --- The tests -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def team(tmp_path_factory):
    """PostgreSQL and `mlflow server` on it, both restartable; stopped after the module."""
    from conftest import skip_or_fail

    folder = tmp_path_factory.mktemp("restarts")
    with ExitStack() as stack:
        try:
            database = stack.enter_context(services.postgres_cluster())
            server = stack.enter_context(services.restartable_mlflow_server(database.uri, folder / "artifacts",
                                                                            folder / "server.log"))
        except services.Unavailable as exc:
            skip_or_fail(f"postgresql tracking server: {exc}")
        yield SimpleNamespace(database=database, server=server,
                              client=MlflowClient(tracking_uri=server.url, registry_uri=server.url))


# What goes down, and how it comes back.
OUTAGES = {"server": (lambda team: team.server.kill(), lambda team: team.server.start()),
           "postgresql": (lambda team: team.database.crash(), lambda team: team.database.start())}


@pytest.mark.parametrize("outage", sorted(OUTAGES))
def test_four_optimizations_ride_out_a_restart(outage, team, tmp_path, monkeypatch):
    name = f"restart-{outage}"
    stop, start = OUTAGES[outage]
    client = team.client
    env = os.environ | {"MLFLOW_TRACKING_URI": team.server.url, "MLFLOW_REGISTRY_URI": team.server.url,
                        storeretry.RETRY_SECONDS_VARIABLE: str(RETRY_SECONDS)}
    for key in ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID"):
        env.pop(key, None)
    started = time.monotonic()
    launcher = subprocess.Popen([sys.executable, __file__, name, str(OPTIMIZATIONS), str(tmp_path)], cwd=tmp_path,
                                env=env, start_new_session=True)
    try:
        # the fault, once the four runs are in their search (the starting prompt scored, step 0 logged)
        while sum("best_score" in r.data.metrics for r in _runs(client, name, "RUNNING")) < OPTIMIZATIONS:
            assert launcher.poll() is None, _outputs(tmp_path)
            assert time.monotonic() - started < WORKER_LIMIT, "the four runs did not get under way"
            time.sleep(0.5)
        in_search = time.monotonic()
        stop(team)
        down_at = time.monotonic()
        time.sleep(PAUSE[outage])
        start(team)
        down = time.monotonic() - down_at
        launcher.wait(timeout=max(1.0, WORKER_LIMIT - (time.monotonic() - started)))
    finally:
        if launcher.poll() is None:
            os.killpg(launcher.pid, signal.SIGKILL)
            launcher.wait()
        if team.server.process is None or not team.database.running:  # up again for the next test
            start(team)
    outcomes = _outcomes(tmp_path)
    first_time = time.monotonic() - started

    # each finished, or said in one line how to resume it (and nothing else: no traceback)
    to_resume = []
    for index, (status, _, err) in enumerate(outcomes):
        assert "Traceback" not in err, f"optimization {index}: {err[-3000:]}"
        if status == 0:
            continue
        errors = [line for line in err.splitlines() if line.startswith("Error:")]
        assert status == 1 and len(errors) == 1, f"optimization {index} exited {status}: {err[-3000:]}"
        said = RESUMABLE.fullmatch(errors[0])
        assert said, errors[0]
        to_resume.append(said.group(1))
    resumed = _resume(to_resume, team, monkeypatch)
    seconds = time.monotonic() - started

    # four FINISHED runs; a resumed one KILLED and linked to its successor; none RUNNING or FAILED
    runs = {r.info.run_id: r for r in _runs(client, name)}
    by_status = Counter(r.info.status for r in runs.values())
    assert by_status == Counter({"FINISHED": OPTIMIZATIONS, "KILLED": len(to_resume)}), by_status
    for run_id in to_resume:
        assert runs[run_id].data.tags[record.RESUMED_BY] in resumed
    finished = sorted(r for r in runs if runs[r].info.status == "FINISHED")

    # versions 1-4 of the model and of the prompt, no gap, no duplicate, none half-registered
    versions = client.search_model_versions(f"name = '{name}'")
    assert sorted(int(v.version) for v in versions) == list(range(1, OPTIMIZATIONS + 1))
    assert sorted(v.run_id for v in versions) == finished
    prompts = {str(p.version): p for p in client.search_prompt_versions(f"{name}-prompt")}
    assert sorted(map(int, prompts)) == list(range(1, OPTIMIZATIONS + 1))
    for version in versions:
        prompt = prompts.get(version.tags[record.PROMPT_URI].rsplit("/", 1)[1])
        assert prompt is not None and version.tags[record.PROMPT_URI] == f"prompts:/{name}-prompt/{prompt.version}"
        assert (prompt.tags[record.RUN_ID], prompt.tags[record.MODEL_VERSION]) == (version.run_id, version.version)
    assert [m.name for m in client.search_registered_models() if m.name.startswith(name)] == [name]

    # every finished run with all it records: one READY logged model, its two inputs, artifacts,
    # traces, no metric twice at one step
    experiment = client.get_experiment_by_name(name)
    models = [m for m in client.search_logged_models(experiment_ids=[experiment.experiment_id])
              if m.source_run_id in finished]
    assert sorted(m.source_run_id for m in models) == finished and {m.status.name for m in models} == {"READY"}
    for run_id in finished:
        assert sorted(i.dataset.name for i in runs[run_id].inputs.dataset_inputs) == ["train", "valid"]
    from test_flaky_network import _assert_recorded

    with ThreadPoolExecutor(OPTIMIZATIONS) as pool:  # ~40 requests a run
        list(pool.map(lambda run_id: _assert_recorded(client, runs[run_id]), set(finished) - resumed))

    # what it cost, for docs/reliability.md
    retries = [[m.groups() for m in RETRY_LINE.finditer(_read(tmp_path / f"{i}.retries"))]
               for i in range(OPTIMIZATIONS)]
    # time held up: the failed tries and the waits after them, overlapping ones (several threads) once
    lost = [_covered([(float(at) - float(took), float(at) + float(wait)) for at, _, _, took, wait in chain])
            for chain in retries]
    found_done = sum(_read(tmp_path / f"{i}.retries").count("had been done by the try whose answer was lost")
                     for i in range(OPTIMIZATIONS))
    took = [float(m.group(1)) for _, out, _ in outcomes for m in re.finditer(r"LLM calls.*, ([\d.]+) s$", out, re.M)]
    print(f"\n{outage} restart: the four runs in their search {in_search - started:.0f} s after the start; down "
          f"{down:.1f} s (stopped, {PAUSE[outage]} s, started again, answering); {OPTIMIZATIONS - len(to_resume)} "
          f"of {OPTIMIZATIONS} finished the first time, {len(to_resume)} resumed; versions 1-{OPTIMIZATIONS}; "
          f"{sum(map(len, retries))} retries ({[len(c) for c in retries]}), time held up by them "
          f"{[round(x, 1) for x in lost]} s; {found_done} writes found done; the optimizations took "
          f"{[round(x) for x in took]} s; {first_time:.0f} s to the end of the four, {seconds:.0f} s with resumes")
    assert all(retries), "an optimization did not meet the outage: the test no longer covers it"


def test_a_tag_several_writers_set_at_once_lands_for_each(team, monkeypatch, caplog):
    """The store sets a tag by looking, then inserting or updating: writers setting the same new
    tag at one moment all insert, and all but one were refused (`BAD_REQUEST: (psycopg.errors.
    UniqueViolation) duplicate key value violates unique constraint "registered_model_tag_pk"`).
    The restart test met it in `run.registration.link_to_experiment`, when the four registrations held up
    by the outage came at once: three optimizations failed with a traceback, and the first
    one's undo deleted the prompt the others had registered versions of. Sent again, the tag is
    updated: each writer's call succeeds."""
    services.point_client_at(team.server.url, monkeypatch)
    storeretry.uninstall()  # counts from zero
    storeretry.install()
    name, writers = "tagged-at-once", 6
    client = MlflowClient()
    client.create_registered_model(name)
    failures: list[str] = []
    rounds = 0
    try:
        with caplog.at_level(logging.WARNING, logger=storeretry.__name__):
            while rounds < 30 and storeretry.counts().retries < 2:  # each race met is a retry
                barrier = threading.Barrier(writers)

                def write(key: str, barrier: threading.Barrier = barrier) -> None:
                    barrier.wait()
                    try:
                        MlflowClient().set_registered_model_tag(name, key, "same")
                    except Exception as exc:  # counted, and shown below
                        failures.append(str(exc)[:200])

                threads = [threading.Thread(target=write, args=(f"key-{rounds}",)) for _ in range(writers)]
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join()
                rounds += 1
        tags = client.get_registered_model(name).tags
    finally:
        mlflow.set_tracking_uri(None)
        mlflow.set_registry_uri(None)

    assert failures == []
    assert tags == {f"key-{i}": "same" for i in range(rounds)}
    counts = storeretry.counts()
    print(f"\n{writers} writers at once, {rounds} rounds: {counts.retries} refused by the race and sent again")
    assert counts.retries >= 1, "no two writers met: the test no longer covers the race"
    races = [r.getMessage() for r in caplog.records if r.name == storeretry.__name__]
    assert all("registered-models/set-tag" in m and "another writer set the same key at that moment" in m
               for m in races), races


def _runs(client: MlflowClient, name: str, status: str | None = None) -> list:
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        return []
    return [r for r in client.search_runs([experiment.experiment_id], max_results=1000)
            if status is None or r.info.status == status]


def _read(path: Path) -> str:
    return path.read_text() if path.exists() else ""


def _outcomes(folder: Path) -> list[tuple[int | None, str, str]]:
    """(exit status, stdout, stderr) of each optimization of the launcher."""
    return [(int(_read(folder / f"{i}.status")) if _read(folder / f"{i}.status") else None,
             _read(folder / f"{i}.out"), _read(folder / f"{i}.err")) for i in range(OPTIMIZATIONS)]


def _outputs(folder: Path) -> str:
    return "\n".join(f"--- {i}: exit {s}\n{err[-2000:]}" for i, (s, _, err) in enumerate(_outcomes(folder)))


def _covered(spans: list[tuple[float, float]]) -> float:
    """Seconds covered by the union of the (start, end) spans."""
    total, reached = 0.0, float("-inf")
    for begin, end in sorted(spans):
        if end > reached:
            total += end - max(begin, reached)
            reached = end
    return total


def _resume(run_ids: list[str], team, monkeypatch) -> set[str]:
    """`promptomatix optimize --resume RUN` for each, the store back; the new runs' ids."""
    if not run_ids:
        return set()
    services.point_client_at(team.server.url, monkeypatch)
    support.install("reliable", support.FaultyLLM(rate=0.0))
    from promptomatix.cli import cli

    new = set()
    try:
        for run_id in run_ids:
            done = CliRunner().invoke(cli, ["optimize", "--resume", run_id, "--quiet"])
            assert done.exit_code == 0, done.output
            new.add(re.search(r"run id:\s+([0-9a-f]{32})", done.output).group(1))
    finally:
        mlflow.set_tracking_uri(None)
        mlflow.set_registry_uri(None)
    return new
