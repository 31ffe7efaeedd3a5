"""What the CLI shows on a terminal while it runs: the progress line (done, total, percentage, rate and
ETA), and the notice that the compiled kernels are missing.

``progress_line`` is pure (tested); ``cli.stderr_progress`` calls it at most twice a second
with what the run loop reports (``results.Progress``): records done, input bytes read (files
and saved datasets, on disk) and the bytes of all inputs when every size is known.
"""

from __future__ import annotations

import os

from provaudit.gate.escape import terminal_safe

__all__ = ["fallback_notice", "human_bytes", "human_duration", "progress_line"]


def fallback_notice() -> str | None:
    """The line announcing that the compiled kernels were not installed (the numpy twins run), or None.

    ``PROVAUDIT_KERNELS=0`` (the numpy paths asked for) is not announced.
    """
    from provaudit.text import kernels

    if kernels.ENABLED or os.environ.get("PROVAUDIT_KERNELS") == "0":
        return None
    return (f"provaudit: compiled kernels unavailable ({kernels.UNAVAILABLE}); using the numpy fallback "
            "(same results, slower): reinstall provaudit where a C compiler works")


def human_bytes(n: float) -> str:
    """``532 B``, ``1.5 kB``, ``12.0 MB``, ``3.2 GB`` (powers of 1000)."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


def human_duration(seconds: float | None) -> str:
    """``42s``, ``3m05s``, ``2h07m``; ``?`` when unknown."""
    if seconds is None or seconds != seconds or seconds == float("inf"):
        return "?"
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def progress_line(where: str, records: int, done: int, total: int | None, elapsed: float, width: int = 100) -> str:
    """One status line: with a known ``total`` (bytes), percentage, bytes, rate and ETA; else the
    records and their rate. The source name is escaped for the terminal (control and bidi
    characters) and shortened from the left so that the line fits ``width`` columns.

    Example:
        >>> progress_line("data/a.jsonl", 12000, 50_000_000, 200_000_000, 10.0)
        ' 25.0% 50.0 MB of 200.0 MB, 5.0 MB/s, ETA 30s; 12,000 records (1,200/s) data/a.jsonl'
    """
    elapsed = max(elapsed, 1e-9)
    counted = f"{records:,} records ({records / elapsed:,.0f}/s)"
    heads = [counted]
    if total:
        rate = done / elapsed
        eta = (total - done) / rate if rate > 0 else None
        sized = (f"{100 * min(done / total, 1.0):5.1f}% {human_bytes(done)} of {human_bytes(total)}, "
                 f"{human_bytes(rate)}/s, ETA {human_duration(max(eta, 0.0) if eta is not None else None)}")
        heads = [f"{sized}; {counted}", sized]  # on a narrow terminal the record count gives way
    name = terminal_safe(where)
    for head in heads:
        room = width - 1 - len(head) - 1
        if room >= min(len(name), 20):
            break
    if len(name) > room:
        name = "..." + name[-max(room - 3, 1):]
    return f"{head} {name}"[: max(width - 1, 1)]
