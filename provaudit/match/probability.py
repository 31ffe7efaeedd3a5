"""The chances that candidate search proposes a pair: each formula once.

* anchors: X ~ Hypergeometric(N, overlap, k) anchors of an item with N distinct shingles
  are found in a target sharing ``overlap`` of them; the pair is proposed when X >= t;
* LSH bands: a pair of Jaccard similarity s shares at least one of b bands of r rows
  with probability ``1 - (1 - s^r)^b``.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np


def _log_comb(n: np.ndarray | int, k: np.ndarray | int) -> np.ndarray:
    n_, k_ = np.asarray(n, dtype=np.float64), np.asarray(k, dtype=np.float64)
    lg = np.vectorize(math.lgamma, otypes=[np.float64])
    return np.asarray(lg(n_ + 1) - lg(k_ + 1) - lg(n_ - k_ + 1))


def hypergeom_cdf(population: int, successes: int, draws: int) -> np.ndarray:
    """``P(X <= x)`` for x = 0..draws, X ~ Hypergeometric(population, successes, draws)."""
    return np.array(_hypergeom_cdf(int(population), int(successes), int(draws)), dtype=np.float64)


@lru_cache(maxsize=1 << 16)
def _hypergeom_cdf(population: int, successes: int, draws: int) -> tuple[float, ...]:
    """Cached: audits ask for the same few (N, overlap, k) triples for every pair."""
    x = np.arange(draws + 1)
    valid = (x <= successes) & (draws - x <= population - successes)
    logp = np.full(draws + 1, -np.inf)
    xv = x[valid]
    logp[valid] = (
        _log_comb(successes, xv) + _log_comb(population - successes, draws - xv) - _log_comb(population, draws)
    )
    out: np.ndarray = np.minimum(np.cumsum(np.exp(logp)), 1.0)
    return tuple(out.tolist())


def anchor_threshold(n_shingles: int, k: int, c_min: float, miss_rate: float) -> tuple[int, float]:
    """``(t, miss)``: anchors an item of ``n_shingles`` distinct shingles and ``k`` usable anchors needs
    to become a candidate (the largest t whose miss probability at containment ``c_min`` is at most
    ``miss_rate``; 1 when none is; 0: no usable anchor, not searchable), and that miss probability.

    Example:
        >>> anchor_threshold(30, 16, 0.5, 0.01)[0]
        5
    """
    k = min(k, n_shingles)
    if k == 0:
        return 0, 1.0
    overlap = math.ceil(c_min * n_shingles - 1e-9)
    cdf = hypergeom_cdf(n_shingles, overlap, k)  # cdf[t-1] = P(X < t)
    ok = np.flatnonzero(cdf <= miss_rate)
    t = int(ok[-1]) + 1 if len(ok) else 1
    return t, float(cdf[t - 1]) if t >= 1 else 0.0


def lsh_candidate_probability(s: float, bands: int, rows: int) -> float:
    """``1 - (1 - s**rows)**bands``: the chance that banded LSH pairs items of Jaccard similarity ``s``.

    Example:
        >>> round(lsh_candidate_probability(0.5, 20, 5), 4)
        0.4701
    """
    return 1.0 - (1.0 - s**rows) ** bands
