"""Verified pairs in bounded memory: columnar batches, spilled to a file as a run grows.

A heavily contaminated corpus is the case provaudit exists for, and its pairs can outnumber
its records a thousand to one (2,000 identical items x 200 identical records: 400k pairs).
Kept as Python rows they cost about 2 KB each; here a source's pairs (``PairList``) are
sealed into Arrow record batches of about ``BATCH_ROWS`` rows, and once the run holds
``MEMORY_ROWS`` pairs in memory every further batch is written to the run's spill file
(``Spill``: one append-only file of serialized batches in a temporary directory provaudit
made, removed when the run's result is done with, or at exit).

``ordered_batches`` yields every pair in ``matches.parquet`` order (sources by name, then
target row, then reference id) with the frequent-item flag applied, one batch at a time, so
that the output and the report are written in one pass each over the spill.
"""

from __future__ import annotations

import os
import tempfile
import weakref
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa

from provaudit.fs import arrow
from provaudit.match.schema import MATCH_COLUMNS, MATCH_SCHEMA

SPILL_PREFIX = "provaudit-pairs-"  # + the run's pid: a directory in the temporary directory
SPILL_MARK = ".provaudit-spill"  # written first: what marks a spill directory as provaudit's
BATCH_ROWS = 1 << 12  # pairs per sealed batch (a record's pairs are never split)
MEMORY_ROWS = 1 << 16  # pairs a run keeps in memory; later batches go to the spill file
_ROW, _RID, _ITEM, _FLAG = (MATCH_COLUMNS.index(c) for c in ("target_row", "reference_id", "reference_item",
                                                              "item_flag"))


SpillRef = tuple[str, int, int, int, int, int]  # file, offset, bytes, rows, first and last target row


class Spill:
    """A run's spill directory: each process (the parent, and forked workers alike) appends
    serialized record batches to its own file there; a batch is read back by its ``SpillRef``.

    The directory is made when the run starts (before workers fork) and removed by ``close``
    (or when the object is collected, or at exit) in the process that made it.
    """

    def __init__(self, memory_rows: int | None = None):
        self.memory_rows, self.in_memory = MEMORY_ROWS if memory_rows is None else memory_rows, 0
        remove_stale_spills()
        self.dir = tempfile.mkdtemp(prefix=f"{SPILL_PREFIX}{os.getpid()}-")
        with open(os.path.join(self.dir, SPILL_MARK), "x"):
            pass
        self._fds: dict[str, int] = {}
        self._written = 0
        self._cleanup = weakref.finalize(self, _remove, self.dir, os.getpid(), self._fds)

    def keep(self, rows: int) -> bool:
        """Whether a batch of ``rows`` pairs may stay in memory (counted if so)."""
        if self.in_memory + rows > self.memory_rows:
            return False
        self.in_memory += rows
        return True

    def _fd(self, name: str, create: bool) -> int:
        fd = self._fds.get(name)
        if fd is None:
            flags = (os.O_RDWR | os.O_CREAT | os.O_EXCL) if create else os.O_RDONLY
            fd = os.open(os.path.join(self.dir, name), flags | getattr(os, "O_NOFOLLOW", 0), 0o600)
            self._fds[name] = fd
        return fd

    def write(self, batch: pa.RecordBatch) -> SpillRef:
        """Append ``batch`` (sorted by target row) to this process's file."""
        name = f"pairs-{os.getpid()}.arrows"
        fd = self._fd(name, create=name not in self._fds)
        data = batch.serialize()
        at = os.lseek(fd, 0, os.SEEK_END)
        os.pwrite(fd, data, at)
        self._written += data.size
        rows = batch.column(_ROW)
        return name, at, data.size, batch.num_rows, rows[0].as_py(), rows[batch.num_rows - 1].as_py()

    def read(self, ref: SpillRef) -> pa.RecordBatch:
        name, at, size = ref[0], ref[1], ref[2]
        data = os.pread(self._fd(name, create=False), size, at)
        if len(data) != size:
            raise OSError(f"spill file of verified pairs cut short (read {len(data)} of {size} bytes)")
        return pa.ipc.read_record_batch(pa.py_buffer(data), MATCH_SCHEMA)

    @property
    def spilled_bytes(self) -> int:
        """Bytes this process wrote to the spill (its workers' are not counted)."""
        return self._written

    def close(self) -> None:
        """Remove the spill directory and everything the run wrote there."""
        self._cleanup()


def _remove(directory: str, owner: int, fds: dict[str, int]) -> None:
    for fd in fds.values():
        try:
            os.close(fd)
        except OSError:
            pass
    fds.clear()
    if os.getpid() == owner:  # never from a forked worker that still holds a copy
        _remove_spill_dir(directory)


def _remove_spill_dir(directory: str) -> None:
    """Remove a spill directory: only the files a run writes there, then the directory if that
    emptied it (nothing else is deleted, no link is followed)."""
    try:
        with os.scandir(directory) as it:
            for e in it:
                if e.is_file(follow_symlinks=False) and (e.name == SPILL_MARK or
                                                        (e.name.startswith("pairs-") and e.name.endswith(".arrows"))):
                    os.unlink(e.path)
        os.rmdir(directory)
    except OSError:
        pass


def remove_stale_spills() -> None:
    """Remove the spill directories of runs whose process is gone (killed: SIGKILL or SIGTERM leave
    them): ``provaudit-pairs-<pid>-*`` directories of this user holding the spill mark."""
    root = tempfile.gettempdir()
    try:
        entries = list(os.scandir(root))
    except OSError:
        return
    for e in entries:
        if not e.name.startswith(SPILL_PREFIX):
            continue
        pid = e.name[len(SPILL_PREFIX):].split("-", 1)[0]
        try:
            st = e.stat(follow_symlinks=False)
            if not e.is_dir(follow_symlinks=False) or st.st_uid != os.getuid() or not pid.isdigit():
                continue
            if not os.path.isfile(os.path.join(e.path, SPILL_MARK)) or os.path.islink(os.path.join(e.path, SPILL_MARK)):
                continue
            os.kill(int(pid), 0)  # alive (or another process took its number): keep it
        except ProcessLookupError:
            _remove_spill_dir(e.path)
        except (OSError, ValueError):
            continue


class PairList:
    """One source's verified pairs (``match.schema.MATCH_COLUMNS``), in arrival order.

    Pairs come as record batches from the engine (a batch's pairs by target row, then
    reference id) or as rows (sorted so here); small batches are joined into batches of about
    ``BATCH_ROWS`` before they are kept or spilled. ``ordered`` stays true while each addition
    starts after the rows before it (records arrive in row order); ``ordered_batches`` then
    streams the source batch by batch.
    """

    def __init__(self, spill: Spill | None = None):
        self.spill = spill
        self._pending: list[pa.RecordBatch] = []
        self._pending_rows = 0
        self._parts: list[pa.RecordBatch | SpillRef] = []
        self._n = 0
        self._last_row = -1
        self.ordered = True

    def __len__(self) -> int:
        return self._n

    def add(self, rows: list[tuple[Any, ...]]) -> None:
        """Add the pairs of whole records as rows."""
        if rows:
            self.add_batch(rows_batch(sorted(rows, key=lambda r: (r[_ROW], r[_RID]))))

    def add_batch(self, batch: pa.RecordBatch, *, continued: bool = False) -> None:
        """Add the pairs of whole records, sorted by target row, then reference id (``continued``: the
        batch may go on with the last record of the one before, as a saved table's batches do)."""
        if not batch.num_rows:
            return
        rows = batch.column(_ROW)
        first = rows[0].as_py()
        if first < self._last_row or first == self._last_row and not continued:
            self.ordered = False
        self._last_row = max(self._last_row, rows[batch.num_rows - 1].as_py())
        self._pending.append(batch)
        self._pending_rows += batch.num_rows
        self._n += batch.num_rows
        if self._pending_rows >= BATCH_ROWS:
            self._seal()

    def add_ref(self, ref: SpillRef) -> None:
        """Add the pairs of whole records that a worker spilled itself (sorted by target row, then reference id)."""
        if ref[4] <= self._last_row:
            self.ordered = False
        self._last_row = max(self._last_row, ref[5])
        if self._pending:
            self._seal()  # what came before stays before
        self._parts.append(ref)
        self._n += ref[3]

    def add_columns(self, columns: dict[str, list[Any]]) -> None:
        """Add pairs given as columns (a checkpoint's table)."""
        self.add(list(zip(*(columns[c] for c in MATCH_COLUMNS))))

    def _joined(self) -> pa.RecordBatch:
        if len(self._pending) == 1:
            return self._pending[0]
        batches = pa.Table.from_batches(self._pending, MATCH_SCHEMA).combine_chunks().to_batches()
        return batches[0]

    def _seal(self) -> None:
        batch = self._joined()
        self._pending, self._pending_rows = [], 0
        if self.spill is None or self.spill.keep(batch.num_rows):
            self._parts.append(batch)
        else:
            self._parts.append(self.spill.write(batch))

    def batches(self) -> Iterator[pa.RecordBatch]:
        """The pairs as record batches, in arrival order."""
        for part in self._parts:
            yield part if isinstance(part, pa.RecordBatch) else self._read(part)
        if self._pending:
            yield self._joined()

    def _read(self, ref: SpillRef) -> pa.RecordBatch:
        assert self.spill is not None
        return self.spill.read(ref)

    def columns(self) -> dict[str, list[Any]]:
        """Every pair as columns of Python values (materialized: for small results and tests)."""
        out: dict[str, list[Any]] = {c: [] for c in MATCH_COLUMNS}
        for b in self.batches():
            for c, values in b.to_pydict().items():
                out[c] += values
        return out


def rows_batch(rows: list[tuple[Any, ...]]) -> pa.RecordBatch:
    """Pair rows (never none) as one record batch."""
    table = arrow.table({c: list(v) for c, v in zip(MATCH_COLUMNS, zip(*rows))}, MATCH_SCHEMA)
    batches = table.combine_chunks().to_batches()
    assert len(batches) == 1
    return batches[0]


def frequent_items(lists: Iterable[PairList], limit: int) -> set[str]:
    """Reference ids matched (without a flag) in more than ``limit`` target records: boilerplate suspects.

    A record and an item make one pair at most, so pairs per item count its records.
    """
    counts: Counter[str] = Counter()
    for pl in lists:
        for b in pl.batches():
            rid, flag = b.column(_RID).to_pylist(), b.column(_FLAG).to_pylist()
            counts.update(r for r, f in zip(rid, flag) if not f)
    return {r for r, n in counts.items() if n > limit}


def ordered_batches(sources: Iterable[tuple[str, PairList]], frequent: set[str]) -> Iterator[pa.RecordBatch]:
    """Every pair in ``matches.parquet`` order (sources by name, target row, reference id), with
    ``item_flag`` set to ``frequent_item`` on the unflagged pairs of the ``frequent`` items."""
    for _, pl in sorted(sources, key=lambda s: s[0]):
        if pl.ordered:
            for b in pl.batches():
                yield _flagged(b, frequent)
        elif len(pl):  # rows arrived out of order (not seen in practice): sort the source whole
            cols = pl.columns()
            order = sorted(range(len(pl)), key=lambda i: (cols["target_row"][i], cols["reference_id"][i]))
            table = arrow.table({c: [cols[c][i] for i in order] for c in MATCH_COLUMNS}, MATCH_SCHEMA)
            for b in table.to_batches(max_chunksize=BATCH_ROWS):
                yield _flagged(b, frequent)


def in_groups(batches: Iterable[pa.RecordBatch], rows: int) -> Iterator[pa.Table]:
    """The pairs of ``batches`` as tables of exactly ``rows`` rows (the last one fewer): row groups
    that do not depend on how the pairs were batched (workers, spill, a resumed run)."""
    held: list[pa.RecordBatch] = []
    n = 0
    for b in batches:
        held.append(b)
        n += b.num_rows
        while n >= rows:
            table = pa.Table.from_batches(held, MATCH_SCHEMA)
            yield table.slice(0, rows)
            rest = table.slice(rows)
            held, n = rest.to_batches(), rest.num_rows
    if n:
        yield pa.Table.from_batches(held, MATCH_SCHEMA)


def _flagged(batch: pa.RecordBatch, frequent: set[str]) -> pa.RecordBatch:
    if not frequent:
        return batch
    rid, flag = batch.column(_RID).to_pylist(), batch.column(_FLAG).to_pylist()
    new = ["frequent_item" if (not f and r in frequent) else f for r, f in zip(rid, flag)]
    if new == flag:
        return batch
    cols = list(batch.columns)
    cols[_FLAG] = arrow.array(new, pa.string())
    return pa.RecordBatch.from_arrays(cols, schema=MATCH_SCHEMA)


__all__ = ["PairList", "Spill", "SpillRef", "frequent_items", "in_groups", "ordered_batches", "rows_batch"]
