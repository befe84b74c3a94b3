"""Progress on the terminal for long steps (stderr, so stdout stays clean for results)."""

from __future__ import annotations

import contextlib
import logging
import os
import sys

from tqdm.auto import tqdm


def progress_bar(*, total: int, desc: str, unit: str = "it", enabled: bool = True) -> tqdm:
    """A bar on a terminal; in a log (not a tty) an update every 10 seconds at most."""
    return tqdm(total=total, desc=desc, unit=unit, disable=not enabled, file=sys.stderr,
                dynamic_ncols=True, leave=True, mininterval=0.2 if sys.stderr.isatty() else 10.0)


# MLflow's own switch for the download bars it draws when it reads artifacts (the registered
# model's files, a run's config.yaml).
ARTIFACT_BARS_VARIABLE = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"


@contextlib.contextmanager
def quiet(enabled: bool = True):
    """`--quiet` for the block: only results and errors. Our progress and warning lines (logging)
    and MLflow's artifact download bars are switched off, and put back after; the callers pass
    `show_progress=False` for the rest (our bars, and `mlflow.genai.evaluate`'s, see
    `lifecycle.version_evaluation`); llama.cpp's own lines go to debug logging always (`models.embedded`)."""
    if not enabled:
        yield
        return
    loggers = [logging.getLogger(name) for name in ("promptomatix", "mlflow")]
    levels = [logger.level for logger in loggers]
    bars = os.environ.get(ARTIFACT_BARS_VARIABLE)
    os.environ[ARTIFACT_BARS_VARIABLE] = "false"
    for logger in loggers:  # warnings too: what is left is the result and errors
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)
        if bars is None:
            os.environ.pop(ARTIFACT_BARS_VARIABLE, None)
        else:
            os.environ[ARTIFACT_BARS_VARIABLE] = bars
