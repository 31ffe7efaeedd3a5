"""Building an index: reference batches prepared (in workers), tables spilled and sorted, files written.

``prepare_items`` shingles, signs and anchors a batch of reference texts; ``prepare_parsed``
is the worker task that parses a block and prepares its batches (``run.workers`` maps it over
the blocks of every source in input order); ``IndexWriter`` streams the prepared items into a locked
temporary directory, sorts the band and anchor tables bucket by bucket with bounded memory
(``SpilledPairs``), writes the manifest and moves the index into place atomically. The
format is described in ``index``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import xxhash

from provaudit.fs import arrow
from provaudit.fs.atomic import commit_output_dir, prepare_output_dir, try_lock, unlock
from provaudit.read.blocks import batches
from provaudit.config import IndexConfig
from provaudit.errors import InputError
from provaudit.index.format import RAW_DTYPES, FILES, FORMAT, FORMAT_VERSION, manifest_checksum, sort_pairs
from provaudit.fs.hashing import sha256_file
from provaudit.read.records import ReadStats, Record
from provaudit.text.shingle import ShingleBatch, shingle_batch, unique_per_record
from provaudit.text.sketch import band_keys, signatures

T = TypeVar("T")


def _id_hash(item_id: str) -> int:
    return int(xxhash.xxh3_64_intdigest(item_id.encode("utf-8", "surrogatepass")))


def _items_schema(num_perm: int, keep_text: bool) -> pa.Schema:
    fields = [
        pa.field("id", pa.string()),
        pa.field("source", pa.string()),
        pa.field("row", pa.int64()),
        pa.field("n_tokens", pa.int64()),
        pa.field("n_shingles", pa.int32()),
        pa.field("n_seq", pa.int32()),
    ]
    if keep_text:
        fields.append(pa.field("text", pa.large_string()))
    return pa.schema(fields)



# Text-like columns compress; hash columns do not (and dictionary-encoding them wastes time).
_PARQUET = {"write_statistics": False, "use_dictionary": ["source"]}
_COMPRESS = {"id": "zstd", "source": "zstd", "row": "zstd", "n_tokens": "zstd", "n_shingles": "zstd", "n_seq": "zstd",
             "text": "zstd"}


def _arrow(a: np.ndarray) -> pa.Array:
    """A numpy vector as an Arrow array, zero-copy."""
    return arrow.array(a, pa.from_numpy_dtype(a.dtype))


@dataclass
class PreparedItems:
    """Everything the index stores about one batch of reference texts (computed in a worker).

    Attributes:
        hashes, offsets, n_tokens: The items' shingle hash sequences (a ShingleBatch's arrays).
        n_unique: Distinct shingles per item.
        signatures: uint32 ``(items, num_perm)``.
        bands: uint64 ``(items, bands)`` LSH band keys.
        anchor_keys, anchor_counts: The anchors (k smallest distinct hashes) of every item, concatenated.
    """

    hashes: np.ndarray
    offsets: np.ndarray
    n_tokens: np.ndarray
    n_unique: np.ndarray
    anchor_keys: np.ndarray
    anchor_counts: np.ndarray
    signatures: np.ndarray | None = None
    bands: np.ndarray | None = None

    def signed(self, config: IndexConfig) -> PreparedItems:
        """These items with their signatures and band keys (computed here if missing)."""
        if self.signatures is not None and self.bands is not None:
            return self
        sb = ShingleBatch(self.hashes, self.offsets, self.n_tokens)
        sigs = signatures(sb, config.num_perm, config.seed)
        return dataclasses.replace(self, signatures=sigs, bands=band_keys(sigs, config.bands, config.rows))


def prepare_items(texts: list[str], config: IndexConfig, *, sign: bool = True) -> PreparedItems:
    """Shingle, (sign, band) and anchor one batch of reference texts (a pure function of its inputs).

    Workers call it with ``sign=False``: signing is cheap (~0.5 us per post) next to sending
    512 bytes of signature per item back through a pipe, so the parent signs.
    """
    sb = shingle_batch(texts, config)
    ub = unique_per_record(sb)
    n_unique = np.diff(ub.offsets)
    rec = np.repeat(np.arange(len(texts)), n_unique)
    take = (np.arange(len(ub.hashes)) - ub.offsets[rec]) < config.anchors
    items = PreparedItems(sb.hashes, sb.offsets, sb.n_tokens, n_unique, ub.hashes[take],
                          np.minimum(n_unique, config.anchors))
    return items.signed(config) if sign else items


Prepared = tuple[list[str], list[int], "list[str] | None", PreparedItems]  # ids, rows, texts (keep_text), items


def prepare_parsed(config: IndexConfig, parse: Callable[[T], tuple[Iterable[Record], ReadStats]], raw: T,
                   ) -> tuple[ReadStats, list[Prepared]]:
    """Parse a block of input (``read.blocks.BlockReading.parse``), then ``prepare_items`` it batch by
    batch, unsigned (a worker task: signing is cheap next to sending 512 bytes of signature per item
    back through a pipe, so the parent signs, ``PreparedItems.signed``)."""
    records, stats = parse(raw)
    out: list[Prepared] = []
    for b in batches(records):
        texts = [r.text for r in b]
        out.append(([r.id for r in b], [r.row for r in b], texts if config.keep_text else None,
                    prepare_items(texts, config, sign=False)))
    return stats, out


_PAIR = np.dtype([("key", "<u8"), ("item", "<u4")])  # packed, 12 bytes


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

    def add(self, keys: np.ndarray, items: np.ndarray) -> None:
        if not len(keys):
            return
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


class IndexWriter:
    """Streams reference items into a temporary index directory, then commits it.

    Example:
        >>> w = IndexWriter(Path("ref.idx"), IndexConfig(), force=True)  # doctest: +SKIP
        >>> w.add(ids, sources, rows, prepare_items(texts, w.config), None)  # doctest: +SKIP
        >>> w.finish(manifest_extra)                                     # doctest: +SKIP
    """

    def __init__(self, dest: Path, config: IndexConfig, *, force: bool = False):
        self.dest, self.config = dest, config.resolved()
        self.tmp = prepare_output_dir(dest, force, "manifest.json")
        self._lock = try_lock(self.tmp)  # marks the build as live for remove_stale_siblings
        self.schema = _items_schema(self.config.num_perm, self.config.keep_text)
        self._items = pq.ParquetWriter(self.tmp / "items.parquet", self.schema, compression=_COMPRESS, **_PARQUET)
        self._seqs = open(self.tmp / "sequences.u64", "wb")  # noqa: SIM115 - closed in finish/abort
        self._sigs = open(self.tmp / "signatures.u32", "wb")  # noqa: SIM115
        self._bands = SpilledPairs(self.tmp / "bands.spill")
        self._anchors = SpilledPairs(self.tmp / "anchors.spill")
        self._id_hashes: list[np.ndarray] = []
        self.n_items = 0
        self.n_tokens = 0
        self.n_shingles = 0

    def add(self, ids: list[str], sources: list[str], rows: list[int], items: PreparedItems,
            texts: list[str] | None) -> None:
        """Append one batch of reference items (in input order; ``items`` signed)."""
        assert items.signatures is not None and items.bands is not None, "call PreparedItems.signed first"
        n = len(ids)
        item_no = np.arange(self.n_items, self.n_items + n, dtype=np.uint32)
        cols: list[Any] = [
            arrow.array(ids, pa.string()),
            arrow.array(sources, pa.string()),
            _arrow(np.asarray(rows, dtype=np.int64)),
            _arrow(items.n_tokens.astype(np.int64)),
            _arrow(items.n_unique.astype(np.int32)),
            _arrow(np.diff(items.offsets).astype(np.int32)),
        ]
        if self.config.keep_text:
            cols.append(arrow.array(texts or [], pa.large_string()))
        self._items.write_table(pa.Table.from_arrays(cols, schema=self.schema), row_group_size=max(n, 1))
        self._seqs.write(np.ascontiguousarray(items.hashes[items.offsets[0] : items.offsets[-1]], "<u8").tobytes())
        self._sigs.write(np.ascontiguousarray(items.signatures, "<u4").tobytes())
        # bands: every band key of every non-empty item
        nonempty = items.n_unique > 0
        self._bands.add(items.bands[nonempty].reshape(-1), np.repeat(item_no[nonempty], items.bands.shape[1]))
        self._anchors.add(items.anchor_keys, np.repeat(item_no, items.anchor_counts))
        self._id_hashes.append(np.fromiter(map(_id_hash, ids), dtype=np.uint64, count=n))
        self.n_items += n
        self.n_tokens += int(items.n_tokens.sum())
        self.n_shingles += int(items.n_unique.sum())

    def _write_table(self, name: str, pairs: SpilledPairs) -> None:
        """``{name}_keys.u64`` and ``{name}_items.u32``, sorted by (key, item)."""
        with open(self.tmp / f"{name}_keys.u64", "wb") as keys, open(self.tmp / f"{name}_items.u32", "wb") as items:
            for k, it in pairs.sorted_chunks():
                keys.write(np.ascontiguousarray(k, "<u8").tobytes())
                items.write(np.ascontiguousarray(it, "<u4").tobytes())
        pairs.close()

    def _check_unique_ids(self) -> None:
        """Raise InputError naming the first repeated id (in input order), as a reader would meet it."""
        h = np.concatenate(self._id_hashes) if self._id_hashes else np.zeros(0, np.uint64)
        self._id_hashes.clear()
        order = np.argsort(h, kind="stable")
        hs = h[order]
        rep = np.flatnonzero(hs[1:] == hs[:-1]) + 1
        if not len(rep):
            return
        # candidates: each later member of a group of equal hashes, with the group's first member
        group_first = np.maximum.accumulate(np.where(np.r_[True, hs[1:] != hs[:-1]], np.arange(len(hs)), 0))
        later, first = order[rep], order[group_first[rep]]
        meta = arrow.read_table(self.tmp / "items.parquet", columns=["id", "source", "row"])
        ids = meta.column("id")
        for j in np.argsort(later, kind="stable"):
            b, a = int(later[j]), int(first[j])
            if ids[a].as_py() != ids[b].as_py():  # a 64-bit hash collision: look for the true first one
                same = [i for i in order[group_first[rep[j]] : rep[j]].tolist() if ids[i].as_py() == ids[b].as_py()]
                if not same:
                    continue
                a = min(same)
            raise InputError(
                f"{meta.column('source')[b].as_py()} row {meta.column('row')[b].as_py() + 1}: duplicate reference id "
                f"{ids[b].as_py()!r} (first at {meta.column('source')[a].as_py()} row {meta.column('row')[a].as_py() + 1}); "
                "ids must be unique (or use --id-field)"
            )

    def finish(self, manifest: dict[str, Any]) -> dict[str, Any]:
        """Write the lookup tables and manifest, then atomically move the index into place.

        Raises:
            InputError: if two reference items have the same id (nothing is written).
        """
        for w in (self._items, self._seqs, self._sigs):
            w.close()
        self._check_unique_ids()
        self._write_table("band", self._bands)
        self._write_table("anchor", self._anchors)
        files = {}
        for name in FILES:
            p = self.tmp / name
            size = p.stat().st_size
            rows = size // RAW_DTYPES[name].itemsize if name in RAW_DTYPES else pq.ParquetFile(p).metadata.num_rows
            files[name] = {"sha256": sha256_file(p), "bytes": size, "rows": rows}
        full = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "config": self.config.to_dict(),
            "fingerprint": self.config.fingerprint(),
            "counts": {"items": self.n_items, "tokens": self.n_tokens, "distinct_shingles": self.n_shingles},
            "files": files,
            **manifest,
        }
        full["manifest_checksum"] = manifest_checksum(full)
        (self.tmp / "manifest.json").write_text(json.dumps(full, indent=2, sort_keys=True) + "\n")
        commit_output_dir(self.tmp, self.dest)
        unlock(self._lock)
        return full

    def abort(self) -> None:
        """Remove the temporary directory (the destination is left untouched)."""
        try:
            for w in (self._items, self._seqs, self._sigs):
                w.close()
            self._bands.close()
            self._anchors.close()
        except Exception:  # noqa: BLE001 - best effort cleanup
            pass
        shutil.rmtree(self.tmp, ignore_errors=True)
        unlock(self._lock)
