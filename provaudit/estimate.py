"""Point estimates and confidence intervals for audit reports (pure math, no I/O).

Every interval is two-sided at ``confidence`` and uses the normal quantile from
:func:`normal_quantile`; see ``docs/statistics.md`` for what each estimator
means and which assumptions it makes.

Example:
    >>> proportion(5, 10).to_dict()["ci_low"]
    0.2365931906
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any, Callable, overload

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

__all__ = ["Estimate", "binom_sf", "corrected_count", "difference", "expected_missed",
           "hypergeom_sf", "lsh_candidate_probability", "lsh_miss_probability",
           "normal_quantile", "proportion", "ratio"]


@dataclass(frozen=True, slots=True)
class Estimate:
    """A point estimate with a two-sided confidence interval.

    Attributes:
        value: The point estimate (``nan`` when nothing was observed).
        ci_low: Lower confidence bound.
        ci_high: Upper confidence bound.
        confidence: Nominal coverage of ``[ci_low, ci_high]``, e.g. 0.95.
        method: How the interval was computed (human readable, stable).
        n: Number of sampled units (records, or trials) behind the estimate.

    Example:
        >>> Estimate(0.5, 0.25, 0.75, 0.95, "wilson", 10).to_dict()["method"]
        'wilson'
    """

    value: float
    ci_low: float
    ci_high: float
    confidence: float
    method: str
    n: int

    def to_dict(self) -> dict[str, float | int | str]:
        """Return a JSON-ready dict; floats are rounded to 10 significant digits.

        Returns:
            ``{"value", "ci_low", "ci_high", "confidence", "method", "n"}``.

        Example:
            >>> sorted(Estimate(1/3, 0.0, 1.0, 0.95, "m", 3).to_dict().items())[-1]
            ('value', 0.3333333333)
        """
        return {
            "value": _round10(self.value),
            "ci_low": _round10(self.ci_low),
            "ci_high": _round10(self.ci_high),
            "confidence": _round10(self.confidence),
            "method": self.method,
            "n": int(self.n),
        }


def _round10(x: float) -> float:
    return float(f"{float(x):.10g}")


def _count(name: str, value: Any) -> int:
    """Validate a non-negative integer count (ints, numpy ints, integral floats)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    if isinstance(value, numbers.Integral):
        out = int(value)
    elif math.isfinite(float(value)) and float(value).is_integer():
        out = int(float(value))
    else:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    if out < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    return out


def _z(confidence: float) -> float:
    if not isinstance(confidence, numbers.Real) or not 0.0 < float(confidence) < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    return normal_quantile(0.5 + float(confidence) / 2.0)


# Acklam's rational approximation (relative error < 1.15e-9), refined below.
_A = (-3.969683028665376e01, 2.209460984245205e02, -2.759285104469687e02,
      1.383577518672690e02, -3.066479806614716e01, 2.506628277459239e00)
_B = (-5.447609879822406e01, 1.615858368580409e02, -1.556989798598866e02,
      6.680131188771972e01, -1.328068155288572e01)
_C = (-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e00,
      -2.549732539343734e00, 4.374664141464968e00, 2.938163982698783e00)
_D = (7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e00, 3.754408661907416e00)


def normal_quantile(p: float) -> float:
    """Inverse of the standard normal CDF (Acklam's algorithm + one Halley step).

    Accurate to about 1e-15 relative; exactly antisymmetric (``q(1-p) == -q(p)``).

    Args:
        p: Probability in the open interval (0, 1).

    Returns:
        The ``x`` with ``P(Z <= x) == p`` for a standard normal ``Z``.

    Raises:
        ValueError: If ``p`` is not in (0, 1).

    Example:
        >>> round(normal_quantile(0.975), 6)
        1.959964
    """
    if not isinstance(p, numbers.Real) or not 0.0 < float(p) < 1.0:
        raise ValueError(f"p must be in (0, 1), got {p!r}")
    p = float(p)
    if p > 0.5:
        return -normal_quantile(1.0 - p)  # 1 - p is exact for p >= 0.5
    if p < 0.02425:
        q = math.sqrt(-2.0 * math.log(p))
        x = ((((((_C[0] * q + _C[1]) * q + _C[2]) * q + _C[3]) * q + _C[4]) * q + _C[5])
             / ((((_D[0] * q + _D[1]) * q + _D[2]) * q + _D[3]) * q + 1.0))
    else:
        q = p - 0.5
        r = q * q
        x = ((((((_A[0] * r + _A[1]) * r + _A[2]) * r + _A[3]) * r + _A[4]) * r + _A[5]) * q
             / (((((_B[0] * r + _B[1]) * r + _B[2]) * r + _B[3]) * r + _B[4]) * r + 1.0))
    e = 0.5 * math.erfc(-x / math.sqrt(2.0)) - p
    u = e * math.sqrt(2.0 * math.pi) * math.exp(x * x / 2.0)
    return x - u / (1.0 + x * u / 2.0)


def _wilson(p: float, n: float, z: float) -> tuple[float, float]:
    """Wilson score bounds for an observed share ``p`` from an (effective) sample size ``n``."""
    z2 = z * z
    denom = 1.0 + z2 / n
    center = (p + z2 / (2.0 * n)) / denom
    half = z * math.sqrt(max(p * (1.0 - p), 0.0) / n + z2 / (4.0 * n * n)) / denom
    return max(0.0, center - half), min(1.0, center + half)


def proportion(successes: int, n: int, *, confidence: float = 0.95,
               population: int | None = None) -> Estimate:
    """Share of sampled units with a property, with a Wilson score interval.

    With ``population`` (units in the finite population the ``n`` were drawn
    from without replacement) the variance is shrunk by the finite population
    correction ``(N - n) / (N - 1)`` (Wilson with effective size
    ``n * (N - 1) / (N - n)``), and the bounds are clamped to what the sample
    alone proves: at least ``successes / N`` and at most ``1 - (n - successes) / N``.

    Args:
        successes: Sampled units with the property.
        n: Sampled units.
        confidence: Two-sided confidence level in (0, 1).
        population: Population size ``N >= n``, or ``None`` for an infinite one.

    Returns:
        The estimate. ``n == population`` is a full scan: exact, zero width.
        ``n == 0`` gives value ``nan`` and interval (0, 1).

    Raises:
        ValueError: On negative counts, ``successes > n``, ``n > population``
            or ``confidence`` outside (0, 1).

    Example:
        >>> e = proportion(0, 10)
        >>> (e.ci_low, round(e.ci_high, 4))
        (0.0, 0.2775)
    """
    x, m = _count("successes", successes), _count("n", n)
    z = _z(confidence)
    if x > m:
        raise ValueError(f"successes ({x}) must not exceed n ({m})")
    big_n = None if population is None else _count("population", population)
    if big_n is not None and m > big_n:
        raise ValueError(f"n ({m}) must not exceed population ({big_n})")
    conf = float(confidence)
    if m == 0:
        return Estimate(math.nan, 0.0, 1.0, conf, "wilson (no observations)", 0)
    p = x / m
    if big_n is not None and m == big_n:
        return Estimate(p, p, p, conf, "exact (full scan)", m)
    if big_n is None:
        low, high = _wilson(p, m, z)
        method = "wilson"
    else:
        low, high = _wilson(p, m * (big_n - 1) / (big_n - m), z)
        low, high = max(low, x / big_n), min(high, 1.0 - (m - x) / big_n)
        method = "wilson (finite population)"
    if x == 0:
        low = 0.0
    if x == m:
        high = 1.0
    return Estimate(p, low, high, conf, method, m)


def _vector(name: str, values: Any) -> FloatArray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    bad = ~np.isfinite(arr) | (arr < 0)
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"{name} must be finite and >= 0, got {arr[i]!r} at index {i}")
    return arr


def ratio(numerators: Any, denominators: Any, *, clusters: Any = None,
          confidence: float = 0.95, population: int | None = None) -> Estimate:
    """Ratio estimator ``R = sum(y) / sum(x)`` with a linearization (Taylor) interval.

    Typical use: matched tokens / total tokens over sampled records. The
    variance is ``fpc * G / (G - 1) * sum_g(e_g ** 2) / sum(x) ** 2`` where
    ``e_g`` is the total residual ``y - R * x`` of unit ``g``; a unit is a
    record, or a cluster (e.g. a shard) when ``clusters`` is given (cluster-
    robust variance). The interval is ``R +- z * se``, clipped to [0, 1] when
    every numerator is at most its denominator. If every residual is zero at
    ``R == 0`` or ``R == 1`` (nothing or everything matched) the variance is
    degenerate, so a Wilson bound with Kish's effective sample size
    ``sum(x)**2 / sum_g(x_g**2)`` is returned instead.

    Args:
        numerators: Per-record ``y`` values (>= 0), e.g. matched tokens.
        denominators: Per-record ``x`` values (>= 0), e.g. tokens.
        clusters: Optional per-record cluster labels (any hashable numpy dtype).
        confidence: Two-sided confidence level in (0, 1).
        population: Records in the population (same unit as ``numerators``);
            applies the finite population correction ``1 - n / N``.

    Returns:
        The estimate; ``n`` is the number of records. No records (or all
        denominators 0) gives ``nan``; a full scan is exact with zero width.

    Raises:
        ValueError: On mismatched lengths, negative or non-finite values,
            positive numerators whose denominators sum to 0, ``n > population``
            or ``confidence`` outside (0, 1).

    Example:
        >>> e = ratio([10, 0, 30, 0], [100, 100, 100, 100])
        >>> (e.value, round(e.ci_high, 4))
        (0.1, 0.2405)
    """
    y, x = _vector("numerators", numerators), _vector("denominators", denominators)
    if y.shape != x.shape:
        raise ValueError(f"numerators ({y.size}) and denominators ({x.size}) differ in length")
    n, conf, z = int(y.size), float(confidence), _z(confidence)
    big_n = None if population is None else _count("population", population)
    if big_n is not None and n > big_n:
        raise ValueError(f"n ({n}) must not exceed population ({big_n})")
    bounded = bool(np.all(y <= x))
    top = 1.0 if bounded else math.inf
    big_x, big_y = float(x.sum()), float(y.sum())
    if n == 0 or big_x == 0.0:
        if big_y > 0.0:
            raise ValueError(f"numerators sum to {big_y} but denominators sum to 0")
        why = "no observations" if n == 0 else "denominators sum to 0"
        return Estimate(math.nan, 0.0, top, conf, f"ratio ({why})", n)
    r = big_y / big_x
    if big_n is not None and n == big_n:
        return Estimate(r, r, r, conf, "exact (full scan)", n)
    resid, tags = y - r * x, ["linearization"]
    e_g, x_g = resid, x
    if clusters is not None:
        labels = np.asarray(clusters)
        if labels.shape != y.shape:
            raise ValueError(f"clusters ({labels.size}) and numerators ({n}) differ in length")
        inverse = np.unique(labels, return_inverse=True)[1].reshape(-1)
        e_g = np.asarray(np.bincount(inverse, weights=resid), dtype=np.float64)
        x_g = np.asarray(np.bincount(inverse, weights=x), dtype=np.float64)
        tags.append("cluster-robust")
    if big_n is not None:
        tags.append("finite population")
    g, fpc = int(e_g.size), 1.0 - n / big_n if big_n is not None else 1.0
    if g < 2:
        tags.append("variance not estimable")
        return Estimate(r, 0.0, top, conf, f"ratio ({', '.join(tags)})", n)
    if big_y == 0.0 or (bounded and big_y == big_x):  # every residual is exactly 0
        up = _wilson(0.0, big_x * big_x / float(np.sum(x_g * x_g)) / fpc, z)[1]
        low, high = (0.0, up) if big_y == 0.0 else (1.0 - up, 1.0)
        tags.append("degenerate: wilson with kish n")
        return Estimate(r, low, high, conf, f"ratio ({', '.join(tags)})", n)
    var = fpc * g / (g - 1) * float(np.sum(e_g * e_g)) / (big_x * big_x)
    half = z * math.sqrt(var)
    low, high, method = max(0.0, r - half), r + half, f"ratio ({', '.join(tags)})"
    if bounded:
        high = min(1.0, high)
    return Estimate(r, low, high, conf, method, n)


def difference(x1: int, n1: int, x2: int, n2: int, *, confidence: float = 0.95) -> Estimate:
    """Difference ``p1 - p2`` of two independent proportions, Newcombe's hybrid score interval.

    Newcombe (1998) method 10: with Wilson bounds ``(l1, u1)`` and ``(l2, u2)``,
    the interval is ``d - sqrt((p1-l1)**2 + (u2-p2)**2)`` to
    ``d + sqrt((u1-p1)**2 + (p2-l2)**2)``. Used for "reference match rate
    minus negative-control match rate".

    Args:
        x1: Successes in sample 1.
        n1: Size of sample 1.
        x2: Successes in sample 2.
        n2: Size of sample 2.
        confidence: Two-sided confidence level in (0, 1).

    Returns:
        The estimate, ``n == n1 + n2``; ``nan`` and (-1, 1) if either sample is empty.

    Raises:
        ValueError: On negative counts, ``x > n`` or ``confidence`` outside (0, 1).

    Example:
        >>> e = difference(56, 70, 48, 80)
        >>> (round(e.ci_low, 4), round(e.ci_high, 4))
        (0.0524, 0.3339)
    """
    a, b = proportion(x1, n1, confidence=confidence), proportion(x2, n2, confidence=confidence)
    conf, n = float(confidence), a.n + b.n
    if a.n == 0 or b.n == 0:
        return Estimate(math.nan, -1.0, 1.0, conf, "newcombe hybrid score (no observations)", n)
    d = a.value - b.value
    delta = math.hypot(a.value - a.ci_low, b.ci_high - b.value)
    eps = math.hypot(a.ci_high - a.value, b.value - b.ci_low)
    return Estimate(d, max(-1.0, d - delta), min(1.0, d + eps), conf, "newcombe hybrid score", n)


def _lsh_args(s: Any, bands: int, rows: int) -> FloatArray:
    _positive("bands", bands)
    _positive("rows", rows)
    arr = np.asarray(s, dtype=np.float64)
    bad = ~((arr >= 0.0) & (arr <= 1.0))
    if bad.any():
        raise ValueError(f"similarity must be in [0, 1], got {arr[bad].ravel()[0]!r}")
    return arr


def _positive(name: str, value: Any) -> int:
    out = _count(name, value)
    if out < 1:
        raise ValueError(f"{name} must be >= 1, got {value!r}")
    return out


@overload
def lsh_candidate_probability(s: float, bands: int, rows: int) -> float: ...
@overload
def lsh_candidate_probability(s: npt.NDArray[Any], bands: int, rows: int) -> FloatArray: ...
def lsh_candidate_probability(s: float | npt.NDArray[Any], bands: int, rows: int) -> float | FloatArray:
    """Probability that banded LSH makes a pair of Jaccard similarity ``s`` a candidate.

    ``1 - (1 - s**rows)**bands``, computed with ``log1p``/``expm1`` so tiny values are exact.

    Args:
        s: Similarity in [0, 1], a float or a numpy array.
        bands: Number of LSH bands (>= 1).
        rows: Rows (hash values) per band (>= 1).

    Returns:
        A float for a scalar ``s``, else an array of the same shape.

    Raises:
        ValueError: If ``s`` is outside [0, 1] or ``bands``/``rows`` < 1.

    Example:
        >>> round(lsh_candidate_probability(0.5, 20, 5), 4)
        0.4762
    """
    arr = _lsh_args(s, bands, rows)
    with np.errstate(divide="ignore"):
        out = -np.expm1(int(bands) * np.log1p(-(arr ** int(rows))))
    return np.asarray(out, dtype=np.float64) if isinstance(s, np.ndarray) else float(out)


@overload
def lsh_miss_probability(s: float, bands: int, rows: int) -> float: ...
@overload
def lsh_miss_probability(s: npt.NDArray[Any], bands: int, rows: int) -> FloatArray: ...
def lsh_miss_probability(s: float | npt.NDArray[Any], bands: int, rows: int) -> float | FloatArray:
    """Probability ``(1 - s**rows)**bands`` that LSH never pairs items of similarity ``s``.

    Args:
        s: Similarity in [0, 1], a float or a numpy array.
        bands: Number of LSH bands (>= 1).
        rows: Rows per band (>= 1).

    Returns:
        ``1 - lsh_candidate_probability(s, bands, rows)``, float or array.

    Raises:
        ValueError: If ``s`` is outside [0, 1] or ``bands``/``rows`` < 1.

    Example:
        >>> round(lsh_miss_probability(0.5, 20, 5), 4)
        0.5238
    """
    arr = _lsh_args(s, bands, rows)
    with np.errstate(divide="ignore"):
        out = np.exp(int(bands) * np.log1p(-(arr ** int(rows))))
    return np.asarray(out, dtype=np.float64) if isinstance(s, np.ndarray) else float(out)


def expected_missed(similarities: Any, bands: int, rows: int) -> float:
    """Horvitz-Thompson estimate of matching pairs the LSH stage never proposed.

    Each found pair of similarity ``s`` stands for ``1 / p(s)`` pairs, of which
    ``(1 - p(s)) / p(s)`` were missed (``p`` = :func:`lsh_candidate_probability`).
    Assumes missed pairs have the same similarity distribution as found ones
    (conditional on ``s`` a pair is found with probability ``p(s)``,
    independently); pairs with very low ``p(s)`` get large weights and make
    the estimate noisy.

    Args:
        similarities: Similarities of the verified (found) pairs.
        bands: LSH bands.
        rows: Rows per band.

    Returns:
        The expected number of missed pairs (0.0 for no pairs).

    Raises:
        ValueError: If a similarity is outside [0, 1] or has ``p(s) == 0``.

    Example:
        >>> round(expected_missed([0.5, 0.9], 20, 5), 3)
        1.1
    """
    p = lsh_candidate_probability(np.asarray(similarities, dtype=np.float64).ravel(), bands, rows)
    if (p <= 0.0).any():
        bad = float(np.asarray(similarities, dtype=np.float64).ravel()[int(np.argmax(p <= 0.0))])
        raise ValueError(f"similarity {bad!r} has LSH candidate probability 0; cannot reweight")
    return float(np.sum((1.0 - p) / p))


def corrected_count(observed: int, similarities: Any, bands: int, rows: int) -> float:
    """LSH-miss-corrected number of matching pairs: ``observed`` plus estimated misses.

    ``similarities`` may be all observed pairs or a uniform sample of them; the
    missed-pair estimate is scaled by ``observed / len(similarities)``.

    Args:
        observed: Pairs found and verified.
        similarities: Similarities of those pairs (or of a uniform sample of them).
        bands: LSH bands.
        rows: Rows per band.

    Returns:
        ``observed + expected_missed(...) * observed / len(similarities)``.

    Raises:
        ValueError: If ``observed < 0``, ``observed > 0`` with no similarities,
            or as :func:`expected_missed`.

    Example:
        >>> round(corrected_count(2, [0.5, 0.9], 20, 5), 3)
        3.1
    """
    k = _count("observed", observed)
    sims = np.asarray(similarities, dtype=np.float64).ravel()
    if sims.size == 0:
        if k:
            raise ValueError(f"observed is {k} but no similarities were given")
        return 0.0
    return k + expected_missed(sims, bands, rows) * k / sims.size


def _tail(k: int, lo: int, hi: int, mode: int, log_pmf: Callable[[int], float],
          up: Callable[[int], float], down: Callable[[int], float]) -> float:
    """``P(X >= k)`` for a unimodal pmf on ``[lo, hi]``, summing from the tail inwards."""
    if k <= lo:
        return 1.0
    if k > hi:
        return 0.0
    start, step, stop, nxt = (k, 1, hi, up) if k > mode else (k - 1, -1, lo, down)
    term, total, x = 1.0, 1.0, start
    while x != stop:  # terms decrease monotonically away from the mode
        term *= nxt(x)
        x += step
        total += term
        if term < 1e-20 * total:
            break
    tail = math.exp(log_pmf(start) + math.log(total))
    return min(1.0, tail) if k > mode else max(0.0, 1.0 - tail)


def _threshold(k: Any) -> int:
    if isinstance(k, bool) or not isinstance(k, numbers.Integral):
        raise ValueError(f"k must be an integer, got {k!r}")
    return int(k)


def _lcomb(a: int, b: int) -> float:
    return math.lgamma(a + 1) - math.lgamma(b + 1) - math.lgamma(a - b + 1)


def hypergeom_sf(k: int, population: int, successes: int, draws: int) -> float:
    """``P(X >= k)`` for ``X ~ Hypergeometric(population, successes, draws)``.

    Exact up to float rounding: log-gamma for one pmf term, then the pmf ratio
    recurrence, summing the smaller tail; stable for populations up to ~1e6.

    Args:
        k: Threshold (any integer).
        population: Population size ``N``.
        successes: Successes in the population ``K <= N``.
        draws: Items drawn without replacement ``n <= N``.

    Returns:
        The survival probability in [0, 1].

    Raises:
        ValueError: If a count is negative or ``successes``/``draws`` exceed ``population``.

    Example:
        >>> round(hypergeom_sf(1, 100, 10, 16), 4)
        0.8484
    """
    big_n, big_k, n = (_count("population", population), _count("successes", successes),
                       _count("draws", draws))
    if big_k > big_n or n > big_n:
        raise ValueError(f"successes ({big_k}) and draws ({n}) must not exceed population ({big_n})")
    kk = _threshold(k)
    lo, hi, rest = max(0, n - (big_n - big_k)), min(n, big_k), big_n - big_k
    mode = (n + 1) * (big_k + 1) // (big_n + 2)
    norm = _lcomb(big_n, n)
    return _tail(
        kk, lo, hi, mode,
        lambda x: _lcomb(big_k, x) + _lcomb(rest, n - x) - norm,
        lambda x: (big_k - x) * (n - x) / ((x + 1) * (rest - n + x + 1)),
        lambda x: x * (rest - n + x) / ((big_k - x + 1) * (n - x + 1)),
    )


def binom_sf(k: int, n: int, p: float) -> float:
    """``P(X >= k)`` for ``X ~ Binomial(n, p)``, exact up to float rounding.

    Args:
        k: Threshold (any integer).
        n: Number of trials.
        p: Success probability in [0, 1].

    Returns:
        The survival probability in [0, 1].

    Raises:
        ValueError: If ``n`` is negative or ``p`` is outside [0, 1].

    Example:
        >>> binom_sf(1, 2, 0.5)
        0.75
    """
    trials = _count("n", n)
    if not isinstance(p, numbers.Real) or not 0.0 <= float(p) <= 1.0:
        raise ValueError(f"p must be in [0, 1], got {p!r}")
    q, kk = float(p), _threshold(k)
    if q in (0.0, 1.0):
        x = 0 if q == 0.0 else trials
        return 1.0 if kk <= x else 0.0
    odds = q / (1.0 - q)
    lp, lq = math.log(q), math.log1p(-q)
    return _tail(
        kk, 0, trials, min(trials, int((trials + 1) * q)),
        lambda x: _lcomb(trials, x) + x * lp + (trials - x) * lq,
        lambda x: (trials - x) / (x + 1) * odds,
        lambda x: x / (trials - x + 1) / odds,
    )
