"""An ordered, bounded map over forked worker processes, where a dead worker is an error, not a hang.

``multiprocessing.Pool`` waits forever for the result of a task whose worker was killed
(the out-of-memory killer, ``kill -9``): an audit in a CI job would hang until its timeout.
``concurrent.futures.ProcessPoolExecutor`` notices the death and fails the pending tasks;
``ForkPool`` turns that into ``WorkerDied`` (a ProvauditError: exit 1, nothing written).

Workers are forked once, when the pool is entered, so that they inherit what the parent
loaded (indexes, configurations) copy-on-write, and before the parent starts any thread.
A worker never outlives its parent: on Linux the kernel sends it SIGKILL when the parent
dies (``prctl(PR_SET_PDEATHSIG)``), and everywhere a daemon thread in the worker sees the
parent change (``os.getppid()``) within ``PARENT_POLL`` seconds and ends the worker, so a
parent killed by SIGKILL (the out-of-memory killer) or SIGTERM leaves no worker behind.

Example:
    >>> with ForkPool(2) as pool:  # doctest: +SKIP
    ...     for result in pool.imap(work, ((block,) for block in blocks)):
    ...         merge(result)
"""

from __future__ import annotations

import ctypes
import gc
import multiprocessing
import os
import signal
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from provaudit.errors import ProvauditError


class Passthrough:
    """An item of ``ForkPool.imap``'s input that is not run: it comes out as it is, in its place
    among the results (a marker such as "a new source starts here")."""

    __slots__ = ("value",)

    def __init__(self, value: Any):
        self.value = value


class WorkerDied(ProvauditError):
    """A worker process ended abruptly (killed, out of memory). CLI: exit 1, nothing written."""


PARENT_POLL = 0.5  # seconds between a worker's checks that its parent is alive
_PR_SET_PDEATHSIG = 1


def _watch_parent(parent: int) -> None:
    """Worker initializer: end this worker when process ``parent`` ends."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            pass  # the polling thread below still ends the worker
    if os.getppid() != parent:  # the parent died before the signal was armed
        os._exit(1)
    threading.Thread(target=_poll_parent, args=(parent,), name="provaudit-parent-watch", daemon=True).start()


def _poll_parent(parent: int) -> None:
    while os.getppid() == parent:
        threading.Event().wait(PARENT_POLL)
    os._exit(1)


class Composite:
    """A task argument that runs the task itself (several tasks at once): ``run_task`` hands it the task."""

    __slots__ = ()

    def run(self, task: Callable[..., Any], state: Any) -> Any:
        raise NotImplementedError


class Bundle(Composite):
    """Several tasks' arguments run as one task (one round trip to a worker instead of one per
    task); the result is the list of their results, in order."""

    __slots__ = ("tasks",)

    def __init__(self, tasks: list[tuple[Any, ...]]):
        self.tasks = tasks

    def run(self, task: Callable[..., Any], state: Any) -> list[Any]:
        return [task(state, *a) for a in self.tasks]


def run_task(task: Callable[..., Any], state: Any, args: tuple[Any, ...]) -> Any:
    """``task(state, *args)``, or what a ``Composite`` argument (``Bundle``, ``run.small.SmallFiles``) makes of it."""
    if len(args) == 1 and isinstance(args[0], Composite):
        return args[0].run(task, state)
    return task(state, *args)


def _ready() -> None:
    """A task that only proves a worker is up."""


def fork_available() -> bool:
    return "fork" in multiprocessing.get_all_start_methods()


class ForkPool:
    """``workers`` forked processes; ``imap`` keeps at most ``2 * workers`` tasks in flight."""

    def __init__(self, workers: int):
        self.workers = workers
        self.executor: ProcessPoolExecutor | None = None

    def __enter__(self) -> ForkPool:
        gc.freeze()  # the parent's objects stay out of the workers' collections: fewer copy-on-write pages
        try:
            self.executor = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("fork"),
                                                initializer=_watch_parent, initargs=(os.getpid(),))
            for f in [self.executor.submit(_ready) for _ in range(self.workers)]:  # fork every worker now
                f.result()
        except BaseException as e:
            self.__exit__(type(e), e, None)
            gc.unfreeze()
            raise
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        ex, self.executor = self.executor, None
        if ex is None:
            return
        try:
            if exc_type is not None:  # error or interrupt: do not wait for queued work
                for p in list(getattr(ex, "_processes", {}).values()):
                    p.kill()
            ex.shutdown(wait=True, cancel_futures=exc_type is not None)
        finally:
            gc.unfreeze()

    def imap(self, fn: Callable[..., Any], tasks: Iterable[tuple[Any, ...] | Passthrough]) -> Iterator[Any]:
        """``fn(*args)`` for every ``args`` of ``tasks``, in order (a ``Passthrough`` comes out as it is).

        An input error raised while producing the next task is raised after the results of
        the tasks before it were collected (one of them may hold an earlier error).

        Raises:
            WorkerDied: if a worker process ended without returning its result.
        """
        assert self.executor is not None, "use ForkPool in a with block"
        pending: deque[Future[Any]] = deque()
        it = iter(tasks)
        try:
            while True:
                try:
                    args = next(it)
                except StopIteration:
                    break
                except ProvauditError:
                    for f in pending:  # input before the problem first
                        f.result()
                    raise
                if isinstance(args, Passthrough):
                    done: Future[Any] = Future()
                    done.set_result(args)
                    pending.append(done)
                    continue
                pending.append(self.executor.submit(fn, *args))
                if len(pending) >= 2 * self.workers:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        except BrokenProcessPool as e:
            raise WorkerDied(
                "a worker process ended abruptly (killed, or out of memory: see `dmesg`); nothing was written. "
                "Run again, with fewer --workers if memory is short"
            ) from e
