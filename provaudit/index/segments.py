"""Operations on an index's segments: ``add`` a segment, ``remove`` items, ``compact`` into one segment.

Each operation holds ``INDEX/.lock`` (flock, waited for) from loading the manifest to replacing it.
It writes what is new under a fresh name (a ``seg-NNNNNN-partial`` directory renamed to its
final name, or a ``del-NNNNNN-XXXXXXXX.u64`` file), fsyncs it, then replaces ``manifest.json``
(temporary file, fsync, rename, fsync of the directory): killed at any point, the index is the
one before (the old manifest in force, new files unreferenced) or the one after. Entries left
unreferenced by a killed or finished operation are deleted by the next one (``clean``): only
names of the forms provaudit writes, never through a symbolic link.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import signal
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from provaudit.config import IndexConfig
from provaudit.errors import IndexFormatError, IndexMismatchError, InputError
from provaudit.fs.atomic import fsync_dir
from provaudit.index.build import IndexWriter, PreparedItems
from provaudit.index.keytable import id_hashes
from provaudit.index.format import Index, load_index
from provaudit.index.manifest import PARTIAL_SEGMENT, index_manifest, manifest_text, segment_name
from provaudit.index.segment import Segment
from provaudit.text.shingle import ShingleBatch, unique_per_record

LOCK = ".lock"
# what operations write in an index directory (deleted when the manifest in force does not name them)
_OWN = re.compile(r"(seg-[0-9]{6}-([0-9a-f]{8}|partial)|del-[0-9]{6}-[0-9a-f]{8}\.u64|\.manifest\.json\.tmp-.*)")


@contextmanager
def locked(index_dir: Path) -> Iterator[Index]:
    """Hold ``INDEX/.lock`` (waiting for another operation to finish), then load the index and delete
    what killed operations left. Yields the index in force."""
    if not (index_dir / "manifest.json").is_file():
        load_index(index_dir)  # raises the usual "not an index" error
    fd = os.open(index_dir / LOCK, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        index = load_index(index_dir)
        clean(index)
        yield index
    finally:
        os.close(fd)


def clean(index: Index) -> list[str]:
    """Delete the entries of ``index.path`` that an operation writes but the manifest in force does not
    name (left by a killed operation, or replaced by a finished one); symbolic links are unlinked,
    never followed. Returns the names deleted."""
    keep = {s["name"] for s in index.manifest["segments"]}
    if index.manifest.get("removed"):
        keep.add(index.manifest["removed"]["name"])
    gone = []
    with os.scandir(index.path) as it:
        stale = sorted((e.name, e.is_dir(follow_symlinks=False)) for e in it if _OWN.fullmatch(e.name) and e.name not in keep)
    for name, is_dir in stale:
        p = index.path / name
        if is_dir:
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
        gone.append(name)
    if gone:
        fsync_dir(index.path)
    return gone


def commit(index: Index, segments: list[dict[str, Any]], removed: dict[str, Any] | None,
           extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Replace the manifest in force (atomically and durably) by one naming ``segments`` and ``removed``;
    returns it. The next operation number is one more than the manifest's."""
    m = index.manifest
    keep = {k: v for k, v in m.items() if k in ("versions", "fields", "inputs")}
    full = index_manifest(index.config, index.anchor_plan, segments, removed, m["next_operation"] + 1,
                          {**keep, **(extra or {})})
    _replace_manifest(index.path, manifest_text(full).encode("utf-8"))
    return full


def _replace_manifest(path: Path, data: bytes) -> None:
    """Write ``manifest.json`` aside, fsync it, rename it over the old one, fsync the directory."""
    fd, tmp = tempfile.mkstemp(dir=path, prefix=".manifest.json.tmp-")
    try:
        _write_all(fd, data)
        os.fsync(fd)
        os.close(fd)
        fd = -1
        kill_point("manifest-written")
        os.replace(tmp, path / "manifest.json")
    except BaseException:
        if fd >= 0:
            os.close(fd)
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path)


def kill_point(name: str) -> None:
    """Tests of atomicity: SIGKILL this process here when ``PROVAUDIT_KILL_AT`` names this point
    (``segment-written``, ``segment-renamed``, ``removed-written``, ``manifest-written``, ``committed``)."""
    if os.environ.get("PROVAUDIT_KILL_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)


def check_parameters(index: Index, given: IndexConfig | dict[str, Any] | None) -> None:
    """Refuse parameters that differ from the index's, naming each one.

    Args:
        given: A whole ``IndexConfig`` (compared resolved), or some of its fields by name (those given
            on a command line), or None.

    Raises:
        IndexMismatchError: when a parameter differs from the index's.
    """
    if given is None:
        return
    want = given.resolved().to_dict() if isinstance(given, IndexConfig) else given
    have = index.config.to_dict()
    diff = [f"{k} {want[k]!r} (the index has {have.get(k)!r})" for k in sorted(want) if want[k] != have.get(k)]
    if diff:
        raise IndexMismatchError(f"{index.path}: parameters differ from the index's: {', '.join(diff)}; "
                                 "a segment must be built with the index's parameters (leave them out to use them)")


def segment_writer(index: Index) -> IndexWriter:
    """A writer of the next segment of ``index`` (in a partial directory of the index)."""
    writer = IndexWriter(index.path, index.config, segment=index.path / PARTIAL_SEGMENT.format(index.manifest["next_operation"]))
    writer.plan = dict(index.anchor_plan)
    return writer


def live_items_with_ids(index: Index, ids: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(position in ``ids``, item number) for every live item whose id is one of ``ids``.

    Each segment's id table is probed with the ids' hashes (only the buckets they fall in are read);
    only the items whose hash is a query's have their ids read and compared (a hash collision is not
    a match). Removed items are not matches.
    """
    q = id_hashes(ids)
    found: list[tuple[np.ndarray, np.ndarray]] = []
    for seg in index.segments:
        pos, local = seg.items_with_id_hashes(q)
        if not len(pos):
            continue
        items = local + seg.base
        live = ~index.is_removed(items)
        pos, local, items = pos[live], local[live], items[live]
        order = np.argsort(local, kind="stable")  # the ids read in item order (row group by row group)
        got = np.empty(len(local), dtype=object)
        got[order] = seg.ids_of(local[order])
        eq = np.array([g == ids[p] for g, p in zip(got.tolist(), pos.tolist())], dtype=bool)
        found.append((pos[eq], items[eq]))
    if not found:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate([f[0] for f in found]), np.concatenate([f[1] for f in found])


def add_segment(index: Index, writer: IndexWriter, inputs: list[dict[str, Any]]) -> dict[str, Any]:
    """Finish the segment ``writer`` wrote, check that its ids are new, move it to its name and commit.

    Raises:
        InputError: naming the first added item whose id is already a (live) item of the index.
    """
    entry = writer.finish_segment()
    new = Segment(index.path, {"name": writer.seg.name, "base": 0, **entry}, index.config, index.anchor_plan)
    ids = new.ids
    dup, _ = live_items_with_ids(index, [str(i) for i in ids.to_pylist()])
    if len(dup):
        j = int(dup.min())
        source, row = new.column_of("source", np.array([j]))[0], new.column_of("row", np.array([j]))[0]
        raise InputError(f"{source} row {row + 1}: reference id {ids[j].as_py()!r} is already an item of the index "
                         f"{index.path} (ids must be unique; remove it first with 'provaudit remove')")
    kill_point("segment-written")
    name = segment_name(index.manifest["next_operation"], entry)
    os.rename(writer.seg, index.path / name)
    fsync_dir(index.path)
    kill_point("segment-renamed")
    segments = [*index.manifest["segments"], {"name": name, "base": len(index), **entry}]
    return commit(index, segments, index.manifest.get("removed"),
                  {"inputs": [*index.manifest.get("inputs", []), *inputs]})


def items_of_ids(index: Index, wanted: list[str]) -> tuple[np.ndarray, list[str]]:
    """The live items holding these ids (sorted item numbers), and the ids that are none."""
    unique = list(dict.fromkeys(wanted))
    pos, items = live_items_with_ids(index, unique)
    hit = set(pos.tolist())
    return np.unique(items).astype(np.int64), [i for j, i in enumerate(unique) if j not in hit]


def remove_items(index: Index, items: np.ndarray) -> dict[str, Any]:
    """Record ``items`` (live item numbers) as removed: a new ``del-*`` file, then the manifest."""
    old = index.removed
    merged = np.union1d(old, items).astype(np.int64)
    data = merged.astype("<u8").tobytes()
    digest = hashlib.sha256(data).hexdigest()
    name = f"del-{index.manifest['next_operation']:06d}-{digest[:8]}.u64"
    path = index.path / name
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0), 0o644)
    try:
        _write_all(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    fsync_dir(index.path)
    kill_point("removed-written")
    counts = {"items": len(merged), "tokens": int(index.tokens_of(merged).sum()),
              "distinct_shingles": int(index.shingles_of(merged).sum())}
    removed = {"name": name, "rows": len(merged), "bytes": len(data), "sha256": digest, "counts": counts}
    return commit(index, index.manifest["segments"], removed)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while len(view):
        view = view[os.write(fd, view):]


def compact_segments(index: Index) -> dict[str, Any]:
    """Merge every segment into one holding the live items, numbered 0, 1, ... in their order (the files a
    build over those items would write), then commit and delete the old segments.

    Raises:
        IndexFormatError: when a value read from the index is out of range or a chunk fails its checksum.
    """
    writer = segment_writer(index)
    try:
        for seg in index.segments:
            for first, table in seg.row_groups():
                local = np.arange(first, first + table.num_rows, dtype=np.int64)
                live = ~index.is_removed(local + seg.base)
                if live.any():
                    _copy_items(seg, local, live, table, writer)
        entry = writer.finish_segment()
    except BaseException:
        writer.abort()
        raise
    kill_point("segment-written")
    name = segment_name(index.manifest["next_operation"], entry)
    os.rename(writer.seg, index.path / name)
    fsync_dir(index.path)
    kill_point("segment-renamed")
    full = commit(index, [{"name": name, "base": 0, **entry}], None)
    kill_point("committed")
    clean(load_index(index.path))
    return full


def _copy_items(seg: Segment, local: np.ndarray, live: np.ndarray, table: pa.Table, writer: IndexWriter) -> None:
    """The ``live`` ones of consecutive items of a segment (``table``: their rows of items.parquet),
    prepared again from their stored sequences and added to ``writer``."""
    lo, hi = seg.seq_bounds(local)
    if np.array_equal(lo[1:], hi[:-1]):  # as built: one run of the sequences, read at once
        hashes = np.asarray(seg.seq_hashes[int(lo[0]) : int(hi[-1])])[np.repeat(live, hi - lo)]
    else:
        hashes = np.concatenate([seg.seq_hashes[a:b] for a, b in zip(lo[live].tolist(), hi[live].tolist())])
    lo, hi = lo[live], hi[live]
    offsets = np.zeros(len(lo) + 1, dtype=np.int64)
    np.cumsum(hi - lo, out=offsets[1:])
    sb = ShingleBatch(hashes.astype(np.uint64), offsets, seg.tokens_of(local[live]))
    ub = unique_per_record(sb)
    n_unique = np.diff(ub.offsets)
    if not np.array_equal(n_unique, seg.shingles_of(local[live])):
        raise IndexFormatError(f"{seg.path}: corrupt or hostile index: distinct shingles do not match the sequences")
    rec = np.repeat(np.arange(len(lo)), n_unique)
    take = (np.arange(len(ub.hashes)) - ub.offsets[rec]) < seg.config.anchors
    items = PreparedItems(sb.hashes, sb.offsets, sb.n_tokens, n_unique, ub.hashes[take],
                          np.minimum(n_unique, seg.config.anchors))
    rows = table.filter(pa.array(live))
    texts = [str(t) for t in rows.column("text").to_pylist()] if seg.config.keep_text else None
    writer.add([str(i) for i in rows.column("id").to_pylist()], [str(s) for s in rows.column("source").to_pylist()],
               [int(r) for r in rows.column("row").to_pylist()], items, texts)
