"""Reading a classification answer as one of the task's labels, and calibrating label scores.

A model answers a label prompt in one of three ways (see `LM.choose`): by scoring every label
(the embedded model: each label's log-probability), by structured output constrained to the
labels (hosted models that support a JSON schema), or in free text. Free text is mapped to the
label it names (`read_label`); text that names no label, or names two, maps to None: the answer
is counted as unmapped and scored wrong, never guessed.

Scores are calibrated by batch calibration: a model's label scores carry a bias (a small model
prefers some labels whatever the input, and demos shift it), estimated as each label's mean
log-probability over a batch of real inputs and subtracted before taking the best label.
"""

from __future__ import annotations

import difflib
import json
import math
import re
from collections.abc import Sequence

_EDGE = re.compile(r"^[\W_]+|[\W_]+$")


def _norm(text: str) -> str:
    return " ".join(_EDGE.sub("", text).lower().split())


def read_label(text: str, labels: Sequence[str]) -> str | None:
    """The label a free-text answer gives, or None. In order: the whole first line is a label
    (case, quotes and punctuation aside; a JSON string or a one-key JSON object counts as its
    value); exactly one label appears in the first line as a whole word ("Positive, clearly";
    two labels named is no answer); the first word is a near spelling of exactly one label
    ("postive")."""
    line = next((part for part in str(text).strip().splitlines() if part.strip()), "").strip()
    value = _json_value(line)
    if value is not None and value != line:
        return read_label(value, labels)
    by_norm = {_norm(label): label for label in labels}
    head = _norm(line)
    if head in by_norm:
        return by_norm[head]
    words = head.split()
    found = {key for key in by_norm if key and re.search(rf"(?<!\w){re.escape(key)}(?!\w)", head)}
    # "very positive" names "positive" too: the longer label is the one named
    named = {by_norm[key] for key in found if not any(key != other and key in other for other in found)}
    if len(named) == 1:
        return named.pop()
    if named:
        return None  # two labels named: which one is meant is a guess
    if words:
        close = difflib.get_close_matches(words[0], [k for k in by_norm if k], n=2, cutoff=0.8)
        if len(close) == 1:
            return by_norm[close[0]]
    return None


def _json_value(line: str) -> str | None:
    if line[:1] not in ('"', "{"):
        return None
    try:
        value = json.loads(line)
    except json.JSONDecodeError:
        return None
    if isinstance(value, dict) and len(value) == 1:
        value = next(iter(value.values()))
    return value if isinstance(value, str) else None


def log_softmax(scores: Sequence[float]) -> list[float]:
    top = max(scores)
    total = top + math.log(sum(math.exp(s - top) for s in scores))
    return [s - total for s in scores]


def batch_calibration(rows: Sequence[Sequence[float]]) -> tuple[float, ...]:
    """Each label's bias over `rows` (label scores of a batch of inputs): its mean normalized
    log-probability. Subtracting it makes the labels equally likely on average over the batch."""
    if not rows:
        return ()
    normalized = [log_softmax(row) for row in rows]
    return tuple(sum(column) / len(normalized) for column in zip(*normalized))


def calibrated(scores: Sequence[float], calibration: Sequence[float] = ()) -> list[float]:
    """`scores` less `calibration` (none: as they are), normalized to log-probabilities."""
    offsets = calibration or [0.0] * len(scores)
    return log_softmax([s - o for s, o in zip(scores, offsets)])


def best_label(labels: Sequence[str], scores: Sequence[float], calibration: Sequence[float] = ()) -> str:
    """The label with the highest score after subtracting `calibration` (none: raw scores)."""
    normalized = calibrated(scores, calibration)
    return labels[max(range(len(labels)), key=normalized.__getitem__)]


def label_probability(labels: Sequence[str], scores: Sequence[float], calibration: Sequence[float],
                      label: str) -> float:
    """The probability the (calibrated) scores give `label`, among the labels: a soft score, to
    tell candidates apart that answer equally many right."""
    if label not in labels:
        return 0.0
    return math.exp(calibrated(scores, calibration)[list(labels).index(label)])
