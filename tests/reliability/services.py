"""Real services for the team tests: a private PostgreSQL on loopback and `mlflow server`.

    with postgres(folder) as uri:                 # postgresql://mlflow:...@127.0.0.1:PORT/mlflow
        with mlflow_server(uri, folder / "artifacts", folder / "server.log") as url:
            ...                                   # http://127.0.0.1:PORT, /health answered

Each is started by the test session and stopped when its `with` ends, also when a test fails.
`postgres_cluster()` and `restartable_mlflow_server()` yield the service itself instead, which
can be crashed and started again on the same port and data (`crash()` / `kill()`, `start()`).
Where PROMPTOMATIX_SERVICE_DIR names a folder (`.ci/run` sets it), the clusters are made in it
and each server's process group id is written there, so that a run killed before its clean-up
can still have them stopped by id.
PostgreSQL is Debian's (package `postgresql`): a throwaway cluster made with its `initdb` in a
temporary folder, so nothing touches the machine's own cluster. A service that cannot be
started here raises `Unavailable` with the reason; the tests then call conftest's
`skip_or_fail` (a skip, or a failure in CI).

Kept out of a conftest.py for the reason given in reliability_support.py.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

# mlflow server answers /health after ~15 s on an idle 2-core machine, ~60 s on a busy one; a
# fresh PostgreSQL database adds MLflow's schema migrations to that.
SERVER_STARTUP_LIMIT = 300


SERVICE_DIR = "PROMPTOMATIX_SERVICE_DIR"


class Unavailable(RuntimeError):
    """A service that cannot run on this machine; the message says why."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def _postgres_bin() -> Path:
    # Debian keeps the server's programs out of PATH, one folder per major version (a link to
    # one of them on PATH may be all there is of it).
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    found = candidates[-1] if candidates else shutil.which("initdb")
    if not found:
        raise Unavailable("PostgreSQL is not installed (Debian: apt-get install postgresql)")
    return Path(os.path.realpath(found)).parent


def _as_server_user(command: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: as root, run it as the `postgres` user the Debian
    package creates."""
    if os.geteuid() != 0:
        return command
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        raise Unavailable("running as root and there is no 'postgres' user to run PostgreSQL as") from None
    return ["runuser", "-u", "postgres", "--", *command]


@contextmanager
def postgres(prefix: str = "pmx-pg-"):
    """A new PostgreSQL cluster on a free loopback port with a database `mlflow` owned by the
    password-protected user `mlflow`; yields its SQLAlchemy URI. Removed afterwards."""
    with postgres_cluster(prefix) as cluster:
        yield cluster.uri


class PostgresCluster:
    """A cluster made by `postgres_cluster`: `uri`, and `crash()` / `start()` to stop it as a
    crash would (an immediate shutdown: no checkpoint, the connections cut) and start it again on
    the same port and data (PostgreSQL then recovers from its log)."""

    def __init__(self, bindir: Path, folder: Path, port: int):
        self.bindir, self.folder, self.port = bindir, folder, port
        self.data, self.log = folder / "data", folder / "server.log"
        self.uri = ""
        self.running = False

    def run(self, *command: str, env: dict | None = None) -> None:
        done = subprocess.run(_as_server_user([str(self.bindir / command[0]), *command[1:]]), capture_output=True,
                              text=True, timeout=120, env=env)
        if done.returncode != 0:
            raise Unavailable(f"PostgreSQL {command[0]} failed: {(done.stderr or done.stdout).strip()[-500:]}")

    def start(self) -> None:
        # Loopback only, socket in our folder; fsync off: a test database need not survive a crash.
        self.run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", "-o",
                 f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.folder} -c fsync=off "
                 "-c max_connections=200", "start")
        self.running = True

    def crash(self) -> None:
        """Stop at once: PostgreSQL's immediate shutdown (every server process quits without a
        checkpoint, open transactions are lost, clients see their connections drop)."""
        self.run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        self.running = False

    def stop(self) -> None:
        subprocess.run(_as_server_user([str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w",
                                        "stop"]), capture_output=True, timeout=60)
        self.running = False


@contextmanager
def postgres_cluster(prefix: str = "pmx-pg-"):
    """As `postgres`, yielding the `PostgresCluster` (its `uri`, and a way to crash and restart
    it) instead of the URI alone."""
    bindir = _postgres_bin()
    # Not pytest's tmp_path: the postgres user must be able to enter it.
    folder = Path(tempfile.mkdtemp(prefix=prefix, dir=os.environ.get(SERVICE_DIR) or None))
    password = secrets.token_hex(12)
    (folder / "pw").write_text(password + "\n")
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres")
        shutil.chown(folder / "pw", "postgres")
    cluster = PostgresCluster(bindir, folder, free_port())
    try:
        cluster.run("initdb", "-D", str(cluster.data), "-U", "mlflow", "--pwfile", str(folder / "pw"), "-A",
                    "scram-sha-256", "-E", "UTF8", "--no-sync")
        cluster.start()
        cluster.run("createdb", "-h", "127.0.0.1", "-p", str(cluster.port), "-U", "mlflow", "mlflow",
                    env=os.environ | {"PGPASSWORD": password})
        cluster.uri = f"postgresql://mlflow:{password}@127.0.0.1:{cluster.port}/mlflow"
        yield cluster
    finally:
        if cluster.running or (cluster.data / "postmaster.pid").exists():
            cluster.stop()
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def mlflow_server(backend_store_uri: str, artifacts: Path, log_path: Path, *, extra_args: tuple[str, ...] = (),
                  env: dict[str, str | None] | None = None):
    """`mlflow server` on a free loopback port with the given backend store, serving the
    artifacts under `artifacts` itself (--serve-artifacts): clients reach artifacts through the
    server only. Yields its URL once /health answers; its whole process group is stopped after.
    `extra_args` go on its command line (e.g. `--app-name basic-auth`), `env` into its
    environment (added to this process's; None removes a variable)."""
    with restartable_mlflow_server(backend_store_uri, artifacts, log_path, extra_args=extra_args, env=env) as server:
        yield server.url


class MlflowServer:
    """An `mlflow server` made by `restartable_mlflow_server`: `url`, and `kill()` / `start()` to
    kill it as a crash would (SIGKILL to its whole process group) and start it again on the same
    port with the same store and artifacts. `start()` returns once /health answers."""

    def __init__(self, command: list[str], log_path: Path, env: dict[str, str], url: str):
        self.command, self.log_path, self.env, self.url = command, log_path, env, url
        self.process: subprocess.Popen | None = None
        self._record: Path | None = None

    def start(self) -> None:
        with self.log_path.open("a") as log:  # a restart's output after the first's
            self.process = subprocess.Popen(self.command, cwd=self.log_path.parent, stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True, env=self.env)
        if os.environ.get(SERVICE_DIR):
            self._record = Path(os.environ[SERVICE_DIR]) / f"mlflow-server-{self.process.pid}.pid"
            self._record.write_text(f"{self.process.pid}\n")  # its process group id (a session of its own)
        deadline = time.monotonic() + SERVER_STARTUP_LIMIT
        while not healthy(self.url):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise Unavailable(f"mlflow server did not come up: {self.log_path.read_text()[-2000:]}")
            time.sleep(0.5)

    def kill(self) -> None:
        """SIGKILL to the server and its workers at once: no request under way is finished."""
        if self.process is None:
            return
        group = self.process.pid
        try:
            os.killpg(group, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self._ended()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # its workers too (they hold the port), not only the leader
            try:
                os.killpg(group, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)

    def stop(self) -> None:
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:  # it ended by itself (did not come up)
            pass
        self._ended()

    def _ended(self) -> None:
        assert self.process is not None
        self.process.wait()
        self.process = None
        if self._record:
            self._record.unlink(missing_ok=True)
            self._record = None


@contextmanager
def restartable_mlflow_server(backend_store_uri: str, artifacts: Path, log_path: Path, *,
                              extra_args: tuple[str, ...] = (), env: dict[str, str | None] | None = None):
    """As `mlflow_server`, yielding the `MlflowServer` (its `url`, and a way to kill and restart
    it) instead of the URL alone."""
    port = free_port()
    log_path.write_text("")
    server = MlflowServer(
        [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", backend_store_uri,
         "--artifacts-destination", str(artifacts), "--serve-artifacts",
         "--host", "127.0.0.1", "--port", str(port), "--workers", "2", *extra_args],
        log_path, {k: v for k, v in (os.environ | (env or {})).items() if v is not None}, f"http://127.0.0.1:{port}")
    try:
        server.start()
        yield server
    finally:
        server.stop()


@contextmanager
def mlflow_auth_server(folder: Path, admin_password: str):
    """`mlflow server --app-name basic-auth` (MLflow's own users and permissions) on a free
    loopback port, everything in `folder`: a sqlite store, its artifacts, the users' database and
    the auth configuration (admin user `admin` with `admin_password`; every other user READ by
    default). Yields its URL once /health answers; stopped after as `mlflow_server`."""
    config = folder / "basic_auth.ini"
    config.write_text("[mlflow]\n"
                      "default_permission = READ\n"
                      f"database_uri = sqlite:///{folder / 'users.db'}\n"
                      "admin_username = admin\n"
                      f"admin_password = {admin_password}\n"
                      "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
                      # a password checked once a minute, not at each request (PBKDF2 is slow on purpose)
                      "auth_cache_ttl_seconds = 60\n")
    config.chmod(0o600)
    env: dict[str, str | None] = {"MLFLOW_AUTH_CONFIG_PATH": str(config), "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_hex(16)}
    for key in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_URI"):
        env[key] = None  # the server's own settings only, not a client's credentials
    with mlflow_server(f"sqlite:///{folder / 'server.db'}", folder / "artifacts", folder / "server.log",
                       extra_args=("--app-name", "basic-auth"), env=env) as url:
        yield url


def point_client_at(url: str, monkeypatch) -> None:
    """This process's MLflow client (and the processes it starts) on the tracking server at `url`,
    for one test (`monkeypatch` undoes the environment; call `mlflow.set_tracking_uri(None)` and
    `mlflow.set_registry_uri(None)` after), with no run or experiment chosen by an earlier test."""
    import mlflow

    for key in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
        monkeypatch.setenv(key, url)
    for key in ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setattr("mlflow.tracking.fluent._active_experiment_id", None)
    mlflow.set_tracking_uri(url)
    mlflow.set_registry_uri(url)
