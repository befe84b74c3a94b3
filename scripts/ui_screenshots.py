"""Look at the MLflow UI as a user sees it after a tiny optimization, in headless Chromium: PNG
screenshots of its pages, and (`--check`) whether each page shows what it is for (issue 42).

    python scripts/ui_screenshots.py [--out DIR] [--model MODEL] [--port 5055] [--check]

On a temporary store (sqlite, in a temp folder) it runs two tiny optimizations of one name
(`ui-check`; versions 1 and 2; with `--model` the embedded model by default, or any LiteLLM
name), evaluates version 2 and promotes it to `champion`, starts `mlflow server` on a loopback
port, waits for `/health` (50-60 s on two cores), looks at the pages, then stops the server it
started. Needs Chromium: `apt-get install chromium`. Prints each PNG's path, and with `--check`
what each page lacks (exit status 1 when a page lacks something).

The pages (`page_urls`) and what each must show (`CHECKS`): the experiment's traces list (every
trace with an input and an output), its sessions (the optimization run), datasets, evaluation
runs and prompts (not empty), the run page (no empty, quoted or duplicated param), the model
version and prompt version pages (why the version holds its alias). tests/test_ui_pages.py runs
the same checks on a store made with a scripted model.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

RAW_INPUT = "Classify the sentiment of a movie review as positive or negative"
NAME = "ui-check"
ALIAS = "champion"
BROWSERS = ("chromium", "chromium-browser", "google-chrome")
SERVER_STARTUP_LIMIT = 300  # seconds: /health answers after 50-60 s on a busy 2-core machine
SERVICE_DIR = "PROMPTOMATIX_SERVICE_DIR"  # where .ci/run collects the process groups to stop
PAGE_BUDGET_MS = 15_000  # Chromium's virtual time for the single-page app to fetch and render


def find_chromium() -> str | None:
    return next((found for name in BROWSERS if (found := shutil.which(name))), None)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class UiServer:
    """`mlflow server` on a loopback port for the store `store_uri`, in a process group of its own
    (its workers included), stopped when the `with` ends, also on failure. Where
    PROMPTOMATIX_SERVICE_DIR names a folder (`.ci/run` sets it), the group id is written there so
    that a run killed before its clean-up still has it stopped. `wait()` returns once `/health`
    answers (starting it first and waiting later lets other work overlap the start-up)."""

    def __init__(self, store_uri: str, folder: Path, port: int | None = None):
        self.store_uri, self.folder = store_uri, folder
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = folder / "ui-server.log"
        self.process: subprocess.Popen | None = None
        self.record: Path | None = None

    def __enter__(self) -> UiServer:
        with self.log_path.open("w") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", self.store_uri,
                 "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"],
                cwd=self.folder, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        if os.environ.get(SERVICE_DIR):
            self.record = Path(os.environ[SERVICE_DIR]) / f"mlflow-ui-{self.process.pid}.pid"
            self.record.write_text(f"{self.process.pid}\n")  # its process group id (a session of its own)
        return self

    def wait(self, limit: float = SERVER_STARTUP_LIMIT) -> str:
        assert self.process is not None
        deadline = time.monotonic() + limit
        while not _healthy(self.url):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"mlflow server did not come up in {limit:.0f} s: "
                                   f"{self.log_path.read_text()[-2000:]}")
            time.sleep(1)
        return self.url

    def __exit__(self, *exc) -> None:
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=15)
        if self.record is not None:
            self.record.unlink(missing_ok=True)


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=5) as response:
            return response.status == 200
    except OSError:
        return False


def _chromium(browser: str, profile: Path, *args: str) -> list[str]:
    return [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
            "--window-size=1600,1100", f"--user-data-dir={profile}", *args]


def dump_dom(browser: str, url: str, profile: Path, budget_ms: int = PAGE_BUDGET_MS) -> str:
    """The page's DOM as Chromium has it after `budget_ms` of virtual time (the UI is a
    single-page app: the HTML the server sends is empty)."""
    done = subprocess.run(_chromium(browser, profile, f"--virtual-time-budget={budget_ms}", "--dump-dom", url),
                          capture_output=True, text=True, timeout=180)
    if done.returncode != 0:
        raise RuntimeError(f"chromium failed on {url}: {done.stderr[-1000:]}")
    return done.stdout


def screenshot(browser: str, url: str, path: Path, profile: Path, budget_ms: int = PAGE_BUDGET_MS) -> None:
    subprocess.run(_chromium(browser, profile, f"--virtual-time-budget={budget_ms}", f"--screenshot={path}", url),
                   check=True, capture_output=True, timeout=180)


# --- what a page shows ------------------------------------------------------------------------------
@dataclass
class Table:
    """A table of the page (the UI draws them as `role="table"` or `grid` / `row` / `cell` elements)."""

    headers: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)

    def column(self, name: str) -> list[str]:
        """The cells under the header `name` (rows without that cell give "")."""
        index = self.headers.index(name)
        return [row[index] if index < len(row) else "" for row in self.rows]


@dataclass
class Page:
    text: str  # the visible text, one line per element
    tables: list[Table]

    def table(self, *headers: str) -> Table | None:
        """The first table that has all these headers."""
        return next((t for t in self.tables if all(h in t.headers for h in headers)), None)


_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
_HIDDEN = {"script", "style", "svg", "noscript", "template"}


class _Reader(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack: list[tuple[str, str | None]] = []  # (tag, role)
        self.text: list[str] = []
        self.tables: list[Table] = []
        self.row: list[str] | None = None
        self.header_row = False
        self.cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag in _VOID:
            return
        role = dict(attrs).get("role")
        self.stack.append((tag, role))
        if role in ("table", "grid", "treegrid"):
            self.tables.append(Table())
        elif role == "row" and self.tables:
            self.row, self.header_row = [], False
        elif role in ("cell", "gridcell", "columnheader", "rowheader") and self.row is not None:
            self.cell = []
            self.header_row = self.header_row or role == "columnheader"

    def handle_endtag(self, tag):
        while self.stack:
            open_tag, role = self.stack.pop()
            if role in ("cell", "gridcell", "columnheader", "rowheader") and self.cell is not None and self.row is not None:
                self.row.append(" ".join(" ".join(self.cell).split()))
                self.cell = None
            elif role == "row" and self.row is not None:
                table = self.tables[-1]
                if self.header_row and not table.headers:
                    table.headers = self.row
                elif self.row:
                    table.rows.append(self.row)
                self.row = None
            if open_tag == tag:
                break

    def handle_data(self, data):
        if any(tag in _HIDDEN for tag, _ in self.stack) or not data.strip():
            return
        self.text.append(data.strip())
        if self.cell is not None:
            self.cell.append(data.strip())


def parse(html: str) -> Page:
    reader = _Reader()
    reader.feed(html)
    reader.close()
    return Page("\n".join(reader.text), reader.tables)


@dataclass(frozen=True)
class Facts:
    """What the store holds, to look for on the pages."""

    experiment_id: str
    run_id: str  # the optimization run the pages are about
    model: str
    version: str
    prompt: str
    prompt_version: str
    alias: str = ALIAS
    why: str = ""  # the reason the version holds `alias`, as the registry records it (`promotion.<alias>`)
    version_evaluation: str = ""  # the name of the `promptomatix evaluate` run
    params: dict[str, str] = field(default_factory=dict)  # the optimization run's params, from MLflow's client


def page_urls(base: str, facts: Facts) -> dict[str, str]:
    """The pages a user of this project opens (MLflow 3.17's routes; the Sessions page is the
    traces list grouped by session: its own route only says so)."""
    experiment = f"{base}/#/experiments/{facts.experiment_id}"
    return {"traces": f"{experiment}/traces", "sessions": f"{experiment}/traces?groupBy=session",
            "datasets": f"{experiment}/datasets", "evaluation-runs": f"{experiment}/evaluation-runs",
            "prompts": f"{experiment}/prompts", "run": f"{experiment}/runs/{facts.run_id}",
            "model-version": f"{base}/#/models/{facts.model}/versions/{facts.version}",
            "prompt-version": f"{base}/#/prompts/{facts.prompt}?promptVersion={facts.prompt_version}"}


# Text a page shows once it has rendered (else Chromium is given longer).
READY = {"traces": "Input", "sessions": "Session", "datasets": "Datasets", "evaluation-runs": "Run Name",
         "prompts": "Latest version", "run": "Parameters (", "model-version": "Registered At",
         "prompt-version": "Commit message"}
EMPTY = ("", "-", "null", "None", "{}", "[]")


def check_traces(page: Page, facts: Facts) -> list[str]:
    table = page.table("Input", "Output")
    if table is None or not table.rows:
        return ["no traces listed"]
    return [f"trace {i + 1} shows no {column.lower()}" for column in ("Input", "Output")
            for i, cell in enumerate(table.column(column)) if cell.strip() in EMPTY]


def check_sessions(page: Page, facts: Facts) -> list[str]:
    table = page.table("Session")
    sessions = table.column("Session") if table else []
    return [] if facts.run_id in sessions else [f"no session of run {facts.run_id} (sessions: {sessions})"]


def check_datasets(page: Page, facts: Facts) -> list[str]:
    table = page.table("Name")
    return [] if table and table.rows else ["no dataset listed"]


def check_run_data_sets(page: Page, facts: Facts) -> list[str]:
    """The data the optimization ran on (train, valid) among the experiment's datasets."""
    table = page.table("Name")
    names = table.column("Name") if table else []
    return [f"no {part} data set of the optimization (datasets: {names})" for part in ("train", "valid")
            if not any(part in name for name in names)]


def check_version_evaluations(page: Page, facts: Facts) -> list[str]:
    table = page.table("Run Name")
    names = table.column("Run Name") if table else []  # each after its colour's swatch (`#8396a5 evaluate ...`)
    found = facts.version_evaluation and any(name.endswith(facts.version_evaluation) for name in names)
    return [] if found else [f"no evaluation run {facts.version_evaluation!r} (runs: {names})"]


def check_prompts(page: Page, facts: Facts) -> list[str]:
    table = page.table("Name")
    names = table.column("Name") if table else []
    return [] if facts.prompt in names else [f"prompt {facts.prompt} not listed (prompts: {names})"]


def check_run(page: Page, facts: Facts) -> list[str]:
    """Every param shown, none empty or quoted; the duplicates are the test's to judge
    (`params_shown`)."""
    shown = params_shown(page)
    problems = [f"param {k} shows {v!r}" for k, v in shown.items()
                if v.strip() in ("", "''", '""', "None") or (len(v) > 1 and v[0] == v[-1] and v[0] in "'\"")]
    missing = sorted(set(facts.params) - set(shown))
    return problems + ([f"params not shown: {missing}"] if missing else [])


def params_shown(page: Page) -> dict[str, str]:
    table = page.table("Parameter", "Value")
    return {row[0]: row[1] if len(row) > 1 else "" for row in table.rows} if table else {}


def check_model_version(page: Page, facts: Facts) -> list[str]:
    return _says_why(page, facts) + ([] if "promptomatix promote" in page.text else
                                     ["the page does not say to promote with `promptomatix promote`"])


def check_prompt_version(page: Page, facts: Facts) -> list[str]:
    return _says_why(page, facts)


def _says_why(page: Page, facts: Facts) -> list[str]:
    text = " ".join(page.text.split())
    if facts.why and " ".join(facts.why.split()) in text:
        return []
    return [f"the page does not say why the version holds @{facts.alias} ({facts.why!r})"]


CHECKS: dict[str, list[Callable[[Page, Facts], list[str]]]] = {
    "traces": [check_traces], "sessions": [check_sessions], "datasets": [check_datasets, check_run_data_sets],
    "evaluation-runs": [check_version_evaluations], "prompts": [check_prompts], "run": [check_run],
    "model-version": [check_model_version], "prompt-version": [check_prompt_version]}


class Looker:
    """Opens the pages of one server, each once (kept), with more time for one that has not
    rendered (`READY`)."""

    def __init__(self, browser: str, base: str, facts: Facts, folder: Path):
        self.browser, self.facts, self.folder = browser, facts, folder
        self.urls = page_urls(base, facts)
        self.pages: dict[str, Page] = {}

    def page(self, name: str) -> Page:
        if name not in self.pages:
            for budget in (PAGE_BUDGET_MS, 3 * PAGE_BUDGET_MS):
                html = dump_dom(self.browser, self.urls[name], self.folder / "chromium-profile", budget)
                (self.folder / f"{name}.html").write_text(html)  # to read when a check fails
                page = parse(html)
                if READY[name] in page.text:
                    break
            self.pages[name] = page
        return self.pages[name]

    def problems(self, name: str, check: Callable[[Page, Facts], list[str]] | None = None) -> list[str]:
        checks = [check] if check else CHECKS[name]
        return [problem for found in checks for problem in found(self.page(name), self.facts)]


# --- the store ------------------------------------------------------------------------------------
def facts_of(result) -> Facts:
    """The `Facts` of an optimization `result` (a registered version) after an evaluation
    (`test_run_id` on the version) and a promotion to `ALIAS`."""
    from mlflow import MlflowClient

    client = MlflowClient()
    version = client.get_model_version(result.model_name, result.model_version)
    prompt_version = result.prompt_uri.rsplit("/", 1)[1]
    version_evaluation_id = version.tags.get("test_run_id")
    evaluation = client.get_run(version_evaluation_id).info.run_name if version_evaluation_id else ""
    return Facts(experiment_id=result.experiment_id, run_id=result.run_id, model=result.model_name,
                 version=str(result.model_version), prompt=result.prompt_name, prompt_version=prompt_version,
                 why=version.tags.get(f"promotion.{ALIAS}", ""), version_evaluation=evaluation,
                 params=client.get_run(result.run_id).data.params)


def build_store(store: Path, model: str | None) -> Facts:
    """Two tiny optimizations of `NAME`, an evaluation of the second version on its own
    validation rows, and its promotion to `ALIAS`."""
    import mlflow
    from click.testing import CliRunner

    import promptomatix
    from promptomatix.cli import cli

    uri = f"sqlite:///{store / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    options = dict(raw_input=RAW_INPUT, name=NAME, synthetic_data_size=6, iterations=1, candidates=2,
                   show_progress=False, **({"model": model} if model else {}))
    promptomatix.optimize(**options)
    result = promptomatix.optimize(**options)
    rows = mlflow.artifacts.load_text(f"runs:/{result.run_id}/data/valid.jsonl")
    (store / "test.jsonl").write_text(rows)
    return evaluate_and_promote(result, str(store / "test.jsonl"), lambda *args: CliRunner().invoke(
        cli, list(args), catch_exceptions=False))


def evaluate_and_promote(result, data: str, invoke) -> Facts:
    """`promptomatix evaluate` of `result`'s version on `data` and `promptomatix promote` of it
    to `ALIAS` (through `invoke(*args)`, the CLI); the `Facts` after both."""
    done = invoke("evaluate", f"{result.model_name}@{result.model_version}", "--data", data, "--quiet")
    if done.exit_code:
        raise RuntimeError(f"evaluate failed: {done.output}")
    done = invoke("promote", result.model_name, "--version", str(result.model_version), "--alias", ALIAS,
                  "--reason", "the UI check's version")
    if done.exit_code:
        raise RuntimeError(f"promote failed: {done.output}")
    return facts_of(result)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="ui-screenshots", help="folder for the PNG files")
    parser.add_argument("--model", help="task model (default: the embedded model)")
    parser.add_argument("--port", type=int, default=5055)
    parser.add_argument("--check", action="store_true", help="also check what each page shows")
    args = parser.parse_args(argv)
    browser = find_chromium()
    if browser is None:
        sys.exit("no Chromium found: apt-get install chromium")
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    failed = False
    with tempfile.TemporaryDirectory(prefix="ui-screenshots-") as tmp:
        store = Path(tmp)
        os.chdir(store)  # the artifacts (./mlruns) next to the store
        facts = build_store(store, args.model)
        with UiServer(f"sqlite:///{store / 'mlflow.db'}", store, args.port) as server:
            looker = Looker(browser, server.wait(), facts, store)
            for label, url in looker.urls.items():
                path = out / f"{label}.png"
                screenshot(browser, url, path, store / "chromium-profile")
                print(path)
                if args.check:
                    problems = looker.problems(label)
                    failed |= bool(problems)
                    print(json.dumps({label: problems or "ok"}))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
