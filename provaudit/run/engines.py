"""Where a run's tasks run: ``local`` (this machine: this process or forked workers) or ``ray``
(a Ray cluster). Both take the same tasks and give their results in the same order, so a run's
outputs do not depend on the engine.

Example:
    >>> with worker_map(parse_and_evaluate, engines, RunEngine("ray", workers=4)) as wm:  # doctest: +SKIP
    ...     parts = run_sources(wm, sources, read, job)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
import importlib.util
from dataclasses import dataclass
from typing import Any, Protocol

from provaudit.errors import ConfigError
from provaudit.index.partition import check_partitions
from provaudit.run.pool import Passthrough
from provaudit.run.ray_ranges import PartitionedRayMap
from provaudit.run.ray_engine import RAY_HINT, RayMap
from provaudit.run.workers import WorkerMap, default_workers

ENGINES = ("local", "ray")


class TaskMap(Protocol):
    """What ``run.loop.run_sources`` needs of a worker map (``WorkerMap``, ``ray_engine.RayMap``)."""

    def __enter__(self) -> Any: ...
    def __exit__(self, exc_type: object, *exc: object) -> None: ...
    @property
    def parallel(self) -> bool: ...
    def stream(self, items: Iterable[tuple[Any, ...] | Passthrough]) -> Iterator[Any]: ...


@dataclass(frozen=True, slots=True)
class RunEngine:
    """The engine of a run.

    Raises:
        ConfigError: on an unknown engine, or ``ray`` when Ray is not installed (with the install hint).

    Attributes:
        kind: ``local`` or ``ray``.
        workers: Processes (local) or Ray actors; None: every core here (local) or every CPU of
            the cluster (ray).
        address: Ray only: ``auto``, ``HOST:PORT`` or ``ray://HOST:PORT`` of a running cluster;
            None starts a local Ray instance for the run.
        partitions: Ray audits only: P range actors each own one key range of the index and answer
            the anchor lookups of their keys (``run.ray_ranges``); None: every task looks up its
            own keys (index builds ignore it: they look nothing up).
    """

    kind: str = "local"
    workers: int | None = None
    address: str | None = None
    partitions: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in ENGINES:
            raise ConfigError(f"engine must be one of {', '.join(ENGINES)}, got {self.kind!r}")
        if self.workers is not None and self.workers < 1:
            raise ConfigError(f"workers must be >= 1, got {self.workers}")
        if self.address is not None and self.kind != "ray":
            raise ConfigError("--ray-address needs --engine ray")
        if self.partitions is not None:
            if self.kind != "ray":
                raise ConfigError("--partitions needs --engine ray (the range actors are Ray actors)")
            check_partitions(self.partitions)
        if self.kind == "ray" and importlib.util.find_spec("ray") is None:
            raise ConfigError(RAY_HINT)


def worker_map(task: Callable[..., Any], state: Any, engine: RunEngine | None = None) -> TaskMap:
    """A worker map running ``task(state, *args)`` on ``engine`` (default: local, every core)."""
    engine = engine or RunEngine()
    if engine.kind == "ray" and engine.partitions is not None:
        return PartitionedRayMap(task, state, engine.workers, engine.address, partitions=engine.partitions)
    if engine.kind == "ray":
        return RayMap(task, state, engine.workers, engine.address)
    return WorkerMap(task, state, engine.workers or default_workers())


__all__ = ["ENGINES", "RunEngine", "TaskMap", "worker_map"]
