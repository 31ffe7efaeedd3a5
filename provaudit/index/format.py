"""The index on disk: its format and lookup tables, loaded and verified (built by ``index_build``).

Layout of an index directory::

    manifest.json       format version, parameters, inputs, counts, sha256 of every file
    items.parquet       one row per reference item: id, source, row, n_tokens, n_shingles,
                        n_seq (length of its shingle sequence), [text] (only with keep_text)
    sequences.u64       raw little-endian uint64: every item's shingle hashes in text order, items
                        concatenated in item order (item i owns the n_seq[i] values after items < i)
    signatures.u32      raw little-endian uint32: MinHash signatures, items x num_perm, row-major
    band_keys.u64       LSH band table, sorted by (key, item): raw little-endian uint64 keys ...
    band_items.u32      ... and the uint32 item of each key
    anchor_keys.u64     containment anchors, sorted by (key, item): keys ...
    anchor_items.u32    ... and items

The index holds hashes, not text (unless built with ``keep_text``). Items are
numbered by their row in ``items.parquet``. Hashes do not compress, so everything
but the per-item table is stored as raw fixed-width files that are memory-mapped on
load: no decoding, no copy, pages shared by forked workers and read on demand.

Note:
    Format version 3 (issue #4) moved the ``shingles`` and ``signature`` list
    columns of ``items.parquet`` (version 1) into ``sequences.u64`` and
    ``signatures.u32``; version 4 did the same for the band and anchor tables
    (``bands.parquet`` and ``anchors.parquet``, which took 0.3 s to decode on every
    load of a 200,000-item index). Older indexes must be rebuilt.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from provaudit.fs import arrow
from provaudit.text import kernels
from provaudit.config import IndexConfig
from provaudit.errors import IndexFormatError
from provaudit.fs.hashing import json_checksum, sha256_file

FORMAT = "provaudit-index"
FORMAT_VERSION = 4
FILES = ("items.parquet", "sequences.u64", "signatures.u32", "band_keys.u64", "band_items.u32", "anchor_keys.u64",
         "anchor_items.u32")
RAW_DTYPES: dict[str, np.dtype[Any]] = {name: np.dtype("<u8" if name.endswith(".u64") else "<u4")
                                  for name in FILES if not name.endswith(".parquet")}


class KeyTable:
    """A sorted uint64 key column with a directory on the keys' top bits, for fast batched lookup.

    Keys are hashes (uniform), so a directory of about ``len(keys) / 8`` buckets
    leaves a handful of keys per bucket: a lookup is one directory read and a
    short binary search instead of ~25 cache-missing steps of ``np.searchsorted``
    (about 20x faster on large batches). Memory: 1 byte per key.

    Example:
        >>> t = KeyTable(np.array([3, 5, 5, 9], dtype=np.uint64))
        >>> [a.tolist() for a in t.ranges(np.array([5, 6], dtype=np.uint64))]
        [[1, 3], [3, 3]]
    """

    def __init__(self, keys: np.ndarray):
        self.keys = np.ascontiguousarray(keys, dtype=np.uint64)
        bits = int(min(24, max(1, np.log2(max(len(self.keys), 16) / 8))))
        self.shift = 64 - bits
        if kernels.ENABLED:
            self.directory = kernels.directory(self.keys, self.shift)
        else:
            starts = np.arange(1 << bits, dtype=np.uint64) << np.uint64(self.shift)
            self.directory = np.append(np.searchsorted(self.keys, starts, side="left"), len(self.keys)).astype(np.int64)

    def __len__(self) -> int:
        return len(self.keys)

    def ranges(self, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``searchsorted(keys, q, "left")`` and ``searchsorted(keys, q, "right")``, element-wise."""
        q = np.ascontiguousarray(queries, dtype=np.uint64)
        if kernels.ENABLED:
            lo, hi = kernels.probe(self.keys, self.directory, self.shift, q)
            return lo, hi
        return np.searchsorted(self.keys, q, side="left"), np.searchsorted(self.keys, q, side="right")

    def hits(self, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For the queries present in the table: (query position, lo, hi), in query order."""
        q = np.ascontiguousarray(queries, dtype=np.uint64)
        if kernels.ENABLED:
            qi, lo, hi = kernels.probe_hits(self.keys, self.directory, self.shift, q)
            return qi, lo, hi
        lo, hi = self.ranges(q)
        found = np.flatnonzero(hi > lo)
        return found, lo[found], hi[found]


def sort_pairs(keys: np.ndarray, items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sort (key, item) pairs by key, stably (so by (key, item) when items were appended in order)."""
    if kernels.ENABLED and len(keys):
        k, it = kernels.sort_pairs(np.ascontiguousarray(keys, np.uint64), np.ascontiguousarray(items, np.uint32))
        return k, it
    order = np.argsort(keys, kind="stable")
    return keys[order], items[order]


@dataclass
class Index:
    """A loaded, verified index. Arrays are numpy views of the memory-mapped files and of items.parquet.

    Attributes:
        path: Index directory.
        manifest: Parsed manifest.json.
        config: Parameters the index was built with.
        ids: Reference item ids (pyarrow StringArray, by item number).
        n_tokens, n_shingles: Per item token count and distinct shingle count.
        seq_offsets, seq_hashes: Shingle hash sequences (text order) of all items.
        signatures: uint32 ``(items, num_perm)``; None when loaded with ``signatures=False``.
        band_keys, band_items, anchor_keys, anchor_items: Sorted lookup tables.
        band_table, anchor_table: The same keys with a lookup directory (``KeyTable``).
        items: The items table (ids, sources, rows, counts, optional text).
    """

    path: Path
    manifest: dict[str, Any]
    config: IndexConfig
    items: pa.Table
    ids: Any
    n_tokens: np.ndarray
    n_shingles: np.ndarray
    seq_offsets: np.ndarray
    seq_hashes: np.ndarray
    signatures: np.ndarray | None  # None when loaded without them (audits)
    band_keys: np.ndarray
    band_items: np.ndarray
    anchor_keys: np.ndarray
    anchor_items: np.ndarray
    band_table: KeyTable
    anchor_table: KeyTable

    def __len__(self) -> int:
        return len(self.n_tokens)

    def sequence(self, item: int) -> np.ndarray:
        return self.seq_hashes[self.seq_offsets[item] : self.seq_offsets[item + 1]]


def manifest_checksum(manifest: dict[str, Any]) -> str:
    """sha256 of the manifest's content (canonical JSON, without this field): the manifest
    names every file's sha256, so its own integrity closes the chain."""
    return json_checksum(manifest, "manifest_checksum", prefix="sha256:")


def _raw(path: Path) -> np.ndarray:
    """A raw fixed-width file, memory-mapped read-only (an empty file gives an empty array)."""
    dtype = RAW_DTYPES[path.name]
    if path.stat().st_size % dtype.itemsize:
        raise IndexFormatError(f"{path}: size is not a multiple of {dtype.itemsize} bytes (truncated?)")
    out: np.ndarray = np.zeros(0, dtype=dtype) if path.stat().st_size == 0 else np.memmap(path, dtype=dtype, mode="r")
    return out


def read_manifest(path: Path) -> dict[str, Any]:
    """Parse and check ``path/manifest.json`` (format, version and its own checksum).

    Raises:
        IndexFormatError: if it is missing, unparsable, of another format or version, or changed.
    """
    mpath = path / "manifest.json"
    if not path.is_dir():
        raise IndexFormatError(f"{path}: not an index directory")
    if not mpath.is_file():
        raise IndexFormatError(f"{path}: no manifest.json (not a provaudit index, or an incomplete build)")
    try:
        manifest = json.loads(mpath.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise IndexFormatError(f"{mpath}: corrupt manifest ({e})") from e
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise IndexFormatError(f"{mpath}: not a provaudit index manifest")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise IndexFormatError(
            f"{path}: index format version {manifest.get('format_version')} is not supported by this "
            f"provaudit (reads version {FORMAT_VERSION}); rebuild the index"
        )
    if manifest.get("manifest_checksum") != manifest_checksum(manifest):
        raise IndexFormatError(f"{mpath}: manifest checksum does not match its content (file changed or corrupt)")
    return manifest


def load_index(path: Path, *, verify: bool = True, signatures: bool = True) -> Index:
    """Load an index directory, checking its format version and file hashes.

    The files are hashed on two threads (hashlib releases the GIL) while they are read; a file
    that does not match its manifest hash is reported before any other problem.

    Args:
        signatures: Also map (and verify) ``signatures.u32``. Audits do not read the stored
            signatures (they recompute the few they report from the items' shingle sequences),
            so they skip the largest file: every file that is read is verified, and only those
            (``signatures.u32`` is then only checked for its size).

    Raises:
        IndexFormatError: on a missing, changed, truncated or unreadable file.
    """
    from concurrent.futures import ThreadPoolExecutor

    manifest = read_manifest(path)
    try:
        config = IndexConfig.from_dict(manifest["config"])
        expected_sha = {name: manifest["files"][name]["sha256"] for name in FILES}
    except (KeyError, TypeError) as e:
        raise IndexFormatError(f"{path}: manifest lacks {e}") from e
    for name in FILES:
        if not (path / name).is_file():
            raise IndexFormatError(f"{path}: missing {name}")
    read = [n for n in FILES if signatures or n != "signatures.u32"]
    problem: Exception | None = None
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="provaudit-verify") as pool:
        largest_first = sorted(read, key=lambda n: -(path / n).stat().st_size) if verify else []
        hashing = {n: pool.submit(sha256_file, path / n) for n in largest_first}
        try:
            items = pq.ParquetFile(path / "items.parquet", memory_map=True).read()
            raw = {name: _raw(path / name) for name in RAW_DTYPES if name in read}
        except (pa.ArrowException, OSError, IndexFormatError) as e:
            problem = e
    for name in FILES:
        if name in hashing and hashing[name].result() != expected_sha[name]:
            raise IndexFormatError(f"{path / name}: sha256 does not match the manifest (file changed or corrupt)")
    if isinstance(problem, IndexFormatError):
        raise problem
    if problem is not None:
        raise IndexFormatError(f"{path}: unreadable index file ({problem})") from problem
    expected = manifest.get("counts", {}).get("items")
    if len(items) != expected:
        raise IndexFormatError(f"{path}: items.parquet has {len(items)} rows, manifest says {expected}")
    n_seq = arrow.to_numpy(items.column("n_seq"), np.int32)
    seq_offsets = np.zeros(len(n_seq) + 1, dtype=np.int64)
    np.cumsum(n_seq, out=seq_offsets[1:])
    seq_hashes = raw["sequences.u64"]
    n_sigs = len(raw["signatures.u32"]) if signatures else (path / "signatures.u32").stat().st_size // 4
    if len(seq_hashes) != seq_offsets[-1] or n_sigs != len(items) * config.num_perm:
        raise IndexFormatError(f"{path}: sequences or signatures do not match items.parquet")
    band_keys, anchor_keys = raw["band_keys.u64"], raw["anchor_keys.u64"]
    if len(band_keys) != len(raw["band_items.u32"]) or len(anchor_keys) != len(raw["anchor_items.u32"]):
        raise IndexFormatError(f"{path}: a key file and its item file differ in length")
    return Index(
        path=path,
        manifest=manifest,
        config=config,
        items=items,
        ids=items.column("id").combine_chunks(),
        n_tokens=arrow.to_numpy(items.column("n_tokens"), np.int64),
        n_shingles=arrow.to_numpy(items.column("n_shingles"), np.int32).astype(np.int64),
        seq_offsets=seq_offsets,
        seq_hashes=seq_hashes,
        signatures=raw["signatures.u32"].reshape(len(items), config.num_perm) if signatures else None,
        band_keys=band_keys,
        band_items=raw["band_items.u32"],
        anchor_keys=anchor_keys,
        anchor_items=raw["anchor_items.u32"],
        band_table=KeyTable(band_keys),
        anchor_table=KeyTable(anchor_keys),
    )
