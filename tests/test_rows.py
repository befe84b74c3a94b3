"""Whose rows the search scores on: one policy switches calibration source, soft score and demo preference."""

import math

import pytest

from promptomatix.scoring.rows import RowsPolicy, SURE_WRONG


def test_on_the_users_rows_the_soft_score_is_the_log_score_and_calibration_is_read_from_the_rows():
    users = RowsPolicy(synthetic=False)
    # one answer sure of the wrong label weighs: the geometric mean, floored at SURE_WRONG
    assert users.soft_score([0.9, 0.9, 0.0]) == pytest.approx(math.exp((2 * math.log(0.9) + math.log(SURE_WRONG)) / 3))
    assert not users.calibrates_from_content_free and not users.prefers_demos


def test_on_synthetic_rows_a_mislabelled_row_moves_the_soft_score_by_at_most_a_row():
    synthetic = RowsPolicy(synthetic=True)
    assert synthetic.soft_score([0.9, 0.9, 0.0]) == pytest.approx(0.6)
    assert synthetic.calibrates_from_content_free and synthetic.prefers_demos
