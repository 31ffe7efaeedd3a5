"""What the CLI shows on a terminal while it runs: the progress line (done, total, percentage, rate and
ETA), and the notice that the compiled kernels are missing.

``progress_line`` and ``task_line`` are pure (tested); ``StatusLine`` (made by
``cli.stderr_progress``) redraws one of them at most twice a second with what the run loop
reports (``results.Progress``): records done, input bytes read (files and saved datasets, on
disk), the bytes of all inputs when every size is known, and on Ray the tasks done of those
submitted (``results.TaskCount``): ``task_line``.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable

from provaudit.gate.escape import terminal_safe
from provaudit.results import TaskCount

__all__ = ["StatusLine", "fallback_notice", "human_bytes", "human_duration", "progress_line", "task_line"]


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
    return _fit(heads, where, width)


def task_line(where: str, tasks: TaskCount, records: int, done: int, total: int | None, elapsed: float,
              width: int = 100) -> str:
    """The line of a run on Ray: tasks done of those submitted (``52+`` while the driver is still cutting
    the inputs into tasks), records and their rate, and the ETA: from the task rate once every task
    is submitted, else from the input bytes (``done`` of ``total``), else unknown.

    Example:
        >>> task_line("s3://b/a.jsonl", TaskCount(37, 52, True), 12000, 0, None, 10.0)
        ' 37/52 tasks, 12,000 records (1,200/s), ETA 4s s3://b/a.jsonl'
    """
    elapsed = max(elapsed, 1e-9)
    eta: float | None = None
    if tasks.complete and tasks.done:
        eta = (tasks.total - tasks.done) * elapsed / tasks.done
    elif total and done:
        eta = (total - done) * elapsed / done
    counted = f"{tasks.done:>3}/{tasks.total}{'' if tasks.complete else '+'} tasks"
    head = f"{counted}, {records:,} records ({records / elapsed:,.0f}/s), ETA {human_duration(eta)}"
    return _fit([head, f"{counted}, ETA {human_duration(eta)}"], where, width)


def _fit(heads: list[str], where: str, width: int) -> str:
    """The first head that leaves room for the source name (escaped, shortened from the left), and the name."""
    name = terminal_safe(where)
    for head in heads:
        room = width - 1 - len(head) - 1
        if room >= min(len(name), 20):
            break
    if len(name) > room:
        name = "..." + name[-max(room - 3, 1):]
    return f"{head} {name}"[: max(width - 1, 1)]


class StatusLine:
    """A ``results.Progress`` redrawing one status line (carriage return, the line, erase to its end) through
    ``write``, at most once per ``every`` seconds of ``clock``: ``task_line`` when the engine counts
    tasks (Ray), else ``progress_line``.

    Example:
        >>> line = StatusLine(print, clock=lambda: 0.0, width=lambda: 60)
        >>> line("a.jsonl", 10, 5, 10)  # doctest: +SKIP
    """

    def __init__(self, write: Callable[[str], object], clock: Callable[[], float] = time.monotonic,
                 width: Callable[[], int] = lambda: shutil.get_terminal_size().columns, every: float = 0.5):
        self.write, self.clock, self.width, self.every = write, clock, width, every
        self.start = clock()
        self.last: float | None = None

    def __call__(self, where: str, records: int, done: int = 0, total: int | None = None,
                 tasks: TaskCount | None = None, /) -> None:
        now = self.clock()
        if self.last is not None and now - self.last < self.every:
            return
        self.last = now
        if tasks is not None:
            line = task_line(where, tasks, records, done, total, now - self.start, self.width())
        else:
            line = progress_line(where, records, done, total, now - self.start, self.width())
        self.write(f"\r{line}\x1b[K")
