"""Curriculum: where a model's frontier is.

The frontier is the hardest difficulty up to which a model is reliable: every difficulty from the
easiest up to it has held-out accuracy at or above a threshold. A gap stops it, so a model that is
perfect at difficulty 5 but fails difficulty 3 has frontier 2.

Example:
    >>> frontier({1: 1.0, 2: 0.95, 3: 0.4, 4: 0.9}, threshold=0.9)
    2
    >>> frontier({1: 0.1}, threshold=0.9)
    0
"""

from __future__ import annotations


def frontier(acc_by_difficulty: dict[int, float], threshold: float, min_difficulty: int = 1) -> int:
    """Largest d such that every difficulty min_difficulty..d has accuracy >= threshold.

    A difficulty missing from `acc_by_difficulty` counts as failed. Returns `min_difficulty - 1`
    when even `min_difficulty` is below the threshold (or was not evaluated).
    """
    d = min_difficulty
    while acc_by_difficulty.get(d, float("-inf")) >= threshold:
        d += 1
    return d - 1
