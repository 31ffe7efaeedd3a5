"""Point estimates and confidence intervals for audit reports (pure math, no I/O).

Intervals are two-sided at ``confidence`` and use :func:`normal_quantile`;
``docs/statistics.md`` explains each estimator and its assumptions. Invalid
arguments raise ``ValueError`` naming the bad value.

Example:
    >>> proportion(5, 10).to_dict()["ci_low"]
    0.2365930905
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

__all__ = ["Estimate", "difference", "normal_quantile", "proportion", "ratio"]


@dataclass(frozen=True, slots=True)
class Estimate:
    """A point estimate with a two-sided confidence interval.

    Attributes:
        value: The point estimate (``nan`` when nothing was observed).
        ci_low: Lower confidence bound.
        ci_high: Upper confidence bound.
        confidence: Nominal coverage of ``[ci_low, ci_high]``, e.g. 0.95.
        method: How the interval was computed (stable, human readable).
        n: Sampled units (records or trials) behind the estimate.

    Example:
        >>> Estimate(1 / 3, 0.0, 1.0, 0.95, "wilson", 3).to_dict()["value"]
        0.3333333333
    """

    value: float
    ci_low: float
    ci_high: float
    confidence: float
    method: str
    n: int

    def to_dict(self) -> dict[str, float | int | str | None]:
        """Return ``{"value", "ci_low", "ci_high", "confidence", "method", "n"}`` for JSON.

        Returns:
            The fields, floats rounded to 10 significant digits for stable output;
            an undefined value (NaN, e.g. no observations) becomes None (JSON null).
        """
        r = _round10
        return {"value": r(self.value), "ci_low": r(self.ci_low), "ci_high": r(self.ci_high),
                "confidence": r(self.confidence), "method": self.method, "n": int(self.n)}


def _round10(x: float) -> float | None:
    return None if math.isnan(x) else float(f"{float(x):.10g}")


def _count(name: str, value: Any, minimum: int = 0) -> int:
    """A count: an int (or integral float) >= ``minimum``."""
    ok = not isinstance(value, bool) and isinstance(value, numbers.Real)
    if ok and not isinstance(value, numbers.Integral):
        ok = math.isfinite(float(value)) and float(value).is_integer()
    if not ok or int(value) < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _z(confidence: Any) -> float:
    ok = not isinstance(confidence, bool) and isinstance(confidence, numbers.Real)
    if not ok or not 0.0 < float(confidence) < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    return normal_quantile(0.5 + float(confidence) / 2.0)


# Acklam's rational approximation (relative error < 1.15e-9), refined by one Halley step.
_A = (-3.969683028665376e01, 2.209460984245205e02, -2.759285104469687e02,
      1.383577518672690e02, -3.066479806614716e01, 2.506628277459239e00)
_B = (-5.447609879822406e01, 1.615858368580409e02, -1.556989798598866e02,
      6.680131188771972e01, -1.328068155288572e01, 1.0)
_C = (-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e00,
      -2.549732539343734e00, 4.374664141464968e00, 2.938163982698783e00)
_D = (7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e00, 3.754408661907416e00, 1.0)


def _poly(coefs: tuple[float, ...], x: float) -> float:
    acc = 0.0
    for c in coefs:
        acc = acc * x + c
    return acc


def normal_quantile(p: float) -> float:
    """Inverse of the standard normal CDF (Acklam's algorithm plus one Halley step).

    Accurate to ~1e-15 relative; the upper half is computed as ``-q(1 - p)``.

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
    if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0.0 < float(p) < 1.0:
        raise ValueError(f"p must be in (0, 1), got {p!r}")
    p = float(p)
    if p > 0.5:
        return -normal_quantile(1.0 - p)  # 1 - p is exact for p > 0.5
    if p < 0.02425:
        q = math.sqrt(-2.0 * math.log(p))
        x = _poly(_C, q) / _poly(_D, q)
    else:
        q = p - 0.5
        x = q * _poly(_A, q * q) / _poly(_B, q * q)
    u = (0.5 * math.erfc(-x / math.sqrt(2.0)) - p) * math.sqrt(2.0 * math.pi) * math.exp(x * x / 2.0)
    return x - u / (1.0 + x * u / 2.0)


def _wilson(p: float, n: float, z: float) -> tuple[float, float]:
    """Wilson score bounds for an observed share ``p`` with (effective) sample size ``n``."""
    z2 = z * z
    denom = 1.0 + z2 / n
    center = (p + z2 / (2.0 * n)) / denom
    half = z * math.sqrt(max(p * (1.0 - p), 0.0) / n + z2 / (4.0 * n * n)) / denom
    return max(0.0, center - half), min(1.0, center + half)


def proportion(successes: int, n: int, *, confidence: float = 0.95,
               population: int | None = None) -> Estimate:
    """Share of sampled units with a property, with a Wilson score interval.

    With ``population`` (size ``N`` of the finite population the ``n`` units
    were drawn from without replacement) the variance gets the finite
    population correction ``(N - n) / (N - 1)``, i.e. Wilson with effective
    size ``n * (N - 1) / (N - n)``, and the bounds are clamped to what the
    sample proves: at least ``successes / N``, at most ``1 - (n - successes) / N``.

    Args:
        successes: Sampled units with the property.
        n: Sampled units.
        confidence: Two-sided confidence level in (0, 1).
        population: Population size ``N >= n``, or ``None`` (infinite).

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
    x, m, z, conf = _count("successes", successes), _count("n", n), _z(confidence), float(confidence)
    if x > m:
        raise ValueError(f"successes ({x}) must not exceed n ({m})")
    big_n = None if population is None else _count("population", population)
    if big_n is not None and m > big_n:
        raise ValueError(f"n ({m}) must not exceed population ({big_n})")
    if m == 0:
        return Estimate(math.nan, 0.0, 1.0, conf, "wilson (no observations)", 0)
    p = x / m
    if m == big_n:
        return Estimate(p, p, p, conf, "exact (full scan)", m)
    if big_n is None:
        (low, high), method = _wilson(p, m, z), "wilson"
    else:
        low, high = _wilson(p, m * (big_n - 1) / (big_n - m), z)
        low, high = max(low, x / big_n), min(high, 1.0 - (m - x) / big_n)
        method = "wilson (finite population)"
    return Estimate(p, 0.0 if x == 0 else low, 1.0 if x == m else high, conf, method, m)


def _vector(name: str, values: Any) -> FloatArray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    bad = ~np.isfinite(arr) | (arr < 0)
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"{name} must be finite and >= 0, got {float(arr[i])!r} at index {i}")
    return arr


def ratio(numerators: Any, denominators: Any, *, clusters: Any = None, confidence: float = 0.95,
          population: int | None = None, skew_correction: bool = True) -> Estimate:
    """Ratio estimator ``R = sum(y) / sum(x)`` with a linearization (Taylor) interval.

    Typical use: matched tokens / total tokens over sampled records. With
    residual totals ``e_g = sum(y - R * x)`` per unit ``g`` (a record, or a
    cluster such as a shard when ``clusters`` is given: cluster-robust), the
    standard error is ``sqrt(fpc * G / (G - 1) * sum(e_g**2)) / sum(x)``. The
    interval is ``R -+ z * se`` with, by default, Hall's (1992) skewness
    correction: token counts are right-skewed, which makes the symmetric
    interval too short on the high side in small samples. It is clipped to
    [0, 1] when every numerator is at most its denominator. If nothing (or
    everything) matched, all residuals are 0 and the open bound is Wilson's
    for 0 (or all) of Kish's effective sample size ``sum(x)**2 / sum(x_g**2)``.

    Args:
        numerators: Per-record ``y`` values (>= 0), e.g. matched tokens.
        denominators: Per-record ``x`` values (>= 0), e.g. tokens.
        clusters: Optional per-record cluster labels (e.g. shard ids).
        confidence: Two-sided confidence level in (0, 1).
        population: Records in the population, for the correction ``fpc = 1 - n / N``.
        skew_correction: Apply Hall's correction (else plain ``R +- z * se``).

    Returns:
        The estimate; ``n`` counts records. No records (or all denominators 0)
        gives ``nan``; a full scan is exact (zero width); fewer than 2 units
        give the widest interval.

    Raises:
        ValueError: On mismatched lengths, negative or non-finite values, positive
            numerators over a zero denominator sum, ``n > population`` or a bad ``confidence``.

    Example:
        >>> e = ratio([10, 0, 30, 0], [100, 100, 100, 100], skew_correction=False)
        >>> (e.value, round(e.ci_high, 4))
        (0.1, 0.2386)
    """
    y, x = _vector("numerators", numerators), _vector("denominators", denominators)
    if y.shape != x.shape:
        raise ValueError(f"numerators ({y.size}) and denominators ({x.size}) differ in length")
    n, conf, z = int(y.size), float(confidence), _z(confidence)
    big_n = None if population is None else _count("population", population)
    if big_n is not None and n > big_n:
        raise ValueError(f"n ({n}) must not exceed population ({big_n})")
    bounded = bool(np.all(y <= x))
    top, big_x, big_y = 1.0 if bounded else math.inf, float(x.sum()), float(y.sum())
    if big_x == 0.0:
        if big_y > 0.0:
            raise ValueError(f"numerators sum to {big_y} but denominators sum to 0")
        why = "no observations" if n == 0 else "denominators sum to 0"
        return Estimate(math.nan, 0.0, top, conf, f"ratio ({why})", n)
    r = big_y / big_x
    if n == big_n:
        return Estimate(r, r, r, conf, "exact (full scan)", n)
    tags = ["linearization"] + ["skewness-corrected"] * skew_correction
    e_g, x_g = y - r * x, x
    if clusters is not None:
        labels = np.asarray(clusters)
        if labels.shape != y.shape:
            raise ValueError(f"clusters ({labels.size}) and numerators ({n}) differ in length")
        inverse = np.unique(labels, return_inverse=True)[1].reshape(-1)
        e_g = np.asarray(np.bincount(inverse, weights=e_g), dtype=np.float64)
        x_g = np.asarray(np.bincount(inverse, weights=x), dtype=np.float64)
        tags.append("cluster-robust")
    tags += ["finite population"] * (big_n is not None)
    g, fpc = int(e_g.size), 1.0 - n / big_n if big_n is not None else 1.0
    if g < 2:
        unit = "cluster" if clusters is not None else "record"
        return Estimate(r, 0.0, top, conf, f"ratio (variance not estimable: 1 {unit})", n)
    if big_y == 0.0 or (bounded and big_y == big_x):  # every residual is exactly 0
        up = _wilson(0.0, big_x * big_x / float(np.sum(x_g * x_g)) / fpc, z)[1]
        low, high = (0.0, up) if big_y == 0.0 else (1.0 - up, 1.0)
        return Estimate(r, low, high, conf, "ratio (degenerate variance: wilson with kish n)", n)
    se = math.sqrt(fpc * g / (g - 1) * float(np.sum(e_g * e_g))) / big_x
    a = _skewness(e_g) / math.sqrt(g) if skew_correction else 0.0
    low, high = max(0.0, r - se * _hall_inverse(z, a)), r - se * _hall_inverse(-z, a)
    return Estimate(r, low, min(1.0, high) if bounded else high, conf, f"ratio ({', '.join(tags)})", n)


def _skewness(values: FloatArray) -> float:
    d = values - values.mean()
    m2 = float(np.mean(d * d))
    return float(np.mean(d * d * d)) / m2**1.5 if m2 > 0.0 else 0.0


def _hall_inverse(q: float, a: float) -> float:
    """Invert Hall's monotone ``t + a t**2 / 3 + a**2 t**3 / 27 + a / 6`` (``a = skew / sqrt(G)``)."""
    if a == 0.0:
        return q
    v = 1.0 + a * (q - a / 6.0)
    return 3.0 / a * (math.copysign(abs(v) ** (1.0 / 3.0), v) - 1.0)


def difference(x1: int, n1: int, x2: int, n2: int, *, confidence: float = 0.95) -> Estimate:
    """Difference ``p1 - p2`` of independent proportions, Newcombe's hybrid score interval.

    Newcombe (1998) method 10: with Wilson bounds ``(l1, u1)``, ``(l2, u2)`` the
    interval is ``d - hypot(p1 - l1, u2 - p2)`` to ``d + hypot(u1 - p1, p2 - l2)``.
    Used for "reference match rate minus negative-control match rate".

    Args:
        x1: Successes in sample 1.
        n1: Size of sample 1.
        x2: Successes in sample 2.
        n2: Size of sample 2.
        confidence: Two-sided confidence level in (0, 1).

    Returns:
        The estimate with ``n = n1 + n2``; ``nan`` and (-1, 1) if a sample is empty.

    Raises:
        ValueError: On negative counts, ``x > n`` or ``confidence`` outside (0, 1).

    Example:
        >>> e = difference(56, 70, 48, 80)
        >>> (round(e.ci_low, 4), round(e.ci_high, 4))
        (0.0524, 0.3339)
    """
    a, b = proportion(x1, n1, confidence=confidence), proportion(x2, n2, confidence=confidence)
    conf, n, method = float(confidence), a.n + b.n, "newcombe hybrid score"
    if a.n == 0 or b.n == 0:
        return Estimate(math.nan, -1.0, 1.0, conf, f"{method} (no observations)", n)
    d = a.value - b.value
    low = d - math.hypot(a.value - a.ci_low, b.ci_high - b.value)
    high = d + math.hypot(a.ci_high - a.value, b.value - b.ci_low)
    return Estimate(d, max(-1.0, low), min(1.0, high), conf, method, n)
