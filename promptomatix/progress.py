"""Progress on the terminal for long steps (stderr, so stdout stays clean for results)."""

from __future__ import annotations

import sys

from tqdm.auto import tqdm


def progress_bar(*, total: int, desc: str, unit: str = "it", enabled: bool = True) -> tqdm:
    return tqdm(total=total, desc=desc, unit=unit, disable=not enabled, file=sys.stderr,
                dynamic_ncols=True, leave=True)
