"""Whose rows the search scores prompts on, and what that changes: `RowsPolicy`.

The user's rows are a sample of what the prompt will answer, with right labels. Synthetic rows
(written and labelled by the model when the user brings no data) are neither: a few of their
labels are wrong, and their inputs are the model's, not the user's. Three parts of the search
treat them differently, and this is the one place that says how:

- **calibration source** (`calibrates_from_content_free`): a label prompt's calibration is read
  from its answers to the rows on the user's rows, and from its answers to content-free inputs
  (`evaluation.CONTENT_FREE`) on synthetic ones;
- **soft score** (`soft_score`): the probability a prompt gives the right labels, as the log
  score on the user's rows, as the plain mean on synthetic ones;
- **demo preference** (`prefers_demos`): on synthetic rows a demo set that beat the start is
  kept over a prompt without demos unless that one is clearly better
  (`backends.search.demos_unless_clearly_beaten`).

The measurements behind each: docs/how-it-works.md.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

# The least probability a right label counts with in the log score: one answer sure of a wrong
# label costs the geometric mean a bounded share, not all of it.
SURE_WRONG = 1e-4


@dataclass(frozen=True)
class RowsPolicy:
    """`synthetic`: the rows were written and labelled by a model, not given by the user."""

    synthetic: bool = False

    @property
    def calibrates_from_content_free(self) -> bool:
        """Whether label prompts are calibrated from content-free inputs rather than from the
        rows they are scored on: synthetic rows are no sample of what the prompt will answer."""
        return self.synthetic

    @property
    def prefers_demos(self) -> bool:
        """Whether a demo set that beat the start stands over a prompt without demos that is not
        clearly better: on synthetic rows, where a prompt without demos is tuned to rows the model
        labelled (some wrongly) by its instruction or calibration alone, while a small base model
        answers real inputs by the pattern of real demos."""
        return self.synthetic

    def soft_score(self, probabilities: Sequence[float]) -> float:
        """The probability a prompt gives the right labels, `probabilities` (one per row) in one
        number. On the user's rows, their geometric mean (exp of the mean log score, floored at
        `SURE_WRONG`): the log score is a proper scoring rule, the plain mean is not (it pays for
        sureness). On synthetic rows, some of them mislabelled, the plain mean: a row whose label
        is wrong moves it by at most 1/n, where the log score lets that one row sink a prompt sure
        of the right answer (a bounded loss is robust to label noise; Ghosh et al. 2017)."""
        if self.synthetic:
            return sum(probabilities) / len(probabilities)
        return math.exp(sum(math.log(max(SURE_WRONG, p)) for p in probabilities) / len(probabilities))
