"""Calls to a tracking server that survive a flaky network, and are safe to repeat.

Every request MLflow's client sends to a tracking server (`mlflow server`: runs, params,
metrics, inputs, artifacts through `--serve-artifacts`, traces, the model and prompt
registries) goes through one function, `mlflow.utils.rest_utils._get_http_response_with_retries`.
`install()` puts `StoreRetry` in its place, for requests to the tracking or registry server
only (other hosts, such as MLflow's telemetry, are passed through as they were).

Why not MLflow's own retries: its urllib3 `Retry` covers refused connections and some status
codes, but not a body cut short after the head (`ChunkedEncodingError: Connection broken:
IncompleteRead(0 bytes read, 2 more expected)` lost a whole optimization); and it sends every
method again blindly, so a `POST model-versions/create` whose answer was lost registered a
second version. Here MLflow's client makes one attempt per call (`max_retries=0`), and
`StoreRetry` decides:

- what is retried: connection errors, resets, broken reads, timeouts, and the answers 408,
  429, 500, 502, 503, 504; a tag or an alias refused because another process inserted the same
  key at the same moment (the store looks, then inserts: the slower one breaks the key's unique
  constraint; sent again, it updates); with backoff (0.25 s doubling to 8 s, jittered; a `Retry-After`
  is honoured) for at most PROMPTOMATIX_STORE_RETRY_SECONDS (default 120) from the first try;
  each retry is a WARNING naming the method, the path and the cause (no host credentials, no
  query, no body);
- what is safe to send again: everything whose repeat changes nothing (tags, params, metrics,
  which the store keeps once per key, step, timestamp and value; data set inputs, which it links
  once; traces and spans, which it merges; evaluation dataset records, which it merges by their
  inputs; artifacts, which are overwritten; aliases, which point where they are set); and
  what is not, when the request may have reached the server (a reset, a broken or timed-out
  read, a 5xx other than a proxy's 503; MLflow's own 503 is a database error, which may come
  after the database took the commit): before sending again, the store is asked whether the first try
  did the work, and if so its result is answered as if it had arrived (`_FIND`): runs/create
  (by its start time, run name, user and tags; the run name is chosen here when the caller
  left it to the server, so that it identifies the run), model-versions/create (model and
  prompt versions: by name, run, tags, description, made since the first try; the server
  rewrites the source and keeps no model id, so not by those), logged-models (create: a
  PENDING model of that name from that run), datasets/create (an evaluation dataset of that
  name and tags, made since the first try), runs/outputs and logged-models/<id>/params
  (already recorded);
- what a repeat refuses that the first try did: an experiment or registered model "already
  exists", or a deleted object "does not exist", after a first try that may have been done,
  is that first try's result (`_SECOND_ANSWER`).

After the bound the call fails: with `StoreUnavailable` (one line, inside MLflow's own
MlflowException; `error_line` finds it), or with the server's own last answer when the caller
reads error answers itself. From then on, until a request succeeds again, each call is tried
once (a store down for minutes would otherwise make each of the run's last writes, such as its
FAILED status, wait the bound again).

`install()` is called by every command that opens the store (`promptomatix.cli`) and by
`optimize`, `promote` and `rollback`; it is idempotent and thread-safe, and covers every MLflow
call of the process from then on, the caller's own included. `counts()` says how many retries
there were and the time they cost.
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from promptomatix.errors import ConfigError, PromptomatixError

log = logging.getLogger(__name__)

RETRY_SECONDS_VARIABLE = "PROMPTOMATIX_STORE_RETRY_SECONDS"
DEFAULT_RETRY_SECONDS = 120.0
FIRST_WAIT, LONGEST_WAIT = 0.25, 8.0
RETRIED_STATUS = frozenset({408, 429, 500, 502, 503, 504})
NOT_DONE_STATUS = frozenset({408, 429, 503})  # the server says it did not start the work
# A streamed download (an artifact) is read whole inside the retries up to this size, so that a
# body cut short is asked again; a larger one streams as before, unprotected.
PRELOAD_LIMIT = 256 * 2**20
# How far the server's clock may be behind ours when looking for a version made by a first try.
CLOCK_SKEW_MS = 30_000

_INSTALL_LOCK = threading.Lock()  # install() from two threads at once installs once


class StoreUnavailable(PromptomatixError):
    """The tracking server did not take a request within the retry bound."""

    def __init__(self, message: str, run_id: str | None = None):
        super().__init__(message)
        self.run_id = run_id
        self.at = time.monotonic()


@dataclass(frozen=True)
class RetryCounts:
    retries: int = 0  # requests sent again
    seconds: float = 0.0  # time spent on failed tries and waits, in calls that went on
    recovered: int = 0  # writes a lost answer had hidden, found done instead of sent again
    gave_up: int = 0  # calls that failed after the bound


def retry_seconds() -> float:
    """PROMPTOMATIX_STORE_RETRY_SECONDS (default 120): how long a call is retried; 0 tries once."""
    value = os.environ.get(RETRY_SECONDS_VARIABLE, "")
    if not value.strip():
        return DEFAULT_RETRY_SECONDS
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds <= 86400:
        raise ConfigError(f"{RETRY_SECONDS_VARIABLE} must be a number of seconds between 0 and 86400, got {value!r}")
    return seconds


def install() -> None:
    """Retry this process's requests to the tracking and registry servers (see the module
    docstring). Idempotent; raises ConfigError for a bad PROMPTOMATIX_STORE_RETRY_SECONDS."""
    retry_seconds()  # a bad setting is one line now, not at the first failure
    from mlflow.utils import rest_utils

    with _INSTALL_LOCK:
        if not isinstance(rest_utils._get_http_response_with_retries, StoreRetry):
            rest_utils._get_http_response_with_retries = StoreRetry(rest_utils._get_http_response_with_retries)


def uninstall() -> None:
    """Put MLflow's own function back (for tests)."""
    from mlflow.utils import rest_utils

    with _INSTALL_LOCK:
        current = rest_utils._get_http_response_with_retries
        if isinstance(current, StoreRetry):
            rest_utils._get_http_response_with_retries = current.send


def counts() -> RetryCounts:
    """Retries of this process so far (all zero when not installed)."""
    import sys

    rest_utils = sys.modules.get("mlflow.utils.rest_utils")
    current = getattr(rest_utils, "_get_http_response_with_retries", None)
    return current.counts() if isinstance(current, StoreRetry) else RetryCounts()


def unavailable_in(exc: BaseException | None) -> StoreUnavailable | None:
    """The StoreUnavailable behind `exc` (MLflow wraps it in an MlflowException); of several (a
    failed run's own failure record failing too), the first, which says what stopped the work."""
    found: list[StoreUnavailable] = []
    for item in _chain(exc) if exc is not None else ():
        if isinstance(item, StoreUnavailable):
            found.append(item)
    return min(found, key=lambda e: e.at) if found else None


def error_line(exc: BaseException, command: str | None = None) -> str | None:
    """The one line a command prints when `exc` comes from a store that stayed unreachable
    past the bound (None for any other error); for `optimize`, how to go on with its run."""
    found = unavailable_in(exc)
    if found is None:
        return None
    if command != "optimize":
        return str(found)
    import sys

    run_id = found.run_id  # the run the failed write was about, else the one still open (its end failed too)
    mlflow = sys.modules.get("mlflow")
    if mlflow is not None and mlflow.active_run() is not None:
        run_id = mlflow.active_run().info.run_id
    return f"{found}; once it answers, go on with: promptomatix optimize --resume {run_id}" if run_id else str(found)


class StoreRetry:
    """MLflow's `_get_http_response_with_retries`, retried as the module docstring says."""

    def __init__(self, send: Callable[..., Any]):
        self.send = send  # MLflow's own function
        self._lock = threading.Lock()
        self._counts = RetryCounts()
        # Since when the store fails: set when a call gave up (its first try), cleared by the next
        # success; calls meanwhile are tried once.
        self.failing_since: float | None = None
        os.register_at_fork(after_in_child=self._forked)

    def _forked(self) -> None:
        self._lock = threading.Lock()  # a lock held by another thread at the fork stays held in the child
        self._counts = RetryCounts()
        self.failing_since = None

    def counts(self) -> RetryCounts:
        with self._lock:
            return self._counts

    def add(self, **deltas: float) -> None:
        with self._lock:
            now = self._counts
            self._counts = RetryCounts(**{k: getattr(now, k) + deltas.get(k, 0) for k in RetryCounts.__annotations__})

    def __call__(self, method, url, max_retries, backoff_factor, backoff_jitter, retry_codes, raise_on_status=True,
                 allow_redirects=None, respect_retry_after_header=True, **kwargs):
        if not _to_store(url):
            return self.send(method, url, max_retries, backoff_factor, backoff_jitter, retry_codes,
                             raise_on_status=raise_on_status, allow_redirects=allow_redirects,
                             respect_retry_after_header=respect_retry_after_header, **kwargs)
        once = {"backoff_factor": backoff_factor, "backoff_jitter": backoff_jitter, "retry_codes": retry_codes,
                "allow_redirects": allow_redirects, "respect_retry_after_header": respect_retry_after_header}
        return _Call(self, method.upper(), url, raise_on_status, once, kwargs).run()


def _to_store(url: str) -> bool:
    """Whether `url` is on the tracking or the registry server (scheme, host and port)."""
    import mlflow

    origin = _origin(url)
    return any(origin == _origin(uri) for uri in (mlflow.get_tracking_uri(), mlflow.get_registry_uri())
               if uri.startswith(("http://", "https://")))


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    return (parts.scheme.lower(), (parts.hostname or "").lower(),
            port or {"http": 80, "https": 443}.get(parts.scheme.lower()))


class _Unknown(Exception):
    """A look-up that could not tell whether a first try did the work: try the look-up again."""


class _Call:
    """One call: its tries, their waits, and the look-ups that make a repeat safe."""

    def __init__(self, owner: StoreRetry, method: str, url: str, raise_on_status: bool, once: dict, kwargs: dict):
        self.owner, self.method, self.url, self.raise_on_status, self.once = owner, method, url, raise_on_status, once
        self.kwargs = dict(kwargs)
        self.path = urlsplit(url).path
        self.started = time.monotonic()
        self.started_ms = int(time.time() * 1000)
        self.deadline = self.started + retry_seconds()
        found = self.kwargs.get("json")
        self.body: dict[str, Any] = found if isinstance(found, dict) else {}
        data: Any = self.kwargs.get("data")
        self.mark = data.tell() if hasattr(data, "seek") and hasattr(data, "tell") else None
        # A body that can be sent again: none, bytes or text, or a file we can rewind (not a generator).
        self.replayable = "files" not in self.kwargs and (
            data is None or isinstance(data, (bytes, bytearray, str, dict)) or self.mark is not None)
        if self.method == "POST" and self.path.endswith("/runs/create"):
            self._name_the_run()

    def _name_the_run(self) -> None:
        """The random name the server would give a run without one, given here instead: with its
        start time it tells the run this call made from any other, if the answer is lost."""
        tags = {t.get("key"): t.get("value") for t in self.body.get("tags", [])}
        if not self.body.get("run_name") and not tags.get("mlflow.runName"):
            from mlflow.utils.name_utils import _generate_random_name

            self.body = {**self.body, "run_name": _generate_random_name()}
            self.kwargs["json"] = self.body

    def run(self):
        find, second_answer = _FIND.get(self._endpoint()), _SECOND_ANSWER.get(self._endpoint())
        maybe_done = False  # a try that may have reached the server has failed
        tries = 0
        while True:
            tries += 1
            failure: BaseException | None = None
            response = None
            began = time.monotonic()
            try:
                if maybe_done and find is not None:
                    found = find(self)
                    if found is not None:
                        self.owner.add(recovered=1)
                        log.warning("tracking store: %s %s had been done by the try whose answer was lost; "
                                    "taking its result instead of sending it again", self.method, self.path)
                        return self._succeeded(_answer(self.url, found), tries)
                response = self._try()
            except _Unknown as exc:
                failure = exc
            except Exception as exc:
                if not _transient(exc):
                    raise
                failure = exc
                maybe_done = maybe_done or not _never_sent(exc)
            if response is not None:
                if response.status_code not in RETRIED_STATUS and not _lost_race(self, response):
                    if maybe_done and second_answer is not None and response.status_code >= 400:
                        found = second_answer(self, _error_code(response))
                        if found is not None:
                            self.owner.add(recovered=1)
                            log.warning("tracking store: %s %s had been done by the try whose answer was lost; "
                                        "taking its result instead of the repeat's %s", self.method, self.path,
                                        _error_code(response))
                            return self._succeeded(_answer(self.url, found), tries)
                    return self._succeeded(response, tries)
                maybe_done = maybe_done or response.status_code not in NOT_DONE_STATUS or _database_error(response)
            cause = _cause(failure) if failure is not None else f"HTTP {response.status_code}" \
                + (": another writer set the same key at that moment" if _lost_race(self, response) else "")
            remaining = self.deadline - time.monotonic()
            if not self.replayable or self.owner.failing_since is not None or remaining <= 0:
                return self._give_up(tries, cause, failure, response)
            wait = min(self._wait(tries, response), remaining)  # the last try at the bound
            log.warning("tracking store: %s %s failed after %.2f s (%s); retry %d in %.2f s, for up to %g s "
                        "from the first try", self.method, self.path, time.monotonic() - began, cause, tries, wait,
                        self.deadline - self.started)
            self.owner.add(retries=1)
            time.sleep(wait)

    def _endpoint(self) -> str:
        """The endpoint's name in `_FIND` / `_SECOND_ANSWER`: its method and path's last parts."""
        if re.search(r"/logged-models/[^/]+/params$", self.path):
            return f"{self.method} logged-models/params"
        if self.method == "DELETE" or self.path.endswith(("/delete", "/delete-tag")):
            return "delete"
        return f"{self.method} {'/'.join(self.path.rstrip('/').split('/')[-2:])}"

    def _try(self):
        data: Any = self.kwargs.get("data")
        if self.mark is not None:
            data.seek(self.mark)  # the part a failed try read is sent again
        response = self.owner.send(self.method, self.url, 0, raise_on_status=False, **self.once, **self.kwargs)
        if self.kwargs.get("stream") and response.status_code < 400 \
                and int(response.headers.get("Content-Length") or 0) <= PRELOAD_LIMIT:
            response.content  # noqa: B018 (read here, so that a body cut short is retried; iter_content reads it after)
        return response

    def _succeeded(self, response, tries: int):
        if tries > 1:
            self.owner.add(seconds=time.monotonic() - self.started)
            log.info("tracking store: %s %s succeeded on try %d", self.method, self.path, tries)
        self.owner.failing_since = None
        return response

    def _wait(self, tries: int, response) -> float:
        wait = min(LONGEST_WAIT, FIRST_WAIT * 2 ** (tries - 1)) * random.uniform(0.5, 1.5)
        after = response.headers.get("Retry-After", "") if response is not None else ""
        if after.strip().isdigit():
            wait = max(wait, float(after))
        return wait

    def _give_up(self, tries: int, cause: str, failure: BaseException | None, response):
        since = self.owner.failing_since
        if since is None:
            self.owner.failing_since = self.started
        self.owner.add(gave_up=1)
        if failure is None and not self.raise_on_status:
            return response  # the caller reads the server's own error answer
        where = _redacted(f"{urlsplit(self.url).scheme}://{urlsplit(self.url).netloc}")
        why = (f"retried for {time.monotonic() - self.started:.1f} s, {tries} tries" if tries > 1
               else "tried once: its body cannot be sent again" if not self.replayable
               else f"tried once: failing for {time.monotonic() - since:.1f} s, past the retries" if since is not None
               else "tried once")
        raise StoreUnavailable(f"the MLflow tracking store {where} did not answer {self.method} {self.path} "
                               f"({why}; last: {cause})", run_id=self._run_id()) from failure

    def _run_id(self) -> str | None:
        """The run a failed write was about, if the request names one."""
        found = self.body.get("run_id") or self.body.get("run_uuid")
        if not found:
            match = re.search(r"/artifacts/[^/]+/([0-9a-f]{32})/artifacts/", self.path)
            found = match.group(1) if match else None
        return found

    def lookup(self, method: str, endpoint: str, **request) -> dict:
        """JSON of `method` to `endpoint` (the path's last parts, put where this call's were),
        with this call's credentials; raises `_Unknown` when the store does not answer it."""
        base = self.url.split("?")[0]
        url = base[:base.rindex("/mlflow/") + len("/mlflow/")] + endpoint  # the REST API's root, then the endpoint
        headers = {k: v for k, v in (self.kwargs.get("headers") or {}).items()
                   if k.lower() not in ("content-type", "content-length")}
        passed = {k: self.kwargs[k] for k in ("verify", "timeout", "cert", "auth") if k in self.kwargs}
        try:
            response = self.owner.send(method, url, 0, raise_on_status=False, **self.once, headers=headers,
                                       **passed, **request)
        except Exception as exc:
            if _transient(exc):
                raise _Unknown(f"looking up {endpoint}: {_cause(exc)}") from exc
            raise
        if response.status_code != 200:
            raise _Unknown(f"looking up {endpoint}: HTTP {response.status_code}")
        return response.json()


# --- What a first try whose answer was lost may have done, and how to find it -----------------

def _tags(items) -> dict[str, str]:
    return {t.get("key"): t.get("value", "") for t in items or []}


def _within(wanted: dict[str, str], found: dict[str, str]) -> bool:
    return all(found.get(k) == v for k, v in wanted.items())


def _quoted(text: str) -> str | None:
    """`text` as a string of MLflow's search syntax (None when it holds both kinds of quote)."""
    return f"'{text}'" if "'" not in text else f'"{text}"' if '"' not in text else None


def _find_run(call: _Call) -> dict | None:
    body = call.body
    if body.get("start_time") is None or body.get("experiment_id") is None:
        return None
    found = call.lookup("POST", "runs/search", json={"experiment_ids": [str(body["experiment_id"])], "max_results": 100,
                                                     "filter": f"attributes.start_time = {int(body['start_time'])}"})
    for run in found.get("runs", []):
        info = run.get("info", {})
        if (info.get("run_name") == body.get("run_name") or not body.get("run_name")) \
                and (not body.get("user_id") or info.get("user_id") == body["user_id"]) \
                and _within(_tags(body.get("tags")), _tags(run.get("data", {}).get("tags"))):
            return {"run": run}
    return None


def _find_model_version(call: _Call) -> dict | None:
    body = call.body
    name = _quoted(body.get("name", ""))
    if name is None:
        return None
    tags = _tags(body.get("tags"))
    where = f"name = {name}"
    if body.get("run_id"):
        where += f" AND run_id = '{body['run_id']}'"
    if tags.get("mlflow.prompt.is_prompt") == "true":  # the store leaves prompts out unless asked for them
        where += " AND tags.`mlflow.prompt.is_prompt` = 'true'"
    found = call.lookup("GET", "model-versions/search",
                        params={"filter": where, "max_results": 200, "order_by": ["version_number DESC"]})
    for version in found.get("model_versions", []):
        if _within(tags, _tags(version.get("tags"))) \
                and (not body.get("description") or version.get("description") == body["description"]) \
                and int(version.get("creation_timestamp") or 0) >= call.started_ms - CLOCK_SKEW_MS:
            return {"model_version": version}
    return None


def _find_logged_model(call: _Call) -> dict | None:
    body = call.body
    if not body.get("source_run_id") or not body.get("name") or not body.get("experiment_id"):
        return None  # nothing to tell it from another
    found = call.lookup("POST", "logged-models/search", json={
        "experiment_ids": [str(body["experiment_id"])], "filter": f"source_run_id = '{body['source_run_id']}'",
        "max_results": 100, "order_by": [{"field_name": "creation_timestamp", "ascending": False}]})
    for model in found.get("models", []):
        info = model.get("info", {})
        if info.get("name") == body["name"] and info.get("status") == "LOGGED_MODEL_PENDING" \
                and _within(_tags(body.get("tags")), _tags(info.get("tags"))) \
                and int(info.get("creation_timestamp_ms") or 0) >= call.started_ms - CLOCK_SKEW_MS:
            return {"model": model}
    return None


def _find_dataset(call: _Call) -> dict | None:
    """An evaluation dataset (`mlflow.genai.datasets`): the store gives each a new id, name or not."""
    body = call.body
    if not body.get("name"):
        return None
    request: dict[str, Any] = {"filter_string": f"name = '{body['name'].replace(chr(39), chr(39) * 2)}'",
                               "max_results": 100}
    if body.get("experiment_ids"):
        request["experiment_ids"] = body["experiment_ids"]
    found = call.lookup("POST", "datasets/search", json=request)
    for dataset in found.get("datasets", []):
        if dataset.get("name") == body["name"] \
                and _within(_json_tags(body.get("tags")), _json_tags(dataset.get("tags"))) \
                and int(dataset.get("created_time") or 0) >= call.started_ms - CLOCK_SKEW_MS:
            return {"dataset": dataset}
    return None


def _json_tags(text) -> dict[str, str]:
    try:
        found = json.loads(text) if text else {}
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


def _find_outputs(call: _Call) -> dict | None:
    run_id = call.body.get("run_id")
    if not run_id:
        return None
    found = call.lookup("GET", "runs/get", params={"run_id": run_id})
    have = {(o.get("model_id"), int(o.get("step") or 0))
            for o in found.get("run", {}).get("outputs", {}).get("model_outputs", [])}
    wanted = {(m.get("model_id"), int(m.get("step") or 0)) for m in call.body.get("models", [])}
    return {} if wanted <= have else None


def _find_model_params(call: _Call) -> dict | None:
    model_id = call.path.rstrip("/").split("/")[-2]
    found = call.lookup("GET", f"logged-models/{model_id}")
    have = _tags(found.get("model", {}).get("data", {}).get("params"))
    return {} if _within(_tags(call.body.get("params")), have) else None


def _experiment_created(call: _Call, code: str | None) -> dict | None:
    if code != "RESOURCE_ALREADY_EXISTS":
        return None
    found = call.lookup("GET", "experiments/get-by-name", params={"experiment_name": call.body.get("name", "")})
    return {"experiment_id": found["experiment"]["experiment_id"]}


def _model_created(call: _Call, code: str | None) -> dict | None:
    if code != "RESOURCE_ALREADY_EXISTS":
        return None
    return call.lookup("GET", "registered-models/get", params={"name": call.body.get("name", "")})


def _deleted(call: _Call, code: str | None) -> dict | None:
    return {} if code == "RESOURCE_DOES_NOT_EXIST" else None


# Before sending again a request that may have been done: the result it had, or None.
_FIND: dict[str, Callable[[_Call], dict | None]] = {
    "POST runs/create": _find_run,
    "POST model-versions/create": _find_model_version,
    "POST mlflow/logged-models": _find_logged_model,
    "POST datasets/create": _find_dataset,
    "POST runs/outputs": _find_outputs,
    "POST logged-models/params": _find_model_params,
}
# A repeat's error answer that means the first try did it: the result it had, or None.
_SECOND_ANSWER: dict[str, Callable[[_Call, str | None], dict | None]] = {
    "POST experiments/create": _experiment_created,
    "POST registered-models/create": _model_created,
    "delete": _deleted,
}


def _error_code(response) -> str | None:
    try:
        found = response.json()
    except ValueError:
        return None
    return found.get("error_code") if isinstance(found, dict) else None


# Writes the store does as "look, then insert or update" (SQLAlchemy's merge): two processes
# setting the same new key at the same moment both insert, and the slower one's is refused by the
# key's unique constraint (`BAD_REQUEST: (psycopg.errors.UniqueViolation) duplicate key value
# violates unique constraint "registered_model_tag_pk"`). Sent again, it finds the key and updates
# it, which is what was asked: the same value twice is the same as once.
UPSERT_PATHS = ("/set-tag", "/set-experiment-tag", "/registered-models/alias")
UNIQUE_VIOLATION = re.compile(r"duplicate key|unique constraint|duplicate entry", re.IGNORECASE)


def _lost_race(call: _Call, response) -> bool:
    """Whether `response` refuses an upsert (tag, alias) because another writer inserted the
    same key at the same moment: worth sending again."""
    if response.status_code != 400 or call.method != "POST" or not call.path.endswith(UPSERT_PATHS):
        return False
    try:
        found = response.json()
    except ValueError:
        return False
    return isinstance(found, dict) and bool(UNIQUE_VIOLATION.search(str(found.get("message", ""))))


def _database_error(response) -> bool:
    """Whether a 503 is MLflow's own answer to a database error (its store maps SQLAlchemy's
    OperationalError to TEMPORARILY_UNAVAILABLE): the database may have gone away after taking
    the write's commit and before answering it, so the write may be done. A 503 from a proxy in
    front of the server (no such body) means nothing was started."""
    return response.status_code == 503 and _error_code(response) == "TEMPORARILY_UNAVAILABLE"


def _answer(url: str, body: dict):
    """A 200 answer carrying `body`, as the server would have sent it."""
    import requests

    response = requests.Response()
    response.status_code, response.reason, response.url, response.encoding = 200, "OK", url, "utf-8"
    response.headers["Content-Type"] = "application/json"
    response._content = json.dumps(body).encode()
    return response


# --- Which failures are worth a retry ------------------------------------------------------------

def _chain(exc: BaseException):
    """`exc` and what it wraps: causes, contexts, urllib3's `reason`, exceptions among the args."""
    seen: set[int] = set()
    todo: list[Any] = [exc]
    while todo:
        item = todo.pop()
        if item is None or id(item) in seen:
            continue
        seen.add(id(item))
        yield item
        todo += [item.__cause__, item.__context__, getattr(item, "reason", None),
                 *(a for a in getattr(item, "args", ()) if isinstance(a, BaseException))]


def _transient(exc: BaseException) -> bool:
    import http.client

    import requests
    import urllib3

    if isinstance(exc, (requests.exceptions.SSLError, requests.exceptions.InvalidURL)):
        return False  # a certificate or an address that is wrong stays wrong
    return isinstance(exc, (requests.exceptions.ConnectionError, requests.exceptions.Timeout,
                            requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError,
                            requests.exceptions.RetryError, urllib3.exceptions.HTTPError, http.client.HTTPException,
                            ConnectionError, TimeoutError))


def _never_sent(exc: BaseException) -> bool:
    """Whether the request cannot have reached the server (no connection was made)."""
    import requests
    import urllib3

    return any(isinstance(e, (requests.exceptions.ConnectTimeout, urllib3.exceptions.NewConnectionError,
                              urllib3.exceptions.ConnectTimeoutError, ConnectionRefusedError)) for e in _chain(exc))


def _cause(exc: BaseException) -> str:
    """The error and the innermost one it wraps, short and without credentials: `ConnectionError
    (ConnectionResetError: [Errno 104] Connection reset by peer)`, `ChunkedEncodingError
    (IncompleteRead(0 bytes read, 2 more expected))`."""
    inner: BaseException = exc
    while True:  # down one line of wrapping: urllib3's `reason`, an exception among the args, the cause
        nested = getattr(inner, "reason", None)
        if not isinstance(nested, BaseException):
            nested = next((a for a in getattr(inner, "args", ()) if isinstance(a, BaseException)), None)
        nested = nested or inner.__cause__
        if nested is None or nested is inner:
            break
        inner = nested
    text = str(inner) or type(inner).__name__
    if type(inner).__name__ not in text:
        text = f"{type(inner).__name__}: {text}"
    if inner is not exc:
        text = f"{type(exc).__name__} ({text})"
    return _redacted(text)[:300]


def _redacted(text: str) -> str:
    return re.sub(r"(?<=://)[^/@\s]+@", "***@", text)
