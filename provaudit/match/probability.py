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


def lsh_candidate_probability(s: float, bands: int, rows: int) -> float:
    """``1 - (1 - s**rows)**bands``: the chance that banded LSH pairs items of Jaccard similarity ``s``.

    Example:
        >>> round(lsh_candidate_probability(0.5, 20, 5), 4)
        0.4701
    """
    return 1.0 - (1.0 - s**rows) ** bands
