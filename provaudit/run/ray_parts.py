"""The index build on a Ray cluster: tasks write parts of the index, the driver merges them.

``PartMap`` has a worker map's contract (``run.engines.TaskMap``) for ``run.loop.run_sources``: it
takes the build's stream of block tasks (``index.build.prepare_parsed``) in input order, cuts it
into runs of ``TASKS_PER_PART`` consecutive tasks (markers between them stay on the driver, in
their places), and runs each run as one Ray task, ``build_part``: it reads, parses, shingles,
signs and anchors the blocks (``prepare_parsed``, as a local worker does, then the signing the
local driver does) and writes them as a part (``index.parts``) with ``IndexWriter`` into
``parts_dir``, a temporary directory next to the output (on a cluster: on storage every node
mounts). It returns each block's ``ReadStats`` and a ``PartSlice`` instead of its prepared
items, so only counts travel through Ray's object store; ``part_index_job`` then has the driver
add the parts to the index in input order (``index.parts.PartMerger``): no item is signed or
anchored on the driver, and the index is byte for byte the one the local engine writes.

A task is a pure function of its blocks: a rerun (Ray retries the tasks of a killed actor) writes
a new part under a new name, and only the part whose slices came back is merged; ``parts_dir``
(with any part of a lost attempt) is deleted when the build ends, finished or not.
"""

from __future__ import annotations

import dataclasses
import functools
import shutil
import tempfile
import uuid
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from provaudit.config import IndexConfig, ReadOptions
from provaudit.errors import ProvauditError
from provaudit.index.build import IndexWriter, Prepared, prepare_parsed
from provaudit.index.parts import PartList, PartMerger, PartSlice, keep_segments
from provaudit.results import Progress, SourceResult, TaskCount
from provaudit.read.records import Source
from provaudit.run.engines import RunEngine
from provaudit.run.loop import Job, run_sources
from provaudit.run.pool import Passthrough, run_task
from provaudit.run.ray_engine import RayMap
from provaudit.run.small import FilesRead

TASKS_PER_PART = 16  # block tasks (1 MiB of JSON lines each, a Parquet row group...) written as one part


@dataclass(frozen=True, slots=True)
class PartState:
    """What every ``build_part`` task needs: the index parameters and where parts go."""

    config: IndexConfig
    parts_dir: str


def build_part(state: PartState, tasks: list[tuple[Any, ...]]) -> list[Any]:
    """Run the block tasks ``tasks`` (``prepare_parsed``'s arguments) and write their items as one part.

    Returns each task's output with its prepared items replaced by a ``PartSlice`` of the part:
    ``(ReadStats, [PartSlice])`` for a block, a ``FilesRead`` whose ``whole`` is a ``PartSlice``
    (or None) for small files.
    """
    config = state.config
    dest = Path(state.parts_dir) / f"part-{uuid.uuid4().hex}"  # a rerun writes its own part
    writer = IndexWriter(dest, config, check_ids=False)
    try:
        outs: list[Any] = []
        for args in tasks:
            out = run_task(prepare_parsed, config, args)
            if isinstance(out, FilesRead):
                names = [s.name for s in args[0].sources]  # a SmallFiles task: its files' records, in order
                sources = [n for n, k in zip(names, out.records or []) for _ in range(k)]
                if out.whole is not None:
                    ends = np.cumsum(np.asarray(out.records or [], np.int64))
                    tokens = np.concatenate([[0], np.cumsum(out.whole[3].n_tokens, dtype=np.int64)])
                    sl = _write(writer, str(dest), [out.whole], sources)
                    out.whole = dataclasses.replace(sl, file_tokens=tuple(np.diff(tokens[np.r_[0, ends]]).tolist()))
                outs.append(out)
            else:
                stats, prepared = out
                outs.append((stats, [_write(writer, str(dest), prepared, _source(args))] if prepared else []))
        writer.finish({})
    except BaseException:
        writer.abort()
        raise
    return outs


def _source(args: tuple[Any, ...]) -> str:
    """The source of a block task ``(BlockReading.parse, block)``: ``parse`` is ``parse_block`` bound to it."""
    parse = args[0]
    source = parse.args[0] if isinstance(parse, functools.partial) and parse.args else None
    return str(getattr(source, "name", ""))


def _write(writer: IndexWriter, part: str, prepared: list[Prepared], sources: str | list[str]) -> PartSlice:
    start, tokens, sizes = writer.next_item, 0, []
    for ids, rows, texts, items in prepared:
        at = writer.next_item - start
        srcs = [sources] * len(ids) if isinstance(sources, str) else sources[at : at + len(ids)]
        writer.add(ids, srcs, rows, items, texts)  # signed here
        sizes.append(len(ids))
        tokens += int(items.n_tokens.sum())
    return PartSlice(part, start, tuple(sizes), tokens)


class PartMap:
    """Runs the block tasks of an index build as ``build_part`` tasks on Ray (see the module).

    Args:
        config: The index parameters.
        parts_dir: An existing directory for the parts (every node must see it at this path).
        workers, address: As for ``RayMap``.
        tasks_per_part: Block tasks per part (default ``TASKS_PER_PART``).
    """

    def __init__(self, config: IndexConfig, parts_dir: Path, workers: int | None = None, address: str | None = None,
                 tasks_per_part: int | None = None):
        self.inner: RayMap[PartState] = RayMap(build_part, PartState(config, str(parts_dir)), workers, address)
        self.tasks_per_part = tasks_per_part or TASKS_PER_PART

    def __enter__(self) -> PartMap:
        self.inner.__enter__()
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        self.inner.__exit__(exc_type, *exc)

    @property
    def parallel(self) -> bool:
        return True

    @property
    def tasks(self) -> TaskCount:
        """The Ray tasks (parts) submitted and taken, for the progress line."""
        return self.inner.tasks

    def pids(self) -> list[int]:
        return self.inner.pids()

    def stream(self, items: Iterable[tuple[Any, ...] | Passthrough]) -> Iterator[Any]:
        """The block tasks' outputs (and the markers) in input order, as ``RayMap.stream`` gives them."""
        layout: deque[list[Any]] = deque()  # per part: its markers, and None where a task's output goes
        for out in self.inner.stream(self._parts(items, layout)):
            if isinstance(out, Passthrough):  # markers after the last part
                yield from out.value
                continue
            slots = layout.popleft()
            results = iter(out)
            for s in slots:
                yield next(results) if s is None else s

    def _parts(self, items: Iterable[tuple[Any, ...] | Passthrough], layout: deque[list[Any]],
               ) -> Iterator[tuple[Any, ...] | Passthrough]:
        slots: list[Any] = []
        tasks: list[tuple[Any, ...]] = []
        it = iter(items)
        while True:
            try:
                x = next(it)
            except StopIteration:
                break
            except ProvauditError:
                if tasks:  # the tasks before the problem first (one may hold an earlier error)
                    layout.append(slots)
                    yield (tasks,)
                raise
            if isinstance(x, Passthrough):
                slots.append(x)
                continue
            slots.append(None)
            tasks.append(x)
            if len(tasks) >= self.tasks_per_part:
                layout.append(slots)
                yield (tasks,)
                slots, tasks = [], []
        if tasks:
            layout.append(slots)
            yield (tasks,)
        elif slots:
            yield Passthrough(slots)


def part_index_job(merger: PartMerger | PartList) -> Job:
    """``run.jobs.index_job`` for ``PartMap``'s outputs: each block's slice added to the index by ``merger``
    (or listed, to keep the parts as segments)."""

    def merge(res: SourceResult, slices: list[PartSlice]) -> None:
        for sl in slices:
            if isinstance(merger, PartList):
                merger.add(sl)
            else:
                merger.add(sl, res.source)
            res.tokens += sl.tokens
            res.records += sl.items

    def merge_whole(results: list[SourceResult], records: list[int], sl: PartSlice | None) -> None:
        if sl is None:
            return
        if isinstance(merger, PartList):
            merger.add(sl)
        else:
            merger.add(sl, [r.source for r, n in zip(results, records) for _ in range(n)])
        if len(sl.file_tokens) != len(results) or sum(records) != sl.items:
            raise ProvauditError(f"{sl.part}: a task's counts do not match its files")
        for res, n, tokens in zip(results, records, sl.file_tokens):
            res.records += n
            res.tokens += tokens

    return Job(merge, spans=True, merge_whole=merge_whole)


def build_parts(writer: IndexWriter, sources: list[Source], read: ReadOptions, engine: RunEngine,
                progress: Progress | None = None) -> list[SourceResult]:
    """Run an index build's sources on Ray (``engine``): parts written by the tasks in a temporary
    directory next to ``writer``'s output, merged into ``writer`` in input order, then deleted.
    When ``writer.kept`` is a list (``keep_segments``) they are not merged: their segments are moved into
    the index as they are (``index.parts.keep_segments``)."""
    parts_dir = Path(tempfile.mkdtemp(prefix=f".{writer.dest.name}.parts-", dir=writer.dest.parent))
    try:
        merger: PartMerger | PartList = PartList() if writer.kept is not None else PartMerger(writer)
        with PartMap(writer.config, parts_dir, engine.workers, engine.address) as wm:
            inputs = run_sources(wm, sources, read, part_index_job(merger), progress)
        if isinstance(merger, PartList):
            keep_segments(writer, merger.segments())
        else:
            merger.close()
        return inputs
    finally:
        shutil.rmtree(parts_dir, ignore_errors=True)


__all__ = ["PartMap", "PartState", "build_part", "build_parts", "part_index_job"]
