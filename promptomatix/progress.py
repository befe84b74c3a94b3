"""Progress on the terminal for long steps (stderr, so stdout stays clean for results)."""

from __future__ import annotations

import sys

from tqdm.auto import tqdm


def progress_bar(*, total: int, desc: str, unit: str = "it", enabled: bool = True) -> tqdm:
    """A bar on a terminal; in a log (not a tty) an update every 10 seconds at most."""
    return tqdm(total=total, desc=desc, unit=unit, disable=not enabled, file=sys.stderr,
                dynamic_ncols=True, leave=True, mininterval=0.2 if sys.stderr.isatty() else 10.0)
