"""Many small files as one worker task: the worker opens, hashes, reads and parses them itself.

A directory of 100,000 one-line files must not cost 100,000 round trips to a worker, nor the
parent's time to open and read each file (issue 15 item 10). ``run.loop`` sends runs of
consecutive small files (uncompressed JSON lines or text, regular, at most ``FILE_BYTES``
when listed) as one ``SmallFiles`` task. The worker reads each file once (its sha256 is of
those bytes), cuts it into blocks with the same ``BlockReading`` as any other source, runs
the run's task on all their blocks at once (a task with a ``whole`` form, the index build's
``prepare_parsed``, prepares them as one batch; one with a ``bundled`` form, the audit's
``parse_and_evaluate``, evaluates their records together and splits the results per file) and checks each file as ``finish``
does: records, skip counts, example locations and errors are those of reading the files one
by one, and the first problem in input order is the one raised.
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass
from typing import Any, Callable

from provaudit.errors import InputError
from provaudit.read.blocks import BlockReading
from provaudit.read.records import Extract, ReadStats, Source
from provaudit.run.pool import Bundle, Composite, run_task

FILE_BYTES = 1 << 16  # files up to this size (when listed) are read by the worker that parses them
BUNDLE_BYTES = 1 << 20  # a task holds at most about this much input
BUNDLE_SOURCES = 1024  # and at most this many files



@dataclass
class FilesRead:
    """What a ``SmallFiles`` task gives back: each file's sha256 (None: unreadable, in skip mode) and
    counts, and either each file's task outputs, or, for a task with a ``whole`` form (the index build's
    ``prepare_parsed``), each file's record count and the one output of all their records."""

    files: list[tuple[str | None, ReadStats | int]]  # a file's counts, or only its rows when nothing else was counted
    outputs: list[list[Any]] | None = None
    records: list[int] | None = None
    whole: Any = None


def small_size(src: Source) -> int | None:
    """The size of a small regular file (read whole by a worker; as listed, else from ``stat``); None for any
    other source."""
    if src.size is not None:
        return src.size if src.size <= FILE_BYTES else None
    try:
        st = os.stat(src.name)
    except OSError:
        return None
    return st.st_size if stat.S_ISREG(st.st_mode) and st.st_size <= FILE_BYTES else None


def _read_whole(reading: BlockReading) -> tuple[bytes | None, str | None]:
    """A small file's bytes and their sha256 (never blocking on a FIFO that replaced it since it was listed)."""
    name = reading.source.name
    try:
        fd = os.open(name, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as e:
        reading.reader.fatal(name, f"cannot read ({e.strerror or e})")
        return None, None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > FILE_BYTES:
            reading.reader.fatal(name, "changed while the run was reading it (no longer the small regular file listed); "
                                       "run again")
            return None, None
        data = os.read(fd, FILE_BYTES + 1)
    except OSError as e:
        reading.reader.fatal(name, f"cannot read ({e.strerror or e})")
        return None, None
    finally:
        os.close(fd)
    if len(data) > FILE_BYTES:
        reading.reader.fatal(name, "changed while the run was reading it (it grew); run again")
        return None, None
    return data, hashlib.sha256(data).hexdigest()


class SmallFiles(Composite):
    """Consecutive small line files, read, hashed, parsed and processed by one worker task.

    ``run_task`` gives their ``FilesRead``.
    """

    __slots__ = ("sources", "read", "extract")

    def __init__(self, sources: list[Source], read: dict[str, Any], extract: Extract | None):
        self.sources, self.read, self.extract = sources, read, extract

    def run(self, task: Callable[..., Any], state: Any) -> FilesRead:
        readings: list[BlockReading] = []
        hashes: list[str | None] = []
        tasks: list[tuple[Any, ...]] = []
        counts: list[int] = []
        problem: InputError | None = None  # raised once the files before it are done (they may hold an earlier one)
        for src in self.sources:
            reading = BlockReading(src, stats=ReadStats(), extract=self.extract, **self.read)
            try:
                data, sha = _read_whole(reading)
                listed = [(reading.parse, b) for b in reading.blocks(data=data)] if data is not None else []
            except InputError as e:
                problem = e
                break
            readings.append(reading)
            hashes.append(sha)
            tasks += listed
            counts.append(len(listed))
        whole, bundled = getattr(task, "whole", None), getattr(task, "bundled", None)
        if whole is not None:
            counted, per_task, output = whole(state, tasks)  # each task's ReadStats and records
            outs = list(zip(counted, per_task))
        elif bundled is not None:  # each task's output, computed together
            outs = bundled(state, tasks) if tasks else []
        else:
            outs = run_task(task, state, (Bundle(tasks),)) if tasks else []
        done = FilesRead([], outputs=[]) if whole is None else FilesRead([], records=[], whole=output)
        at = 0
        for reading, sha, k in zip(readings, hashes, counts):
            mine = []
            for stats, out in outs[at : at + k]:
                reading.stats.merge(stats)
                mine.append(out)
            at += k
            reading.finish()  # a file without a single record is a problem (raised here, in input order)
            st = reading.stats
            plain = not (st.skipped or st.altered or st.examples or st.error or st.sampled_out)
            done.files.append((sha, st.rows if plain else st))  # pickles to a few bytes
            if done.records is not None:
                done.records.append(sum(mine))
            else:
                assert done.outputs is not None
                done.outputs.append(mine)
        if problem is not None:
            raise problem
        return done


__all__ = ["BUNDLE_BYTES", "BUNDLE_SOURCES", "FILE_BYTES", "FilesRead", "SmallFiles", "small_size"]
