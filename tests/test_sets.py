"""provaudit.text.sets equals numpy's set operations on integer arrays."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from provaudit.text import sets

ints = hnp.arrays(np.int64, st.integers(0, 60), elements=st.integers(-5, 12))


@settings(max_examples=300, deadline=None)
@given(ints, ints)
def test_set_operations_equal_numpy_on_small_ranges(a: np.ndarray, b: np.ndarray) -> None:
    assert np.array_equal(sets.unique(a), np.unique(a))
    assert np.array_equal(sets.union(a, b), np.union1d(a, b))
    assert np.array_equal(sets.intersect(a, b), np.intersect1d(a, b))
    assert np.array_equal(sets.isin(a, b), np.isin(a, b))
    assert np.array_equal(sets.isin(a, np.unique(b), b_unique=True), np.isin(a, b))


@pytest.mark.parametrize("dtype", [np.uint64, np.int64, np.uint32])
def test_set_operations_equal_numpy_on_hashes(dtype: type) -> None:
    rng = np.random.default_rng(7)
    hi = np.iinfo(dtype).max
    a = rng.integers(0, hi, 5000, dtype=dtype, endpoint=True)
    b = np.concatenate([a[::3], rng.integers(0, hi, 4000, dtype=dtype, endpoint=True)])
    a = np.concatenate([a, a[:100]])  # repeats
    assert np.array_equal(sets.unique(a), np.unique(a)) and sets.unique(a).dtype == a.dtype
    assert np.array_equal(sets.union(a, b), np.union1d(a, b))
    assert np.array_equal(sets.intersect(a, b), np.intersect1d(a, b))
    assert np.array_equal(sets.isin(a, b), np.isin(a, b))
    assert np.array_equal(sets.isin(a.reshape(50, -1), b), np.isin(a.reshape(50, -1), b))
