"""The median of a few numbers, without `numpy.median`.

`numpy.median` imports `numpy.ma` on its first call (7-10 ms of a golden check's start-up, on the one
busy thread before the decode); a sort and the middle one or two values give the same number.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def median(values: Sequence[float] | Any) -> float:
    """The median of `values` (a sequence or a 1-D array): the middle value, or the mean of the middle two;
    NaN when there are none."""
    import numpy as np

    ordered = np.sort(np.asarray(values, dtype=np.float64).ravel())
    n = len(ordered)
    if n == 0:
        return float("nan")
    return float((ordered[(n - 1) // 2] + ordered[n // 2]) / 2)
