"""Key-range partitioned anchor lookups on Ray (``--engine ray --partitions P``, issue #11 item 4).

``PartitionedRayMap`` is a ``RayMap`` that, once Ray is up, starts P long-lived *range actors*
per index of the run (``RangeActor``): range actor p opens the index as the task actors do (by
location and manifest checksum, memory-mapped) and only ever looks up keys of partition p
(``index.partition``: keys ``[b[p], b[p + 1])``, one row range of each sorted anchor table; the
boundaries are placed at quantiles of the anchor tables' rows, ``balanced_boundaries``, so that
each range holds about 1/P of them), so on a cluster its node holds only those rows' pages. The
task actors get engines whose anchor search is ``match.partitioned.PartitionedAnchors`` over a
``RangeClient``: a task shingles its block, sends each range actor only the batch's shingles of
its range (with a count of them per record), gets back per segment the partial ``(code, count)``
of ``candidates.anchor_counts`` (packed, ``match.partitioned.pack``: 5 bytes a pair), sums them
and goes on (acceptance, LSH bands, verification) as without partitions. Every target shingle is
looked up once, in one range.

Range actors take no CPU of their own (``num_cpus=0``: they serve the task actors, which wait for
them) and are spread over the nodes (``SPREAD``). A killed range actor is restarted by Ray and its
pending lookups rerun (``MAX_RETRIES``), as for the task actors; past that the run fails with
``WorkerDied`` and writes nothing. They are killed when the map closes (and, as actors the driver
owns, die with the driver). When a run succeeds, each range actor's counters (lookups, calls,
bytes received and returned, seconds spent answering, its key range and its row range of each
segment's anchor table) are logged on this module's logger, with ``extra={"range_stats": [...]}``
(``scripts/bench_partitions.py`` and ``tests/ray_partitions.py`` read them).
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from provaudit.errors import ConfigError, ProvauditError
from provaudit.index.partition import balanced_boundaries, row_range
from provaudit.match.engine import Engine
from provaudit.match.partitioned import Packed, Partial, PartitionedAnchors, pack, range_counts, unpack
from provaudit.run.ray_engine import MAX_RETRIES, RayMap, S, import_ray, pack_state, unpack_state

logger = logging.getLogger(__name__)


class RangeStats(logging.Handler):
    """Collects the range actors' counters this module's logger reports when a run succeeds (``got``: one
    list of per-range dicts per run); add it to ``logger`` (scripts/bench_partitions.py, the Ray tests)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.got: list[Any] = []

    def emit(self, record: logging.LogRecord) -> None:
        if hasattr(record, "range_stats"):
            self.got.append(record.range_stats)


class RangeActor:
    """One key range of one index: answers ``range_counts`` for keys of that range only (made a Ray
    actor by ``PartitionedRayMap``)."""

    def __init__(self, packed_index: bytes, partition: int, lo: int, hi: int, max_postings: int):
        self.index = unpack_state(packed_index)  # reopened by location, checked against its checksum
        self.partition, self.lo, self.hi, self.max_postings = partition, lo, hi, max_postings
        self.rows = [row_range(seg.anchor_table, lo, hi) for seg in self.index.segments]
        self.lookups = self.calls = self.bytes_in = self.bytes_out = 0
        self.seconds = 0.0

    def counts(self, hashes: np.ndarray, per_record: np.ndarray) -> Packed:
        """Per segment, the partial ``(code, count)`` of the hits of ``hashes`` (in record order;
        ``per_record[r]`` of them are record r's), packed (``match.partitioned.pack``: 5 bytes a pair)."""
        t0 = time.perf_counter()
        h = np.asarray(hashes, np.uint64)
        recs = np.repeat(np.arange(len(per_record), dtype=np.int64), np.asarray(per_record, np.int64))
        if len(recs) != len(h):
            raise ProvauditError(f"range actor {self.partition} was sent {len(h)} keys for {len(recs)} records' keys")
        if len(h) and (int(h.min()) < self.lo or int(h.max()) >= self.hi):
            raise ProvauditError(f"range actor {self.partition} was sent keys outside its range")
        partial, n = range_counts(self.index, self.max_postings, h, recs)
        out = pack(partial, [len(seg) for seg in self.index.segments])
        self.calls += 1
        self.lookups += n
        self.bytes_in += h.nbytes + per_record.nbytes
        self.bytes_out += sum(a.nbytes + b.nbytes + c.nbytes for a, b, c in out)
        self.seconds += time.perf_counter() - t0
        return out

    def stats(self) -> dict[str, Any]:
        """Counters since the actor (last) started, and its row range of each segment's anchor table."""
        return {"partition": self.partition, "keys": [self.lo, self.hi], "lookups": self.lookups, "calls": self.calls,
                "bytes_in": self.bytes_in, "bytes_out": self.bytes_out, "seconds": self.seconds, "rows": self.rows,
                "table_rows": [len(seg.anchor_table) for seg in self.index.segments]}

    def pid(self) -> int:
        return os.getpid()


class RangeClient:
    """``match.partitioned.RangeLookup`` over range actors: all the batch's partitions asked at once."""

    def __init__(self, actors: list[Any], n_items: list[int]):
        self.actors = actors  # Ray actor handles: pickled with the state, usable in the task actors
        self.n_items = n_items  # items of each segment of the index (to unpack the answers)

    def __call__(self, parts: list[int], hashes: list[np.ndarray], recs: list[np.ndarray]) -> list[Partial]:
        ray = import_ray()
        refs = [self.actors[p].counts.remote(h, np.bincount(r).astype(np.uint32))  # records in order: a count each
                for p, h, r in zip(parts, hashes, recs)]
        return [unpack(packed, self.n_items) for packed in RayMap._get(ray, refs)]


def with_engines(state: Any, attach: Callable[[Engine], Engine]) -> Any:
    """``state`` with each of its engines replaced by ``attach(engine)``: a training audit's list of
    engines, or a model-output audit's ``SampleCheck`` (a dataclass with an ``engine``)."""
    if isinstance(state, list) and state and all(isinstance(e, Engine) for e in state):
        return [attach(e) for e in state]
    engine = getattr(state, "engine", None)
    if dataclasses.is_dataclass(state) and not isinstance(state, type) and isinstance(engine, Engine):
        return dataclasses.replace(state, engine=attach(engine))
    raise ConfigError("--partitions applies to audits only (their anchor lookups are what it partitions)")


class PartitionedRayMap(RayMap[S]):
    """``RayMap`` whose tasks look anchors up through P range actors per index (module docstring)."""

    def __init__(self, task: Callable[..., Any], state: S, workers: int | None = None, address: str | None = None,
                 max_retries: int = MAX_RETRIES, *, partitions: int):
        super().__init__(task, state, workers, address, max_retries)
        self.partitions = partitions
        self.ranges: list[Any] = []

    def _actor_state(self, ray: Any, packed: bytes) -> bytes:
        actor = ray.remote(num_cpus=0, max_restarts=self.max_retries, max_task_retries=self.max_retries,
                           scheduling_strategy="SPREAD")(RangeActor)

        def attach(engine: Engine) -> Engine:
            index = pack_state(engine.index)
            b = balanced_boundaries([seg.anchor_table for seg in engine.index.segments], self.partitions)
            handles = [actor.remote(index, p, b[p], b[p + 1], engine.plan.max_postings)
                       for p in range(self.partitions)]
            self.ranges.extend(handles)
            out = copy.copy(engine)
            out.anchors = PartitionedAnchors(b, RangeClient(handles, [len(seg) for seg in engine.index.segments]))
            return out

        state = with_engines(self.state, attach)
        self._get(ray, [a.pid.remote() for a in self.ranges])  # every range actor up, its index open
        return pack_state(state)

    def range_pids(self) -> list[int]:
        """The range actors' process ids (for tests that kill one)."""
        return list(self._get(import_ray(), [a.pid.remote() for a in self.ranges]))

    def __exit__(self, exc_type: object, *exc: object) -> None:
        ranges, self.ranges = self.ranges, []
        try:
            ray = import_ray()
            if exc_type is None and ranges:
                try:
                    stats = list(self._get(ray, [a.stats.remote() for a in ranges]))
                    logger.info("range lookups: %s", [s["lookups"] for s in stats], extra={"range_stats": stats})
                except ProvauditError as e:  # the run's output is complete: its figures are not worth failing it
                    logger.warning("range actors' counters not collected: %s", e)
            for a in ranges:
                ray.kill(a, no_restart=True)
        finally:
            super().__exit__(exc_type, *exc)


__all__ = ["PartitionedRayMap", "RangeActor", "RangeClient", "with_engines"]
