"""The worker map on a Ray cluster: the same tasks, in the same order, as ``run.workers.WorkerMap``.

``RayMap(task, state, workers, address)`` has ``WorkerMap``'s contract: ``stream(items)`` runs
``task(state, *args)`` for every ``args`` and yields the results in input order (a
``Passthrough`` comes out as it is). Since the tasks, their inputs and the order in which the
driver merges their results are those of a local run, the outputs are identical by construction.

How it runs:

- ``workers`` Ray actors (one CPU each) receive ``state`` once, when they start. ``state`` is
  pickled with every loaded index (``index.format.Index``) replaced by its location (path or
  URL) and manifest checksum (``pack_state``): an actor reopens the index from that path (an
  index named by URL: from its node's cached copy, ``index.remote``), memory-mapped, and
  checks that it is the same index, so the actors of a node share its pages through the page
  cache, and an index is never copied through the object store.
- Each task goes to the actor with the fewest tasks in flight; at most ``2 * workers`` are in
  flight, so the driver's memory (and the object store's) stays bounded.
- A killed actor process (preemption, out of memory, ``kill -9``) is restarted by Ray, which
  reruns its pending tasks (``max_restarts``/``max_task_retries``); tasks are pure functions of
  their inputs, so a rerun gives the same result. When the retries are used up the run fails
  with ``WorkerDied`` and writes nothing.
- Without ``address`` a local Ray instance is started for the run (``workers`` CPUs, no
  dashboard, no usage statistics, warnings only) and stopped after it; with ``auto``,
  ``HOST:PORT`` or ``ray://HOST:PORT`` the driver connects to that cluster (``workers``
  defaults to its CPUs) and disconnects after the run.

Inputs given as local paths are read by the actors from the same path (a line span, a Parquet
row group): on a cluster of several machines they must be on storage every node mounts. Inputs
given as URLs (``s3://``, ``gs://``) are read by each actor from the object store (its byte
range or row group, ``fs.urls``), with the S3 settings of the actor's own environment.
``RayMap.tasks`` counts the tasks submitted and taken, for the driver's progress line.
"""

from __future__ import annotations

import io
import logging
import os
import pickle
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, Generic, TypeVar

from provaudit.errors import ConfigError, IndexFormatError, ProvauditError
from provaudit.index.format import Index, manifest_checksum
from provaudit.index.remote import open_index
from provaudit.results import TaskCount
from provaudit.run.pool import Passthrough, WorkerDied, run_task

S = TypeVar("S")
RAY_HINT = "--engine ray needs Ray, which is not installed: pip install 'provaudit[ray]'"
MAX_RETRIES = 3  # restarts of an actor, and reruns of its pending tasks, before the run fails


def import_ray() -> Any:
    """The ``ray`` module, imported on first use.

    Raises:
        ConfigError: if Ray is not installed (CLI: usage error, exit 2, with the install hint).
    """
    try:
        import ray
    except ImportError as e:
        raise ConfigError(f"{RAY_HINT} (cannot import ray: {e})") from e
    return ray


class _Pickler(pickle.Pickler):
    def persistent_id(self, obj: Any) -> Any:
        if isinstance(obj, Index):
            return ("provaudit-index", obj.location, obj.manifest["manifest_checksum"])
        return None


class _Unpickler(pickle.Unpickler):
    def persistent_load(self, pid: Any) -> Any:
        kind, path, checksum = pid
        if kind != "provaudit-index":
            raise pickle.UnpicklingError(f"unknown persistent id {kind!r}")
        index = open_index(path)  # a URL: this node's cached copy
        if manifest_checksum(index.manifest) != checksum:
            raise IndexFormatError(f"{path}: on this node, not the index the run was started with "
                                   "(every node must see the same index at the same path)")
        return index


def pack_state(state: Any) -> bytes:
    """``state`` pickled with each ``Index`` as a reference (path and manifest checksum)."""
    buf = io.BytesIO()
    _Pickler(buf, protocol=pickle.HIGHEST_PROTOCOL).dump(state)
    return buf.getvalue()


def unpack_state(data: bytes) -> Any:
    """``pack_state``'s state, each index reopened (memory-mapped) and checked against its checksum."""
    return _Unpickler(io.BytesIO(data)).load()


class TaskActor:
    """One Ray actor: holds the run's state, runs tasks on it (made a Ray actor by ``RayMap``)."""

    def __init__(self, task: Callable[..., Any], packed: bytes):
        self.task, self.state = task, unpack_state(packed)

    def run(self, *args: Any) -> Any:
        return run_task(self.task, self.state, args)

    def pid(self) -> int:
        return os.getpid()


def start_ray(address: str | None, workers: int | None) -> bool:
    """Connect to the cluster at ``address``, or start a local instance (``workers`` CPUs);
    False if this process was already connected (it then stays so after the run)."""
    ray = import_ray()
    if ray.is_initialized():
        return False
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no network calls home
    quiet: dict[str, Any] = {"logging_level": logging.ERROR, "log_to_driver": False, "configure_logging": True}
    try:
        if address:
            ray.init(address=address, **quiet)
        else:
            ray.init(num_cpus=workers, include_dashboard=False, **quiet)
    except (ConnectionError, RuntimeError, ValueError) as e:
        raise ProvauditError(f"cannot start or reach Ray{f' at {address}' if address else ''}: {e}") from e
    return True


class RayMap(Generic[S]):
    """Maps ``task(state, *args)`` over a stream of ``args`` tuples on Ray actors, in order.

    Args:
        task: A module-level function (actors import it by name).
        state: Its first argument: picklable once indexes are replaced by references (``pack_state``).
        workers: Actors (one CPU each); None: every CPU of the cluster.
        address: A Ray cluster (``auto``, ``HOST:PORT``, ``ray://HOST:PORT``); None: a local instance.
        max_retries: Restarts of a killed actor and reruns of its pending tasks.
    """

    def __init__(self, task: Callable[..., Any], state: S, workers: int | None = None, address: str | None = None,
                 max_retries: int = MAX_RETRIES):
        self.task, self.state, self.workers, self.address = task, state, workers, address
        self.max_retries = max_retries
        self.actors: list[Any] = []
        self.owns_ray = False
        self.tasks = TaskCount()  # of the current ``stream``: what the driver's progress line shows

    def __enter__(self) -> RayMap[S]:
        packed = pack_state(self.state)  # fails early, here, if the state cannot be shipped
        self.owns_ray = start_ray(self.address, self.workers)
        try:
            ray = import_ray()
            packed = self._actor_state(ray, packed)
            n = self.workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
            actor = ray.remote(num_cpus=1, max_restarts=self.max_retries,
                               max_task_retries=self.max_retries)(TaskActor)
            self.actors = [actor.remote(self.task, packed) for _ in range(n)]  # small: indexes are references
            self._get(ray, [a.pid.remote() for a in self.actors])  # every actor up, its state loaded
        except BaseException as e:
            self.__exit__(type(e), e, None)
            raise
        return self

    def _actor_state(self, ray: Any, packed: bytes) -> bytes:
        """The packed state the actors start with, once Ray is up (``ray_ranges.PartitionedRayMap``
        starts its range actors here and ships their handles with the state)."""
        return packed

    def __exit__(self, exc_type: object, *exc: object) -> None:
        ray = import_ray()
        actors, self.actors = self.actors, []
        try:
            for a in actors:
                ray.kill(a, no_restart=True)
        finally:
            if self.owns_ray:
                self.owns_ray = False
                ray.shutdown()

    @property
    def parallel(self) -> bool:
        """Tasks run in other processes (line files are cut into spans that the actors read)."""
        return True

    def pids(self) -> list[int]:
        """The actors' process ids (for tests that kill one)."""
        ray = import_ray()
        return list(self._get(ray, [a.pid.remote() for a in self.actors]))

    @staticmethod
    def _get(ray: Any, refs: Any) -> Any:
        """``ray.get``, with a task's own error raised as it is and a lost actor as ``WorkerDied``."""
        try:
            return ray.get(refs)
        except ray.exceptions.RayTaskError as e:
            cause = getattr(e, "cause", None)
            if isinstance(cause, BaseException):
                raise cause from None
            raise ProvauditError(f"a Ray task failed: {e}") from e
        except ray.exceptions.RayActorError as e:
            raise WorkerDied("a Ray worker was lost more times than it could be restarted (killed, out of memory, "
                             "or its node left the cluster); nothing was written. Run again") from e

    def stream(self, items: Iterable[tuple[Any, ...] | Passthrough]) -> Iterator[Any]:
        """``task(state, *args)`` for every ``args`` of ``items``, in order; a ``Passthrough`` comes out as it is.
        ``self.tasks`` counts the tasks submitted and taken (``TaskCount``), for the progress line.

        An input error raised while producing the next task is raised after the results of
        the tasks before it were collected (one of them may hold an earlier error).
        """
        assert self.actors, "use RayMap in a with block"
        ray = import_ray()
        load = [0] * len(self.actors)
        pending: deque[tuple[int, Any]] = deque()  # (actor, ObjectRef), or (-1, Passthrough)
        limit = 2 * len(self.actors)

        tasks = self.tasks = TaskCount()

        def take() -> Any:
            who, ref = pending.popleft()
            if who < 0:
                return ref
            load[who] -= 1
            out = self._get(ray, ref)
            tasks.done += 1
            return out

        it = iter(items)
        while True:
            try:
                args = next(it)
            except StopIteration:
                tasks.complete = True
                break
            except ProvauditError:
                while pending:  # input before the problem first
                    take()
                raise
            if isinstance(args, Passthrough):
                pending.append((-1, args))
                continue
            who = min(range(len(load)), key=load.__getitem__)
            load[who] += 1
            pending.append((who, self.actors[who].run.remote(*args)))
            tasks.total += 1
            while sum(load) >= limit:
                yield take()
        while pending:
            yield take()
