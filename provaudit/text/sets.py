"""Set operations on 1-D integer arrays (hashes, codes), by sorting.

numpy 2.3+ computes ``np.unique`` without ``return_index/inverse/counts`` (and so ``union1d``,
``intersect1d`` and ``isin``) with a hash table that is 10-70x slower than sorting on the
uniformly distributed 64-bit values provaudit works with (measured on 1M random int64 values
with numpy 2.4.6: ``np.unique`` 1.7 s, sort and mask 0.025 s; 4M values: 13.2 s vs 0.18 s).
These give the same results as numpy's functions for 1-D integer input, in sorted order.
"""

from __future__ import annotations

import numpy as np

__all__ = ["intersect", "isin", "union", "unique"]


def unique(a: np.ndarray) -> np.ndarray:
    """``np.unique(a)`` for a 1-D array: its distinct values, sorted."""
    s = np.sort(np.asarray(a).reshape(-1), kind="stable")
    if len(s) < 2:
        return s
    keep = np.empty(len(s), dtype=bool)
    keep[0] = True
    np.not_equal(s[1:], s[:-1], out=keep[1:])
    return s[keep]


def union(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``np.union1d(a, b)``."""
    return unique(np.concatenate([np.asarray(a).reshape(-1), np.asarray(b).reshape(-1)]))


def isin(a: np.ndarray, b: np.ndarray, *, b_unique: bool = False) -> np.ndarray:
    """``np.isin(a, b)`` (same shape as ``a``); ``b_unique``: ``b`` is already sorted and distinct."""
    a = np.asarray(a)
    table = np.asarray(b).reshape(-1) if b_unique else unique(b)
    if len(table) == 0 or a.size == 0:
        return np.zeros(a.shape, dtype=bool)
    flat = a.reshape(-1)
    at = np.searchsorted(table, flat)
    at[at == len(table)] = 0
    return np.asarray(table[at] == flat).reshape(a.shape)


def intersect(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``np.intersect1d(a, b)``: the sorted distinct values in both."""
    ua = unique(a)
    out: np.ndarray = ua[isin(ua, b)]
    return out
