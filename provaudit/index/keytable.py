"""Sorted (key, item) lookup tables with a stored directory, verified and validated as they are probed."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import xxhash

from provaudit.index.chunks import SPARSE_MAX, SPARSE_RUNS, expand, hostile
from provaudit.text import kernels

if TYPE_CHECKING:
    from provaudit.index.chunks import Chunked

MAX_BITS = 26


def directory_bits(n_keys: int) -> int:
    """Bits of the directory of a table of ``n_keys``: about 16 keys per bucket (0.5 bytes per key)."""
    return int(min(MAX_BITS, max(1, np.log2(max(n_keys, 32) / 16))))


def build_directory(keys: np.ndarray) -> np.ndarray:
    """``dir[j]`` = first row whose key's top bits are >= j (``2**bits + 1`` entries, int64)."""
    bits = directory_bits(len(keys))
    shift = 64 - bits
    if kernels.ENABLED:
        return kernels.directory(np.ascontiguousarray(keys, np.uint64), shift)
    starts = np.arange(1 << bits, dtype=np.uint64) << np.uint64(shift)
    return np.append(np.searchsorted(keys, starts, side="left"), len(keys)).astype(np.int64)


def _id_hash(item_id: str) -> int:
    return int(xxhash.xxh3_64_intdigest(item_id.encode("utf-8", "surrogatepass")))


def id_hashes(ids: list[str]) -> np.ndarray:
    """The ids' hashes as stored in a segment's ``id_keys.u64`` (uint64)."""
    return np.fromiter(map(_id_hash, ids), dtype=np.uint64, count=len(ids))


def write_pairs(directory: Path, name: str, keys: np.ndarray, items: np.ndarray) -> None:
    """``{name}_keys.u64``, ``{name}_items.u32`` (pairs sorted by (key, item)) and ``{name}_dir.i64``."""
    (directory / f"{name}_keys.u64").write_bytes(np.ascontiguousarray(keys, "<u8").tobytes())
    (directory / f"{name}_items.u32").write_bytes(np.ascontiguousarray(items, "<u4").tobytes())
    (directory / f"{name}_dir.i64").write_bytes(build_directory(keys).astype("<i8").tobytes())


def sort_pairs(keys: np.ndarray, items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sort (key, item) pairs by key, stably (so by (key, item) when items were appended in order)."""
    if kernels.ENABLED and len(keys):
        k, it = kernels.sort_pairs(np.ascontiguousarray(keys, np.uint64), np.ascontiguousarray(items, np.uint32))
        return k, it
    order = np.argsort(keys, kind="stable")
    return keys[order], items[order]


class KeyTable:
    """A sorted uint64 key column, its item column and a directory on the keys' top bits.

    Keys are hashes (uniform): a directory of ``len(keys) / 16`` buckets leaves a handful of
    keys per bucket, so a lookup is one directory read and a short binary search. Before the
    kernel searches a bucket, the directory entries it uses are verified and checked to lie in
    order within the table, and the bucket's keys are verified: a hostile directory can give
    wrong answers, never a read out of bounds.

    Attributes:
        n_items: Item numbers must be below this.
    """

    def __init__(self, keys: Chunked, directory: Chunked, items: Chunked, n_items: int):
        self.keys_file, self.dir_file, self.items_file, self.n_items = keys, directory, items, n_items
        self.keys, self.items = keys.view("<u8"), items.view("<u4")
        self.directory = directory.view("<i8")
        self.shift = 64 - directory_bits(len(self.keys))

    def __len__(self) -> int:
        return len(self.keys)

    def _buckets(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        j = (q >> np.uint64(self.shift)).astype(np.int64)
        ends = self.dir_file.take(np.concatenate((j, j + 1)), "<i8")
        lo, hi = ends[: len(j)], ends[len(j):]
        if len(q) and (int(lo.min()) < 0 or bool((hi < lo).any()) or int(hi.max()) > len(self.keys)):
            raise hostile(self.dir_file.path, "directory entries out of order or out of range")
        return lo, hi

    def hits(self, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For the queries present in the table: (query position, lo, hi), in query order."""
        q = np.ascontiguousarray(queries, dtype=np.uint64)
        b_lo, b_hi = self._buckets(q)
        if len(q) <= min(SPARSE_RUNS, self.keys_file.budget) and int((b_hi - b_lo).sum()) <= SPARSE_MAX:
            owner, pos = expand(b_lo, b_hi)  # few keys: read them, not mapped (``Chunked.take``)
            eq = self.keys_file.take_ranges(b_lo, b_hi, "<u8") == q[owner]
            owner, pos = owner[eq], pos[eq]  # a bucket's equal keys are adjacent, owners ascending
            found, first, count = np.unique(owner, return_index=True, return_counts=True)
            return found.astype(np.int64), pos[first], pos[first] + count
        self.keys_file.ensure_rows(b_lo, b_hi, 8)
        if kernels.ENABLED:
            qi, lo, hi = kernels.probe_hits(self.keys, self.directory, self.shift, q)
            return qi, lo, hi
        lo = np.empty(len(q), np.int64)
        hi = np.empty(len(q), np.int64)
        for i, (a, b) in enumerate(zip(b_lo.tolist(), b_hi.tolist())):
            lo[i] = a + np.searchsorted(self.keys[a:b], q[i], side="left")
            hi[i] = a + np.searchsorted(self.keys[a:b], q[i], side="right")
        found = np.flatnonzero(hi > lo)
        return found, lo[found], hi[found]

    def item_numbers(self, rows: np.ndarray) -> np.ndarray:
        """The item numbers at ``rows`` (positions from ``hits`` ranges), verified and checked to be
        below ``n_items``, so that they may index the item arrays."""
        out = self.items_file.take(rows, "<u4")
        if len(out) and int(out.max()) >= self.n_items:
            raise hostile(self.items_file.path, "item number out of range")
        return out


_PAIR = np.dtype([("key", "<u8"), ("item", "<u4")])  # packed, 12 bytes
RUN_ROWS = 1 << 20  # pairs gathered in memory (12 MB) before they are written as one sorted run


class SpilledPairs:
    """(key, item) pairs spilled to a file as they come, read back in (key, item) order.

    Each ``add`` appends one run, partitioned by the key's top 8 bits (a stable
    counting sort); ``sorted_chunks`` then reads bucket by bucket across all runs and
    sorts each bucket alone. Memory is one bucket (about 1/256 of the table), not
    the table: the index build's peak memory does not grow with the reference size.
    """

    BUCKET_SHIFT = np.uint64(56)

    def __init__(self, path: Path):
        self.path = path
        self.file = open(path, "w+b")  # noqa: SIM115 - closed in close()
        self.runs: list[tuple[int, np.ndarray]] = []  # (file offset, bucket starts)
        self.n = 0
        self._held: list[tuple[np.ndarray, np.ndarray]] = []
        self._held_rows = 0

    def add(self, keys: np.ndarray, items: np.ndarray) -> None:
        """Append pairs; they are written as one run once ``RUN_ROWS`` have gathered (a run per call
        made reading back cost runs x 256 reads: 5M for 20,000 one-line files)."""
        if not len(keys):
            return
        self._held.append((np.asarray(keys, np.uint64), np.asarray(items, np.uint32)))
        self._held_rows += len(keys)
        if self._held_rows >= RUN_ROWS:
            self._write_run()

    def _write_run(self) -> None:
        if not self._held:
            return
        keys = np.concatenate([k for k, _ in self._held])
        items = np.concatenate([i for _, i in self._held])
        self._held, self._held_rows = [], 0
        bucket = (keys >> self.BUCKET_SHIFT).astype(np.uint8)
        order = np.argsort(bucket, kind="stable")
        rec = np.empty(len(keys), dtype=_PAIR)
        rec["key"], rec["item"] = keys[order], items[order]
        starts = np.zeros(257, dtype=np.int64)
        np.cumsum(np.bincount(bucket, minlength=256), out=starts[1:])
        self.runs.append((self.file.tell(), starts))
        self.file.write(rec.tobytes())
        self.n += len(keys)

    def sorted_chunks(self, min_rows: int = 1 << 20) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield (keys, items) chunks of at least ``min_rows`` (but the last), in (key, item) order."""
        self._write_run()
        self.file.flush()
        fd = self.file.fileno()
        keys: list[np.ndarray] = []
        items: list[np.ndarray] = []
        rows = 0
        size = _PAIR.itemsize
        for b in range(256):
            total = sum(int(starts[b + 1] - starts[b]) for _, starts in self.runs)
            if not total:
                continue
            buf = bytearray(total * size)
            view, at = memoryview(buf), 0
            for offset, starts in self.runs:
                lo, hi = int(starts[b]), int(starts[b + 1])
                if hi > lo:
                    os.preadv(fd, [view[at : at + (hi - lo) * size]], offset + lo * size)
                    at += (hi - lo) * size
            rec = np.frombuffer(buf, _PAIR)
            k, it = sort_pairs(np.ascontiguousarray(rec["key"]), np.ascontiguousarray(rec["item"]))
            keys.append(k)
            items.append(it)
            rows += len(k)
            if rows >= min_rows:
                yield np.concatenate(keys), np.concatenate(items)
                keys, items, rows = [], [], 0
        if rows or not self.n:
            yield (np.concatenate(keys) if keys else np.zeros(0, np.uint64)), (
                np.concatenate(items) if items else np.zeros(0, np.uint32))

    def close(self) -> None:
        self.file.close()
        self.path.unlink(missing_ok=True)
