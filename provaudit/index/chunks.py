"""Chunk checksums: every index file is hashed in fixed-size chunks, verified when first read.

An audit reads a few pages of a large index; hashing every file on every load cost
O(index size) per audit (5 s for 4M items). Instead the build hashes each file in
``CHUNK``-byte chunks and writes the 32-byte digests, file after file, to
``checksums.sha256``; the manifest holds, per file, where its digests start, how many
there are and the sha256 of its digest list (so the manifest's own checksum covers every
byte). An audit hashes ``checksums.sha256`` (1/8192 of the index) on load and each chunk
the first time it touches it: a changed byte in anything an audit reads is refused before
it is used, and ``verify_all`` (``provaudit verify``) checks every chunk.
"""

from __future__ import annotations

import hashlib
import mmap
import os
from pathlib import Path
from typing import Any

import numpy as np

from provaudit.errors import IndexFormatError
from provaudit.index.stamps import Stamp

CHUNK = 1 << 18  # 256 KiB: a 1-record audit touches a few dozen chunks
DIGEST = 32
SPARSE_MAX = 1 << 16  # values: reads of more go through the memory map (``Chunked.take``)
SPARSE_RUNS = 1024  # reads in at most this many runs of nearby values go through pread
SPARSE_GAP = 4096  # bytes: values closer than this are read in one run
SPARSE_BUDGET = 1 << 14  # runs read with pread from one file before it is read through its map only


def expand(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flatten ranges [lo, hi): (owner index, position) for every position."""
    cnt = hi - lo
    owner = np.repeat(np.arange(len(lo)), cnt)
    base = np.repeat(lo - (np.cumsum(cnt) - cnt), cnt)
    return owner, base + np.arange(int(cnt.sum()))


def shared_flags(n: int) -> np.ndarray:
    """``n`` booleans, False, in an anonymous shared mapping: processes forked after this (a run's local
    workers) see each other's writes, so a chunk one of them verified is not hashed again by the others.
    Only True is ever written, and only after the chunk matched its digest."""
    mem = mmap.mmap(-1, max(n, 1))  # MAP_SHARED | MAP_ANONYMOUS, zeroed
    return np.frombuffer(mem, dtype=bool, count=n)


def hostile(path: Path, what: str) -> IndexFormatError:
    """The one error for an index whose content cannot be trusted."""
    return IndexFormatError(f"{path}: corrupt or hostile index: {what}")


def file_digests(path: Path) -> bytes:
    """The concatenated sha256 digests of the file's ``CHUNK``-byte chunks (none for an empty file)."""
    out = bytearray()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            out += hashlib.sha256(chunk).digest()
    return bytes(out)


def digest_root(digests: bytes) -> str:
    """sha256 (hex) of a file's digest list: what the manifest records for it."""
    return hashlib.sha256(digests).hexdigest()


class Chunked:
    """A read-only memory map of one index file whose chunks are verified on first use.

    ``ensure_bytes``/``ensure_rows`` must be called for every byte range before it is read
    through ``data``; ``view`` returns the file as a numpy array of ``dtype``.

    Attributes:
        path: The file.
        size: Its size in bytes (checked against the manifest on open).
        digests: ``(chunks, 32)`` uint8 expected digests.
        verified: Per chunk, True once hashed and found equal.
    """

    def __init__(self, path: Path, size: int, digests: np.ndarray, verified: np.ndarray | None = None,
                 root: str | None = None):
        self.path, self.size, self.digests = path, size, digests
        # ``verified``: given by the segment, in memory its forked workers share (``shared_flags``)
        self.verified = np.zeros(len(digests), dtype=bool) if verified is None else verified
        self.complete = len(digests) == 0  # every chunk verified: nothing left to check
        self.stamp: Stamp | None = None  # ``root`` (the digests' checksum root) given: see ``index.stamps``
        self._map: mmap.mmap | None = None
        self._fd = -1
        self._budget = SPARSE_BUDGET  # a large audit soon spends it: its many lookups share the mapped pages
        if size:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
            try:
                if os.fstat(fd).st_size != size:
                    raise hostile(path, f"size {os.fstat(fd).st_size} bytes, manifest says {size}")
                self._map = mmap.mmap(fd, size, access=mmap.ACCESS_READ)
                if root is not None:
                    self.stamp = Stamp(fd, root, len(digests))
                    if self.stamp.valid:  # hashed whole by an earlier run, unchanged since
                        self.verified[:] = True
                        self.complete = True
            except BaseException:
                os.close(fd)
                raise
            self._fd = fd  # for pread: chunks hashed and sparse values read without mapping them

    @property
    def budget(self) -> int:
        """Runs this file may still be read in with pread (``take``)."""
        return self._budget if self._fd >= 0 else 0

    def __del__(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def view(self, dtype: np.dtype[Any] | str) -> np.ndarray:
        dt = np.dtype(dtype)
        if self.size % dt.itemsize:
            raise hostile(self.path, f"size {self.size} is not a multiple of {dt.itemsize} bytes")
        if self._map is None:
            return np.zeros(0, dtype=dt)
        return np.frombuffer(self._map, dtype=dt)

    def ensure_bytes(self, lo: np.ndarray, hi: np.ndarray) -> None:
        """Verify every chunk that byte ranges ``[lo, hi)`` touch (ranges must lie in the file)."""
        lo, hi = np.asarray(lo, dtype=np.int64).reshape(-1), np.asarray(hi, dtype=np.int64).reshape(-1)
        if self.complete:  # only the bounds left to check (empty ranges lie within them too)
            if len(lo) and (int(lo.min()) < 0 or int(hi.max()) > self.size):
                raise hostile(self.path, "a reference points outside the file")
            return
        live = hi > lo
        if not live.any():
            return
        lo, hi = lo[live], hi[live]
        if int(lo.min()) < 0 or int(hi.max()) > self.size:
            raise hostile(self.path, "a reference points outside the file")
        first, last = lo // CHUNK, (hi - 1) // CHUNK
        wanted = np.zeros(len(self.verified), dtype=bool)
        wanted[first] = True
        wanted[last] = True
        for a, b in zip(first[last - first > 1].tolist(), last[last - first > 1].tolist()):
            wanted[a : b + 1] = True
        for c in np.flatnonzero(wanted & ~self.verified).tolist():
            self._check(c)
        if self.verified.all():
            self._completed()

    def _completed(self) -> None:
        self.complete = True
        if self.stamp is not None:
            self.stamp.write()

    def ensure_range(self, lo: int, hi: int) -> None:
        """``ensure_bytes`` for one range (no array overhead: called per reported item)."""
        if hi <= lo:
            return
        if lo < 0 or hi > self.size:
            raise hostile(self.path, "a reference points outside the file")
        if self.complete:
            return
        for c in range(lo // CHUNK, (hi - 1) // CHUNK + 1):
            if not self.verified[c]:
                self._check(c)

    def ensure_rows(self, lo: np.ndarray, hi: np.ndarray, itemsize: int) -> None:
        """``ensure_bytes`` for element ranges ``[lo, hi)`` of ``itemsize``-byte values."""
        if self.complete:
            lo, hi = np.asarray(lo).reshape(-1), np.asarray(hi).reshape(-1)
            if len(lo) and (int(lo.min()) < 0 or int(hi.max()) * itemsize > self.size):
                raise hostile(self.path, "a reference points outside the file")
            return
        self.ensure_bytes(np.asarray(lo, np.int64) * itemsize, np.asarray(hi, np.int64) * itemsize)

    def take(self, idx: np.ndarray, dtype: np.dtype[Any] | str) -> np.ndarray:
        """The values at element positions ``idx`` (in bounds: the caller checks), verified.

        Values that lie in few runs (at most ``SPARSE_MAX`` values in ``SPARSE_RUNS`` runs of
        neighbours within ``SPARSE_GAP`` bytes) are read with ``pread`` instead of through the
        memory map: on a warm page cache the kernel maps a large folio (up to 2 MB) around every
        page read through a map, so a 1-record audit's few hundred lookups in a 4M-item index
        mapped ~400 MB. Scattered reads of many values go through the map, where that cost is
        shared, and so does everything once ``SPARSE_BUDGET`` runs were read from the file (a
        large audit: a pread costs more than touching a page already mapped).
        """
        dt = np.dtype(dtype)
        idx = np.asarray(idx, dtype=np.int64).reshape(-1)
        if 0 < len(idx) <= SPARSE_MAX and self._budget > 0 and self._fd >= 0:
            uniq, inverse = np.unique(idx, return_inverse=True)
            cut = np.flatnonzero(np.diff(uniq) * dt.itemsize > SPARSE_GAP) + 1
            if len(cut) < min(SPARSE_RUNS, self._budget):
                starts = uniq[np.concatenate(([0], cut))]
                ends = uniq[np.concatenate((cut - 1, [len(uniq) - 1]))] + 1
                values = self._pread_runs(starts, ends, dt)
                run = np.searchsorted(starts, uniq, side="right") - 1
                offsets = np.zeros(len(starts), dtype=np.int64)
                np.cumsum(ends[:-1] - starts[:-1], out=offsets[1:])
                result: np.ndarray = values[offsets[run] + (uniq - starts[run])][inverse.reshape(-1)]
                return result
        self.ensure_rows(idx, idx + 1, dt.itemsize)
        out: np.ndarray = self.view(dt)[idx]
        return out

    def take_ranges(self, lo: np.ndarray, hi: np.ndarray, dtype: np.dtype[Any] | str) -> np.ndarray:
        """The values of element ranges ``[lo, hi)`` (in bounds), concatenated in order, verified;
        through ``pread`` for few ranges (as ``take``), else through the map."""
        dt = np.dtype(dtype)
        lo, hi = np.asarray(lo, np.int64).reshape(-1), np.asarray(hi, np.int64).reshape(-1)
        live = hi > lo
        lo, hi = lo[live], hi[live]
        if 0 < len(lo) <= min(SPARSE_RUNS, self._budget) and int((hi - lo).sum()) <= SPARSE_MAX and self._fd >= 0:
            return self._pread_runs(lo, hi, dt)
        self.ensure_rows(lo, hi, dt.itemsize)
        out: np.ndarray = self.view(dt)[expand(lo, hi)[1]]
        return out

    def _pread_runs(self, starts: np.ndarray, ends: np.ndarray, dt: np.dtype[Any]) -> np.ndarray:
        """The values of ranges ``[starts, ends)``, concatenated, read with pread after verifying their chunks."""
        size = dt.itemsize
        self._budget -= len(starts)
        self.ensure_bytes(starts * size, ends * size)
        buf = bytearray(int((ends - starts).sum()) * size)
        view, at = memoryview(buf), 0
        for a, b in zip(starts.tolist(), ends.tolist()):
            want = (b - a) * size
            if os.preadv(self._fd, [view[at : at + want]], a * size) != want:
                raise hostile(self.path, "the file is shorter than its manifest says")
            at += want
        return np.frombuffer(buf, dtype=dt)

    def ensure_all(self) -> None:
        for c in np.flatnonzero(~self.verified).tolist():
            self._check(c)
        self._completed()

    def forget(self) -> None:
        """Mark every chunk unverified, whatever a stamp said (``provaudit verify`` hashes every byte)."""
        self.verified[:] = False
        self.complete = len(self.digests) == 0

    def _check(self, c: int) -> None:
        assert self._fd >= 0
        lo, hi = c * CHUNK, min(self.size, (c + 1) * CHUNK)
        got = hashlib.sha256(os.pread(self._fd, hi - lo, lo)).digest()  # not through the map: see ``take``
        if got != self.digests[c].tobytes():
            raise IndexFormatError(
                f"{self.path}: bytes {c * CHUNK}-{min(self.size, (c + 1) * CHUNK)} do not match their checksum "
                "(file changed or corrupt)")
        self.verified[c] = True

    def read(self, lo: int, hi: int) -> bytes:
        """Bytes ``[lo, hi)``, verified."""
        self.ensure_bytes(np.array([lo]), np.array([hi]))
        assert self._map is not None or hi <= lo
        return b"" if hi <= lo or self._map is None else self._map[lo:hi]
