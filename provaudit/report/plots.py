"""Plots as inline SVG strings: no script, no network, every label escaped.

Each plot is a ``<figure>`` with a caption and a text alternative, styled by the report's
stylesheet through classes (no inline styles: the page's Content-Security-Policy forbids them).

Example:
    >>> svg = histogram("Containment", [("0.5", 3), ("0.6", 0)], "pairs")
    >>> svg.startswith("<figure") and "<svg" in svg
    True
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from provaudit.report.common import html, pct

W, H = 560, 220
LEFT, BOTTOM, TOP = 48, 42, 14


def _nice(step: float) -> int:
    """The smallest of 1, 2, 2.5, 5 x 10^k (an integer) at least ``step``."""
    base = 1
    while True:
        for m in (1, 2, 2.5, 5):
            if m * base >= step and float(m * base).is_integer():
                return int(m * base)
        base *= 10


def _axis(ymax: int) -> list[str]:
    out = []
    for k in range(5):
        v = ymax * k / 4
        y = H - BOTTOM - (H - BOTTOM - TOP) * k / 4
        out.append(f'<line class="grid" x1="{LEFT}" x2="{W - 8}" y1="{y:.1f}" y2="{y:.1f}"/>'
                   f'<text class="tick" x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{v:,.0f}</text>')
    return out


def histogram(title: str, bins: Sequence[tuple[str, int]], unit: str, *, x_label: str = "") -> str:
    """A bar per bin; ``bins`` are (label, count)."""
    ymax = 4 * _nice(max([c for _, c in bins] + [1]) / 4)
    n = max(len(bins), 1)
    bw = (W - LEFT - 8) / n
    parts = _axis(ymax)
    for i, (label, count) in enumerate(bins):
        h = (H - BOTTOM - TOP) * count / ymax
        x = LEFT + i * bw
        parts.append(f'<rect class="bar" x="{x + 2:.1f}" y="{H - BOTTOM - h:.1f}" width="{max(bw - 4, 1):.1f}" '
                     f'height="{h:.1f}"><title>{html(label)}: {count:,} {html(unit)}</title></rect>')
        if n <= 12 or i % 2 == 0:
            parts.append(f'<text class="tick" x="{x + bw / 2:.1f}" y="{H - BOTTOM + 16}" text-anchor="middle">'
                         f'{html(label)}</text>')
    if x_label:
        parts.append(f'<text class="label" x="{(W + LEFT) / 2:.0f}" y="{H - 6}" text-anchor="middle">{html(x_label)}</text>')
    alt = "; ".join(f"{label}: {count}" for label, count in bins)
    return _figure(title, f"{title} ({unit} per bin): {alt}", parts, H)


def shares(title: str, rows: Sequence[tuple[str, dict[str, Any]]]) -> str:
    """One horizontal bar per row with its interval as a whisker; ``rows`` are (label, estimate dict)."""
    height = TOP + 26 * max(len(rows), 1) + 30
    left = 230
    top = max([e["ci_high"] if e.get("ci_high") is not None else (e.get("value") or 0) for _, e in rows] + [0.01])
    scale = (W - left - 60) / top
    parts = []
    for i, (label, e) in enumerate(rows):
        y = TOP + 26 * i
        v = e.get("value") or 0.0
        short = label if len(label) <= 34 else "…" + label[-33:]
        parts.append(f'<text class="tick" x="{left - 6}" y="{y + 14}" text-anchor="end">{html(short)}</text>'
                     f'<rect class="bar" x="{left}" y="{y + 3}" width="{max(v * scale, 1):.1f}" height="16">'
                     f'<title>{html(label)}: {pct(v)}</title></rect>'
                     f'<text class="tick" x="{left + v * scale + 6:.1f}" y="{y + 15}">{pct(v)}</text>')
        lo, hi = e.get("ci_low"), e.get("ci_high")
        if lo is not None and hi is not None and hi > lo:
            parts.append(f'<line class="whisker" x1="{left + lo * scale:.1f}" x2="{left + hi * scale:.1f}" '
                         f'y1="{y + 11}" y2="{y + 11}"/>')
    alt = "; ".join(f"{label}: {pct(e.get('value'))}" for label, e in rows)
    return _figure(title, f"{title}: {alt}", parts, height)


def _figure(title: str, alt: str, parts: list[str], height: float) -> str:
    return (f'<figure class="plot"><svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {height:.0f}" '
            f'role="img" aria-label="{html(alt)}">{"".join(parts)}</svg>'
            f'<figcaption>{html(title)}</figcaption></figure>')


def bins_of(values: Sequence[float], edges: Sequence[float], fmt: str = "{:.2f}") -> list[tuple[str, int]]:
    """Counts of ``values`` in ``[edges[i], edges[i+1])`` (the last bin includes its upper edge)."""
    counts = [0] * (len(edges) - 1)
    for v in values:
        for i in range(len(edges) - 1):
            if edges[i] <= v < edges[i + 1] or (i == len(edges) - 2 and v == edges[-1]):
                counts[i] += 1
                break
    return [(fmt.format(edges[i]), c) for i, c in enumerate(counts)]


def int_bins(values: Sequence[int], width: int | None = None, count: int = 12) -> list[tuple[str, int]]:
    """Counts of integer ``values`` in equal bins from the smallest (labels: bin starts)."""
    if not values:
        return []
    lo, hi = min(values), max(values)
    width = width or max(1, -(-(hi - lo + 1) // count))
    counts: dict[int, int] = {}
    for v in values:
        b = lo + (v - lo) // width * width
        counts[b] = counts.get(b, 0) + 1
    return [(f"{b}", counts.get(b, 0)) for b in range(lo, hi + 1, width)]
