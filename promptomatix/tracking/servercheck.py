"""Is the tracking server there? Asked once, quickly, before a command starts.

Kept apart from `tracking` so that it needs neither MLflow nor pandas: importing those takes
seconds, and a command pointed at a server that is down should say so in less.
"""

from __future__ import annotations

import os
import re
import socket

from promptomatix.config import redact_url
from promptomatix.errors import ConfigError

# How long `check_server` waits for a tracking server to answer (seconds); a refused connection
# fails at once. Longer waits are for a slow network: set the variable.
SERVER_TIMEOUT_VARIABLE = "PROMPTOMATIX_SERVER_TIMEOUT"
DEFAULT_SERVER_TIMEOUT = 10.0


def check_server(uri: str) -> None:
    """For a tracking server (http/https URI): one request to its `/health`, no retries, waiting
    at most PROMPTOMATIX_SERVER_TIMEOUT seconds (10 by default) for an answer; a ConfigError in
    one line when nothing answers. MLflow's own client retries a failed request 7 times over
    about 4 minutes, right for a server that answered before and then faltered (and kept for
    that), not for a wrong URL or a server that is down. Any HTTP answer, even an error, is a
    server that is there."""
    if not uri.startswith(("http://", "https://")):
        return
    import requests

    timeout = server_timeout()
    where = redact_url(uri)
    insecure = os.environ.get("MLFLOW_TRACKING_INSECURE_TLS", "").lower() == "true"
    verify = not insecure and (os.environ.get("MLFLOW_TRACKING_SERVER_CERT_PATH") or True)
    try:
        requests.get(f"{uri.rstrip('/')}/health", timeout=timeout, allow_redirects=False, verify=verify)
    except requests.exceptions.SSLError:
        return  # it answered; MLflow's client reports what is wrong with its certificate
    except requests.exceptions.Timeout:
        raise ConfigError(f"the MLflow tracking server {where} did not answer within {timeout:g} s "
                          f"(set {SERVER_TIMEOUT_VARIABLE} to wait longer)") from None
    except requests.exceptions.RequestException as exc:
        if _connected(exc):  # a reset or a cut answer after connecting: the store calls' retries ride it out
            return
        raise ConfigError(f"cannot reach the MLflow tracking server {where}: {_connection_reason(exc)}") from None
    _check_credentials(uri, where, timeout, verify)


def _check_credentials(uri: str, where: str, timeout: float, verify) -> None:
    """One cheap authenticated request (search for one experiment) with the credentials MLflow's
    client sends (`_credentials`): a server with users (`mlflow server --app-name basic-auth`, or
    a proxy asking for a login) answers 401 to a wrong or missing password, a ConfigError in one
    line here, before any work. The message names the variables, never their values. Any other
    answer, or none, is left to the command (a 403 there names the permission it lacks)."""
    import requests

    auth, headers = _credentials()
    if auth is None and headers is None and os.environ.get("MLFLOW_TRACKING_AUTH"):
        return  # an auth plugin of MLflow's signs the requests: it cannot be checked from here
    try:
        response = requests.get(f"{uri.rstrip('/')}/api/2.0/mlflow/experiments/search",
                                params={"max_results": 1}, auth=auth, headers=headers, timeout=timeout,
                                allow_redirects=False, verify=verify)
    except requests.exceptions.RequestException:
        return  # it answered /health just now: the store calls' retries ride out a passing fault
    if response.status_code != 401:
        return
    if auth is None and headers is None:
        raise ConfigError(f"the MLflow tracking server {where} asks for a login (401): set "
                          f"{USERNAME_VARIABLE} and {PASSWORD_VARIABLE}")
    given = "MLFLOW_TRACKING_TOKEN" if headers else f"{USERNAME_VARIABLE} / {PASSWORD_VARIABLE}"
    raise ConfigError(f"the MLflow tracking server {where} refused the credentials (401): check {given}")


USERNAME_VARIABLE, PASSWORD_VARIABLE = "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"


def _credentials() -> tuple[tuple[str, str] | None, dict[str, str] | None]:
    """What MLflow's client authenticates with (`mlflow.utils.credentials`): a user name and
    password from MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD (else the [mlflow] section
    of ~/.mlflow/credentials) as basic auth, else MLFLOW_TRACKING_TOKEN as a bearer token."""
    username, password = os.environ.get(USERNAME_VARIABLE), os.environ.get(PASSWORD_VARIABLE)
    if not (username and password):
        stored = _credentials_file()
        username, password = username or stored.get(USERNAME_VARIABLE.lower()), \
            password or stored.get(PASSWORD_VARIABLE.lower())
    if username and password:
        return (username, password), None
    token = os.environ.get("MLFLOW_TRACKING_TOKEN")
    return None, ({"Authorization": f"Bearer {token}"} if token else None)


def _credentials_file() -> dict[str, str]:
    import configparser

    path = os.path.expanduser("~/.mlflow/credentials")
    if not os.path.exists(path):
        return {}
    config = configparser.ConfigParser()
    try:
        config.read(path)
    except configparser.Error:
        return {}
    return dict(config["mlflow"]) if "mlflow" in config else {}


def _connected(exc: Exception) -> bool:
    """Whether the request reached a server before failing (its connection reset, its answer cut
    short), as opposed to no connection at all: refused, unknown host, no route, a connect
    timeout (urllib3 wraps every failure to connect in a `NewConnectionError`)."""
    import requests
    from urllib3.exceptions import NewConnectionError

    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return False
    todo: list[BaseException] = [exc]
    seen: set[int] = set()
    while todo:
        error = todo.pop()
        if id(error) in seen:
            continue
        seen.add(id(error))
        if isinstance(error, (NewConnectionError, ConnectionRefusedError, socket.gaierror)):
            return False
        todo += [e for e in (error.__cause__, error.__context__, getattr(error, "reason", None), *error.args)
                 if isinstance(e, BaseException)]
    return True


def server_timeout() -> float:
    value = os.environ.get(SERVER_TIMEOUT_VARIABLE, "")
    if not value:
        return DEFAULT_SERVER_TIMEOUT
    try:
        timeout = float(value)
    except ValueError:
        timeout = -1.0
    if not 0 < timeout <= 3600:
        raise ConfigError(f"{SERVER_TIMEOUT_VARIABLE} must be a number of seconds between 0 and 3600, got {value!r}")
    return timeout


def _connection_reason(exc: Exception) -> str:
    """'Connection refused', 'Name or service not known', ...: the OS error's words, which
    requests and urllib3 wrap in several layers of text."""
    found = re.search(r"\[Errno -?\d+\] ([^'\")\]]+)", str(exc))
    return found.group(1).strip() if found else type(exc).__name__
