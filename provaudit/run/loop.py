"""Every source of a run through one ordered stream of worker tasks: one loop for index builds,
training audits and model-output audits.

Sources are not run one after another with the pool drained in between: a directory of
small files would keep one worker busy at a time (200 files of 0.8 MB: 8.3 s with 2 workers
against 7.9 s with 1). The parent produces one stream: per source a ``Passthrough`` start
marker, its blocks (``read.blocks.BlockReading``: line ranges and row groups that the workers
read and parse) or record batches (formats the parent parses, and sampled reads), and an end
marker; the results come back in the same order, so each source's counts, results,
checkpoint and sha256 (computed on a thread while the source is read) are closed when its
end marker comes out. What a run does with a task's results is its ``Job``.
"""

from __future__ import annotations

import hashlib
import os
import stat
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

from provaudit.config import ReadOptions
from provaudit.errors import InputError, ProvauditError
from provaudit.read.blocks import BLOCK_KINDS, BlockReading, batches, records_as_given
from provaudit.read.records import Extract, Source
from provaudit.read.rows import compression
from provaudit.read.sources import read_source, source_bytes
from provaudit.results import Progress, SourceResult
from provaudit.run.pool import Bundle, Passthrough
from provaudit.run.engines import TaskMap

Keep = Callable[[int], bool]  # sampling: row -> read it?


class Saved(Protocol):
    """Where finished sources are kept between runs (``run.checkpoint.Checkpoint``)."""

    def has(self, source: str) -> bool: ...
    def load(self, source: str, sha256: str | None) -> SourceResult | None: ...
    def save(self, result: SourceResult) -> None: ...


@dataclass
class Job:
    """What one kind of run does with its sources.

    Attributes:
        merge: Adds one task's output (what the worker task returned, without its ReadStats) to
            the source's result.
        start: A new source's (empty) result.
        saved: Finished sources of an earlier run (``run.checkpoint.Checkpoint``): each source it
            has, unchanged, is taken from it; each finished source is saved to it.
        keep: Per source name, a sampling filter (None: every row).
        extract: Custom text extraction for every reader (model-output shapes).
        spans: Cut uncompressed line files into file ranges that the workers read themselves (else
            the parent reads the blocks). Index builds always do, so that batches, and the index
            files, are the same for any number of workers.
    """

    merge: Callable[[SourceResult, Any], None]
    start: Callable[[Source], SourceResult] = lambda src: SourceResult(src.name, src.kind)
    saved: Saved | None = None
    keep: dict[str, Keep | None] = field(default_factory=dict)
    extract: Extract | None = None
    spans: bool | None = None  # None: when the tasks run in workers


@dataclass
class _Open:
    """A source being read: its result so far, and what ends it."""

    result: SourceResult
    sha256: Future[str | None]
    reading: BlockReading | None = None


def _source_sha256(src: Source, on_error: str, stop: threading.Event | None = None) -> str | None:
    """The source's sha256; None (the reader then reports the problem) when it cannot be read in skip mode."""
    try:
        return src.sha256(stop)
    except OSError as e:
        if on_error == "fail":
            raise InputError(f"{src.name}: cannot read ({e.strerror or e})") from e
        return None


def _source_tasks(src: Source, res: SourceResult, read: ReadOptions, job: Job, spans: bool,
                  data: bytes | None = None) -> tuple[BlockReading | None, Iterator[Any]]:
    """One source's tasks: its blocks, read and parsed by the workers (JSON lines, text and
    Parquet, unsampled), or record batches the parent reads (other formats, sampled reads);
    and the BlockReading to ``finish`` once its results are in. ``data``: a small file's bytes."""
    keep = job.keep.get(src.name)
    if src.kind in BLOCK_KINDS and keep is None:
        reading = BlockReading(src, stats=res.stats, extract=job.extract, **read.to_dict())
        return reading, ((reading.parse, block) for block in reading.blocks(spans=spans, data=data))
    records = read_source(src, stats=res.stats, keep=keep, extract=job.extract, **read.to_dict())
    return None, ((records_as_given, b) for b in batches(records))


@dataclass
class _Bundled:
    """Small sources whose tasks run as one ``Bundle``: how many of its results are each one's."""

    sources: list[_Open] = field(default_factory=list)
    counts: list[int] = field(default_factory=list)
    tasks: list[tuple[Any, ...]] = field(default_factory=list)
    size: int = 0


BUNDLE_FILE_BYTES = 1 << 16  # sources up to this size are bundled with their neighbours
BUNDLE_BYTES = 1 << 20  # a bundle holds at most about this much input
BUNDLE_SOURCES = 1024  # and at most this many sources


def _read_small(src: Source, job: Job) -> bytes | None:
    """The whole content of a small uncompressed line file (a regular file, never a pipe), to be
    bundled with its neighbours; None to read the source as usual."""
    if src.kind not in ("jsonl", "txt") or job.keep.get(src.name) is not None or compression(src.name):
        return None
    try:
        fd = os.open(src.name, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > BUNDLE_FILE_BYTES:
            return None
        data = os.read(fd, BUNDLE_FILE_BYTES + 1)
    except OSError:
        return None
    finally:
        os.close(fd)
    return data if len(data) <= BUNDLE_FILE_BYTES else None


def _tasks(sources: list[Source], read: ReadOptions, job: Job, hasher: ThreadPoolExecutor, stop: threading.Event,
           spans: bool) -> Iterator[Any]:
    """What the worker map runs, in order, for every source: ``Passthrough(_Open)``, its tasks, then
    ``Passthrough(None)``; a source finished in an earlier run is one ``Passthrough(SourceResult)``;
    consecutive small files are ``Passthrough(_Bundled)`` and one ``Bundle`` of all their tasks.
    Runs lazily, as the map takes tasks."""
    bundle = _Bundled()
    for src in sources:
        if job.saved is not None and job.saved.has(src.name):  # reused if the file is unchanged
            done = job.saved.load(src.name, _source_sha256(src, read.on_error))
            if done is not None:
                yield from _flush(bundle)
                yield Passthrough(done)
                continue
        data = _read_small(src, job)
        if data is not None:  # read once: parsed, sniffed and hashed from these bytes
            hashed: Future[str | None] = Future()
            hashed.set_result(hashlib.sha256(data).hexdigest())
            cur = _Open(job.start(src), hashed)
            try:
                cur.reading, tasks = _source_tasks(src, cur.result, read, job, spans, data)
                listed = list(tasks)
            except ProvauditError:  # the bundled sources before it come first: their problems too
                yield from _flush(bundle)
                raise
            bundle.sources.append(cur)
            bundle.tasks += listed
            bundle.counts.append(len(listed))
            bundle.size += len(data)
            if bundle.size >= BUNDLE_BYTES or len(bundle.sources) >= BUNDLE_SOURCES:
                yield from _flush(bundle)
            continue
        cur = _Open(job.start(src), hasher.submit(_source_sha256, src, read.on_error, stop))  # hashed while read
        yield from _flush(bundle)
        yield Passthrough(cur)
        cur.reading, tasks = _source_tasks(src, cur.result, read, job, spans)
        yield from tasks
        yield Passthrough(None)
    yield from _flush(bundle)


def _flush(bundle: _Bundled) -> Iterator[Any]:
    if bundle.sources:
        yield Passthrough(_Bundled(bundle.sources, bundle.counts))
        yield (Bundle(bundle.tasks),)
    bundle.sources, bundle.counts, bundle.tasks, bundle.size = [], [], [], 0


def _finish(cur: _Open) -> SourceResult:
    """A source's result once all its tasks are in (a source without records is reported here)."""
    if cur.reading is not None:
        cur.reading.finish()
    res = cur.result
    res.population_rows = res.stats.rows + res.stats.sampled_out
    res.sha256 = cur.sha256.result()
    return res


def run_sources(wmap: TaskMap, sources: list[Source], read: ReadOptions, job: Job,
                progress: Progress | None = None) -> list[SourceResult]:
    """Run every source through one stream of ``wmap``'s tasks (the pool stays busy across small
    files); results in input order. The worker task takes ``(parse, raw)`` and returns
    ``(ReadStats, output)``; ``job.merge`` takes the output."""
    results: list[SourceResult] = []
    stop = threading.Event()  # gives up a source's hashing thread when the run fails
    cur: _Open | None = None
    spans = wmap.parallel if job.spans is None else job.spans
    sizes = {s.name: source_bytes(s) for s in sources} if progress else {}  # progress: bytes on disk
    total = None if None in sizes.values() else sum(n or 0 for n in sizes.values())
    done = 0  # bytes of the finished sources
    with ThreadPoolExecutor(1, "provaudit-sha256") as hasher:
        try:
            bundled: _Bundled | None = None
            for out in wmap.stream(_tasks(sources, read, job, hasher, stop, spans)):
                if bundled is not None:  # the results of a Bundle: each source's share, then it ends
                    at = 0
                    for small, k in zip(bundled.sources, bundled.counts):
                        for stats, output in out[at : at + k]:
                            small.result.stats.merge(stats)
                            job.merge(small.result, output)
                        at += k
                        results.append(_finish(small))
                        done += sizes.get(small.result.source) or 0
                        if job.saved is not None:
                            job.saved.save(results[-1])
                    bundled = None
                    if progress:
                        progress(results[-1].source, sum(r.records for r in results), done, total)
                    continue
                if isinstance(out, Passthrough):
                    if isinstance(out.value, _Bundled):
                        bundled = out.value
                    elif isinstance(out.value, SourceResult):
                        results.append(out.value)
                        done += sizes.get(out.value.source) or 0
                    elif isinstance(out.value, _Open):
                        cur = out.value
                    elif cur is not None:
                        results.append(_finish(cur))
                        done += sizes.get(cur.result.source) or 0
                        if job.saved is not None:
                            job.saved.save(results[-1])
                        cur = None
                    continue
                assert cur is not None
                stats, output = out
                cur.result.stats.merge(stats)
                job.merge(cur.result, output)
                if progress:
                    inside = cur.reading.reader.consumed if cur.reading is not None else 0
                    progress(cur.result.source, sum(r.records for r in results) + cur.result.records, done + inside,
                             total)
        finally:
            stop.set()
    return results
