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
from provaudit.run.pool import Passthrough
from provaudit.run.small import BUNDLE_BYTES, BUNDLE_SOURCES, FilesRead, SmallFiles, small_size
from provaudit.run.engines import TaskMap

Keep = Callable[[int], bool]  # sampling: row -> read it?


class Saved(Protocol):
    """Where finished sources are kept between runs (``run.checkpoint.Checkpoint``)."""

    def has(self, source: str) -> bool: ...
    def load(self, source: str, sha256: str | None) -> SourceResult | None: ...
    def save(self, result: SourceResult) -> None: ...
    def save_many(self, results: list[SourceResult]) -> None: ...


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
        merge_whole: For a task with a ``whole`` form (``run.small``): adds the one output of several
            small files' records (their results, and each one's record count).
    """

    merge: Callable[[SourceResult, Any], None]
    start: Callable[[Source], SourceResult] = lambda src: SourceResult(src.name, src.kind)
    saved: Saved | None = None
    keep: dict[str, Keep | None] = field(default_factory=dict)
    extract: Extract | None = None
    spans: bool | None = None  # None: when the tasks run in workers
    merge_whole: Callable[[list[SourceResult], list[int], Any], None] | None = None


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
    """Consecutive small files run as one ``SmallFiles`` task: their results, in order."""

    results: list[SourceResult] = field(default_factory=list)
    sources: list[Source] = field(default_factory=list)
    size: int = 0


def _small(src: Source, job: Job) -> int | None:
    """The size of a source read whole by the worker that parses it (``run.small``); None: read as usual."""
    if src.kind not in ("jsonl", "txt") or job.keep.get(src.name) is not None or compression(src.name):
        return None
    return small_size(src)


def _tasks(sources: list[Source], read: ReadOptions, job: Job, hasher: ThreadPoolExecutor, stop: threading.Event,
           spans: bool, small: dict[str, int]) -> Iterator[Any]:
    """What the worker map runs, in order, for every source: ``Passthrough(_Open)``, its tasks, then
    ``Passthrough(None)``; a source finished in an earlier run is one ``Passthrough(SourceResult)``;
    consecutive small files (``small``: their sizes) are ``Passthrough(_Bundled)`` and one
    ``SmallFiles`` task. Runs lazily, as the map takes tasks."""
    bundle = _Bundled()
    options = read.to_dict()
    for src in sources:
        if job.saved is not None and job.saved.has(src.name):  # reused if the file is unchanged
            done = job.saved.load(src.name, _source_sha256(src, read.on_error))
            if done is not None:
                yield from _flush(bundle, options, job)
                yield Passthrough(done)
                continue
        size = small.get(src.name)
        if size is not None:  # read, hashed and parsed by a worker, with its neighbours
            bundle.results.append(job.start(src))
            bundle.sources.append(src)
            bundle.size += size
            if bundle.size >= BUNDLE_BYTES or len(bundle.sources) >= BUNDLE_SOURCES:
                yield from _flush(bundle, options, job)
            continue
        cur = _Open(job.start(src), hasher.submit(_source_sha256, src, read.on_error, stop))  # hashed while read
        yield from _flush(bundle, options, job)
        yield Passthrough(cur)
        cur.reading, tasks = _source_tasks(src, cur.result, read, job, spans)
        yield from tasks
        yield Passthrough(None)
    yield from _flush(bundle, options, job)


def _flush(bundle: _Bundled, options: dict[str, Any], job: Job) -> Iterator[Any]:
    if bundle.sources:
        yield Passthrough(_Bundled(bundle.results))
        yield (SmallFiles(bundle.sources, options, job.extract),)
    bundle.results, bundle.sources, bundle.size = [], [], 0


def _finish(cur: _Open) -> SourceResult:
    """A source's result once all its tasks are in (a source without records is reported here)."""
    if cur.reading is not None:
        cur.reading.finish()
    res = cur.result
    res.population_rows = res.stats.rows + res.stats.sampled_out
    res.sha256 = cur.sha256.result()
    return res


def _merge_files(job: Job, results: list[SourceResult], read: FilesRead) -> None:
    """Merge what a ``SmallFiles`` task read into its files' results (then finished)."""
    for res, (sha, stats) in zip(results, read.files):
        if isinstance(stats, int):
            res.stats.rows += stats
        else:
            res.stats.merge(stats)
        res.population_rows = res.stats.rows + res.stats.sampled_out
        res.sha256 = sha
    if read.outputs is not None:
        for res, outputs in zip(results, read.outputs):
            for output in outputs:
                job.merge(res, output)
    else:
        assert job.merge_whole is not None and read.records is not None, "a task with a whole form needs merge_whole"
        job.merge_whole(results, read.records, read.whole)


def run_sources(wmap: TaskMap, sources: list[Source], read: ReadOptions, job: Job,
                progress: Progress | None = None) -> list[SourceResult]:
    """Run every source through one stream of ``wmap``'s tasks (the pool stays busy across small
    files); results in input order. The worker task takes ``(parse, raw)`` and returns
    ``(ReadStats, output)``; ``job.merge`` takes the output."""
    results: list[SourceResult] = []
    stop = threading.Event()  # gives up a source's hashing thread when the run fails
    cur: _Open | None = None
    spans = wmap.parallel if job.spans is None else job.spans
    # sizes taken before the workers start: a system call of this thread while results come in waits
    # for the interpreter lock (measured: stat 3 us alone, 40 us during a run of 100,000 small files)
    small = {s.name: n for s in sources if (n := _small(s, job)) is not None}
    sizes = {s.name: small[s.name] if s.name in small else source_bytes(s) for s in sources} if progress else {}
    total = None if None in sizes.values() else sum(n or 0 for n in sizes.values())
    done = 0  # bytes of the finished sources

    def counted() -> list[Any]:  # the TaskCount of engines that count their tasks (Ray), for the progress line
        tasks = getattr(wmap, "tasks", None)
        return [tasks] if tasks is not None else []

    with ThreadPoolExecutor(1, "provaudit-sha256") as hasher:
        try:
            bundled: _Bundled | None = None
            for out in wmap.stream(_tasks(sources, read, job, hasher, stop, spans, small)):
                if bundled is not None:  # what a SmallFiles task read: each file's results
                    _merge_files(job, bundled.results, out)
                    for res in bundled.results:
                        results.append(res)
                        done += sizes.get(res.source) or 0
                    if job.saved is not None:
                        job.saved.save_many(bundled.results)
                    bundled = None
                    if progress:
                        progress(results[-1].source, sum(r.records for r in results), done, total,
                                 *counted())
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
                             total, *counted())
        finally:
            stop.set()
    return results
