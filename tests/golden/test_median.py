"""measure.median gives numpy.median's number (it exists only to keep numpy.ma out of a check's start-up)."""

import numpy as np
import pytest

from mobius.measure.median import median


@pytest.mark.parametrize("n", [1, 2, 3, 4, 9, 10])
def test_median_is_numpys(n):
    values = np.random.default_rng(n).normal(size=n)
    assert median(values) == float(np.median(values))
    assert median(list(values)) == float(np.median(values))


def test_median_of_nothing_is_nan():
    assert np.isnan(median([]))
