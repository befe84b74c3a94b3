"""Look at the MLflow UI as a user sees it after a tiny optimization: run, model version and
prompt pages as PNG screenshots from headless Chromium. Not part of the test suite.

    python scripts/ui_screenshots.py [--out DIR] [--model MODEL] [--port 5055]

On a temporary store (sqlite, in a temp folder) it runs two tiny optimizations of one name
(`ui-check`; versions 1 and 2; with `--model` the embedded model by default, or any LiteLLM
name), starts `mlflow ui` on a loopback port, waits for `/health` (50-60 s on two cores), takes
the screenshots, then stops the server it started. Needs Chromium: `apt-get install chromium`.
Prints each PNG's path. The pages: the experiment's runs, each run's overview and traces,
each model version, the prompt's versions.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

RAW_INPUT = "Classify the sentiment of a movie review as positive or negative"
NAME = "ui-check"


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    sys.exit("no Chromium found: apt-get install chromium")


def optimize_twice(store: Path, model: str | None) -> list:
    import mlflow

    import promptomatix

    uri = f"sqlite:///{store / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    options = dict(raw_input=RAW_INPUT, name=NAME, synthetic_data_size=6, iterations=1, candidates=2,
                   show_progress=False, **({"model": model} if model else {}))
    return [promptomatix.optimize(**options), promptomatix.optimize(**options)]


def wait_for(url: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(2)
    raise TimeoutError(f"{url} did not answer within {seconds:.0f} s")


def screenshot(browser: str, url: str, path: Path) -> None:
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    "--window-size=1600,1100", "--virtual-time-budget=15000", f"--screenshot={path}", url],
                   check=True, capture_output=True, timeout=120)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="ui-screenshots", help="folder for the PNG files")
    parser.add_argument("--model", help="task model (default: the embedded model)")
    parser.add_argument("--port", type=int, default=5055)
    args = parser.parse_args(argv)
    browser = chromium()
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="ui-screenshots-") as tmp:
        store = Path(tmp)
        os.chdir(store)  # the artifacts (./mlruns) next to the store
        results = optimize_twice(store, args.model)
        server = subprocess.Popen([sys.executable, "-m", "mlflow", "ui", "--backend-store-uri",
                                   f"sqlite:///{store / 'mlflow.db'}", "--host", "127.0.0.1", "--port", str(args.port)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                  start_new_session=True)  # its workers (uvicorn, job runners) in its group
        try:
            base = f"http://127.0.0.1:{args.port}"
            wait_for(f"{base}/health", 180)
            experiment = results[0].experiment_id
            pages = {"runs": f"{base}/#/experiments/{experiment}/runs"}
            for result in results:
                pages[f"run-{result.model_version}"] = f"{base}/#/experiments/{experiment}/runs/{result.run_id}"
                pages[f"run-{result.model_version}-traces"] = (f"{base}/#/experiments/{experiment}/runs/"
                                                               f"{result.run_id}/traces")
                pages[f"model-version-{result.model_version}"] = (f"{base}/#/models/{result.model_name}/versions/"
                                                                  f"{result.model_version}")
            pages["prompt"] = f"{base}/#/prompts/{results[0].prompt_name}"
            for label, url in pages.items():
                path = out / f"{label}.png"
                screenshot(browser, url, path)
                print(path)
        finally:  # the server and every worker it started: its whole process group
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(server.pid, signal.SIGKILL)
    return 0


if __name__ == "__main__":
    sys.exit(main())
