"""Several processes starting at once on a sqlite store that does not exist yet all get it:
its creation (MLflow's schema migrations, run by its tracking and its registry store alike) is
done by one process at a time, under a lock file beside the store. Before, the slower of two
failed with alembic's "Online migration expected to match one row ..." and a 92-line traceback.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import mlflow
from mlflow import MlflowClient

# Each worker imports everything first, then waits for the go file, so that all of them open
# the new store in the same instant; then it does what `optimize` does first (check the store),
# starts a run and creates a registered model version under one shared name.
WORKER = """
import os, sys, time
import mlflow
from mlflow import MlflowClient
from promptomatix.tracking.mlflow_tracker import check_store

go, ready = sys.argv[1], sys.argv[2]
open(ready, "w").close()
while not os.path.exists(go):
    time.sleep(0.005)
check_store()
client = MlflowClient()
with mlflow.start_run() as run:
    mlflow.log_param("worker", ready)
for attempt in range(20):  # two processes creating one new model at once: the registry's own race
    try:
        client.create_registered_model("shared")
        break
    except mlflow.exceptions.MlflowException as exc:
        if exc.error_code == "RESOURCE_ALREADY_EXISTS":
            break
        time.sleep(0.1)
client.create_model_version("shared", "runs:/%s/model" % run.info.run_id, run_id=run.info.run_id)
"""

WORKERS = 4


def test_processes_starting_together_on_a_new_sqlite_store_all_succeed(tmp_path):
    store = tmp_path / "new" / "mlflow.db"
    uri = f"sqlite:///{store}"
    env = dict(os.environ, MLFLOW_TRACKING_URI=uri, MLFLOW_REGISTRY_URI=uri)
    env.pop("MLFLOW_RUN_ID", None)
    go = tmp_path / "go"
    workers = [subprocess.Popen([sys.executable, "-c", WORKER, str(go), str(tmp_path / f"ready{i}")], cwd=tmp_path,
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for i in range(WORKERS)]
    try:
        deadline = time.monotonic() + 120
        while not all((tmp_path / f"ready{i}").exists() for i in range(WORKERS)):
            assert all(w.poll() is None for w in workers), [w.communicate()[1] for w in workers if w.poll() is not None]
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert not store.exists()
        go.write_text("")
        results = [(w.wait(120), w.stderr.read()) for w in workers]
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
                w.wait()

    assert [rc for rc, _ in results] == [0] * WORKERS, "\n".join(err for _, err in results)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    try:
        versions = MlflowClient().search_model_versions("name = 'shared'")
        assert sorted(int(v.version) for v in versions) == list(range(1, WORKERS + 1))
        assert len(mlflow.search_runs(search_all_experiments=True, output_format="list")) == WORKERS
    finally:
        mlflow.set_tracking_uri(None)
        mlflow.set_registry_uri(None)
