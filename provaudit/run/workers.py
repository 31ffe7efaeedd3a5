"""One worker map for every run: index builds, training audits and model-output audits.

``WorkerMap(task, state, workers)`` runs ``task(state, *args)`` for every ``args`` of a
stream, in order, in this process or in forked workers (``run.pool.ForkPool``) that inherit
``state`` (loaded indexes, configurations) copy-on-write: it is set in a module global before
the fork, never pickled. At most ``2 * workers`` tasks are in flight, so memory stays bounded;
a ``Passthrough`` item comes out as it is, in its place (a marker such as "a new source
starts here"). Results are identical for any number of workers.

Example:
    >>> with WorkerMap(parse_and_evaluate, [engine], workers=2) as wm:  # doctest: +SKIP
    ...     for stats, results in wm.stream((reading.parse, block) for block in reading.blocks(spans=wm.parallel)):
    ...         merge(stats, results)
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Generic, TypeVar

from provaudit.run.pool import ForkPool, Passthrough, fork_available, run_task

S = TypeVar("S")
_TASK: list[tuple[Callable[..., Any], Any]] = []  # (task, state), set in the parent before forking workers


def _run_in_worker(*args: Any) -> Any:
    task, state = _TASK[0]
    return run_task(task, state, args)


def default_workers() -> int:
    """The cores this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


class WorkerMap(Generic[S]):
    """Maps ``task(state, *args)`` over a stream of ``args`` tuples, in order, here or in a fork pool.

    Args:
        task: A module-level function (workers find it by fork, results come back pickled).
        state: Its first argument, shared by every call.
        workers: Processes; 1 (or no ``fork`` on this platform) runs every task in this process.
    """

    def __init__(self, task: Callable[..., Any], state: S, workers: int = 1):
        self.task, self.state, self.workers = task, state, max(1, workers)
        self.pool: ForkPool | None = None

    def __enter__(self) -> WorkerMap[S]:
        if self.workers > 1 and fork_available():
            _TASK[:] = [(self.task, self.state)]
            try:
                self.pool = ForkPool(self.workers).__enter__()
            except BaseException:
                _TASK.clear()
                raise
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        pool, self.pool = self.pool, None
        try:
            if pool is not None:
                pool.__exit__(exc_type, *exc)
        finally:
            _TASK.clear()

    @property
    def parallel(self) -> bool:
        """Whether tasks run in worker processes."""
        return self.pool is not None

    def stream(self, items: Iterable[tuple[Any, ...] | Passthrough]) -> Iterator[Any]:
        """``task(state, *args)`` for every ``args`` of ``items``, in order; a ``Passthrough`` comes out as it is."""
        if self.pool is None:
            for item in items:
                yield item if isinstance(item, Passthrough) else run_task(self.task, self.state, item)
            return
        yield from self.pool.imap(_run_in_worker, items)
