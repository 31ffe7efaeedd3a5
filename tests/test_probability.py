"""provaudit.match.probability against exact rational arithmetic."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest

from provaudit.match.probability import hypergeom_cdf, lsh_candidate_probability


def _hypergeom_pmf(x: int, big_n: int, big_k: int, n: int) -> Fraction:
    if x < 0 or x > n or x > big_k or n - x > big_n - big_k:
        return Fraction(0)
    return Fraction(math.comb(big_k, x) * math.comb(big_n - big_k, n - x), math.comb(big_n, n))


@pytest.mark.parametrize("big_n,big_k,n", [(1, 0, 1), (1, 1, 1), (10, 3, 4), (20, 20, 5), (20, 0, 5), (40, 13, 17),
                                            (64, 40, 16), (100, 2, 98), (16, 9, 16)])
def test_hypergeom_cdf_equals_exact_sums(big_n: int, big_k: int, n: int) -> None:
    cdf = hypergeom_cdf(big_n, big_k, n)
    assert len(cdf) == n + 1
    for x in range(n + 1):
        want = float(sum(_hypergeom_pmf(i, big_n, big_k, n) for i in range(x + 1)))
        assert cdf[x] == pytest.approx(want, rel=1e-9, abs=1e-12), (x, big_n, big_k, n)
    assert cdf[-1] == pytest.approx(1.0)


def test_hypergeom_cdf_of_an_anchor_search_on_a_large_item() -> None:
    # an item of 1e6 shingles, 16 anchors, 30% of its shingles in the target
    big_n, n = 1_000_000, 16
    big_k = math.ceil(0.3 * big_n)
    cdf = hypergeom_cdf(big_n, big_k, n)
    for x in (0, 1, 4, 8, 12):
        want = float(sum(_hypergeom_pmf(i, big_n, big_k, n) for i in range(x + 1)))
        assert cdf[x] == pytest.approx(want, rel=1e-8)


@pytest.mark.parametrize("bands,rows", [(1, 1), (20, 5), (16, 8), (32, 4), (9, 13)])
def test_lsh_candidate_probability_equals_the_exact_formula(bands: int, rows: int) -> None:
    for v in ("0", "0.3", "0.5", "0.75", "0.9", "1"):
        exact = 1 - (1 - Fraction(v) ** rows) ** bands
        assert lsh_candidate_probability(float(v), bands, rows) == pytest.approx(float(exact), rel=1e-12, abs=1e-15)
