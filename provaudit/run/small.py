"""Many small files as one worker task: the worker opens, hashes, reads and parses them itself.

A directory of 100,000 one-line files must not cost 100,000 round trips to a worker, nor the
parent's time to open and read each file (issue 15 item 10). ``run.loop`` sends runs of
consecutive small files (uncompressed JSON lines or text, regular, at most ``FILE_BYTES``
when listed) as one ``SmallFiles`` task. The worker reads each file once (its sha256 is of
those bytes) and parses it as ``read.blocks.BlockReading`` parses a file's one block (one
``RowReader`` per file, the same sniffing); then it runs the run's task on all their records at
once: a task with a ``whole`` form (the index build's ``prepare_parsed``) prepares them as one
batch, one with a ``bundled`` form (the audit's ``parse_and_evaluate``) evaluates them together
and splits the results per file. Each file is checked as ``BlockReading.finish`` does: records,
skip counts, example locations and errors are those of reading the files one by one, and the
first problem in input order is the one raised.
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass
from typing import Any, Callable

from provaudit.errors import InputError
from provaudit.read.blocks import records_as_given
from provaudit.read.lines import LINE_PARSERS
from provaudit.read.records import Extract, ReadStats, Record, Source
from provaudit.read.rows import RowReader, wrong_format
from provaudit.read.sources import report_no_records, rows_seen
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


def _read_whole(reader: RowReader) -> tuple[bytes | None, str | None]:
    """A small file's bytes and their sha256 (never blocking on a FIFO that replaced it since it was listed)."""
    name = reader.source.name
    try:
        fd = os.open(name, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as e:
        reader.fatal(name, f"cannot read ({e.strerror or e})")
        return None, None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > FILE_BYTES:
            reader.fatal(name, "changed while the run was reading it (no longer the small regular file listed); "
                               "run again")
            return None, None
        data = os.read(fd, FILE_BYTES + 1)
    except OSError as e:
        reader.fatal(name, f"cannot read ({e.strerror or e})")
        return None, None
    finally:
        os.close(fd)
    if len(data) > FILE_BYTES:
        reader.fatal(name, "changed while the run was reading it (it grew); run again")
        return None, None
    return data, hashlib.sha256(data).hexdigest()


def _records(src: Source, read: dict[str, Any], extract: Extract | None) -> tuple[list[Record], RowReader, str | None]:
    """A small file's records, read, sniffed and parsed as ``BlockReading`` reads its one block (the same
    records, counts and errors), with the reader holding its counts, and its sha256."""
    reader = RowReader(src, read["text_field"], read["id_field"], read["on_error"], ReadStats(), None, extract,
                       read["max_record_chars"])
    data, sha = _read_whole(reader)
    if data is None or wrong_format(reader, data) or not data:
        return [], reader, sha
    return list(LINE_PARSERS[src.kind](reader, 0, data)), reader, sha


class SmallFiles(Composite):
    """Consecutive small line files, read, hashed, parsed and processed by one worker task.

    ``run_task`` gives their ``FilesRead``.
    """

    __slots__ = ("sources", "read", "extract")

    def __init__(self, sources: list[Source], read: dict[str, Any], extract: Extract | None):
        self.sources, self.read, self.extract = sources, read, extract

    def run(self, task: Callable[..., Any], state: Any) -> FilesRead:
        readers: list[RowReader] = []
        hashes: list[str | None] = []
        tasks: list[tuple[Any, ...]] = []
        problem: InputError | None = None  # raised once the files before it are done (they may hold an earlier one)
        for src in self.sources:
            try:
                records, reader, sha = _records(src, self.read, self.extract)
            except InputError as e:
                problem = e
                break
            readers.append(reader)
            hashes.append(sha)
            tasks.append((records_as_given, records))  # parsed here: one task per file, counted by its reader
        whole, bundled = getattr(task, "whole", None), getattr(task, "bundled", None)
        if whole is not None:
            counted, per_task, output = whole(state, tasks)  # each task's records (its ReadStats are empty)
            done = FilesRead([], records=per_task, whole=output)
        else:
            outs = bundled(state, tasks) if bundled is not None else run_task(task, state, (Bundle(tasks),))
            done = FilesRead([], outputs=[[out] for _, out in outs])
        for reader in readers:
            st = reader.stats
            if st.error is None and rows_seen(st) == (0, 0, 0):  # a file without a single record is a problem
                report_no_records(reader, reader.source)  # raised here, in input order
            plain = not (st.skipped or st.altered or st.examples or st.error or st.sampled_out)
            done.files.append((hashes[len(done.files)], st.rows if plain else st))  # pickles to a few bytes
        if problem is not None:
            raise problem
        return done


__all__ = ["BUNDLE_BYTES", "BUNDLE_SOURCES", "FILE_BYTES", "FilesRead", "SmallFiles", "small_size"]
