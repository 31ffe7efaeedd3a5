"""Shared runs of two shingle sequences: the evidence of a verified pair (verbatim span, covered tokens).

Each function has a compiled kernel (``text.kernels``) and a numpy twin, equal bit for bit (tested).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from provaudit.index.chunks import expand
from provaudit.text import kernels, sets


@dataclass(frozen=True, slots=True)
class Runs:
    """Maximal runs of consecutive equal elements shared by sequences ``a`` and ``b``.

    Attributes:
        a_start: Start position of each run in ``a``.
        b_start: Start position of each run in ``b``.
        length: Run length (elements).
    """

    a_start: np.ndarray
    b_start: np.ndarray
    length: np.ndarray

    def __len__(self) -> int:
        return len(self.length)


def shared_runs(a: np.ndarray, b: np.ndarray) -> Runs:
    """Every maximal diagonal run of equal elements between ``a`` and ``b``, ordered by (b_start, a_start).

    A run is maximal: it cannot be extended at either end. Its longest length
    equals ``longest_common_run(a, b)``.

    Example:
        >>> r = shared_runs(np.array([1, 2, 3, 9]), np.array([0, 1, 2, 3, 4, 9]))
        >>> r.a_start.tolist(), r.b_start.tolist(), r.length.tolist()
        ([0, 3], [1, 5], [3, 1])
    """
    empty = np.zeros(0, dtype=np.int64)
    if len(a) == 0 or len(b) == 0:
        return Runs(empty, empty, empty)
    order = np.argsort(a, kind="stable")
    sa = a[order]
    lo = np.searchsorted(sa, b, side="left")
    hi = np.searchsorted(sa, b, side="right")
    jb, pos = expand(lo, hi)
    if len(pos) == 0:
        return Runs(empty, empty, empty)
    ia = order[pos].astype(np.int64)
    jb = jb.astype(np.int64)
    diag = jb - ia
    o = np.lexsort((ia, diag))
    d, i = diag[o], ia[o]
    brk = np.ones(len(d), dtype=bool)
    brk[1:] = (d[1:] != d[:-1]) | (i[1:] != i[:-1] + 1)
    first = np.flatnonzero(brk)
    length = np.diff(np.r_[first, len(d)]).astype(np.int64)
    a0 = i[first]
    b0 = a0 + d[first]
    by_b = np.lexsort((a0, b0))
    return Runs(a0[by_b], b0[by_b], length[by_b])


def longest_common_run(a: np.ndarray, b: np.ndarray) -> int:
    """Length of the longest run of consecutive equal elements shared by sequences ``a`` and ``b``.

    Example:
        >>> longest_common_run(np.array([1, 2, 3, 9]), np.array([0, 1, 2, 3, 4]))
        3
    """
    if len(a) == 0 or len(b) == 0:
        return 0
    if kernels.ENABLED:
        return kernels.longest_common_run(a, b)
    runs = shared_runs(a, b)
    return int(runs.length.max()) if len(runs) else 0


def covered_tokens(seq: np.ndarray, matched: np.ndarray, n_tokens: int, ngram: int) -> int:
    """Tokens of a target record covered by at least one of its shingles found in ``matched``."""
    if len(seq) == 0:
        return 0
    if kernels.ENABLED:
        m = np.asarray(matched, dtype=np.uint64)
        if len(m) > 1 and not bool((m[1:] >= m[:-1]).all()):
            m = np.sort(m)
        return kernels.covered_tokens(seq, m, n_tokens, min(ngram, n_tokens))
    hit = sets.isin(seq, matched)
    if not hit.any():
        return 0
    width = min(ngram, n_tokens)
    cover = np.convolve(hit.astype(np.int64), np.ones(width, dtype=np.int64))[:n_tokens]
    return int((cover > 0).sum())
