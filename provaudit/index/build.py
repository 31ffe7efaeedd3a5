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
import os
import shutil
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from provaudit.fs import arrow
from provaudit.fs.atomic import commit_output_dir, fsync_dir, fsync_files, prepare_output_dir, try_lock, unlock
from provaudit.read.blocks import batches
from provaudit.config import IndexConfig
from provaudit.errors import InputError
from provaudit.index.check import anchor_classes, dependent_rows, low_items, shape_table, short_needs, token_shape_table
from provaudit.index.chunks import DIGEST, digest_root, file_digests
from provaudit.index.manifest import (
    CHECKSUMS, FILES, MARKER, PARTIAL_SEGMENT, RAW, anchor_plan, index_manifest, manifest_text, segment_name,
)
from provaudit.index.items import ROW_GROUP
from provaudit.index.keytable import SpilledPairs, build_directory, id_hashes, sort_pairs, write_pairs
from provaudit.read.records import ReadStats, Record
from provaudit.text.shingle import ShingleBatch, shingle_batch, unique_per_record
from provaudit.text.sketch import band_keys, signatures

T = TypeVar("T")


def _items_schema(keep_text: bool) -> pa.Schema:
    fields = [pa.field("id", pa.string()), pa.field("source", pa.string()), pa.field("row", pa.int64())]
    if keep_text:
        fields.append(pa.field("text", pa.large_string()))
    return pa.schema(fields)


# Text-like columns compress; hash columns do not (and dictionary-encoding them wastes time).
_PARQUET = {"write_statistics": False, "use_dictionary": ["source"]}
_COMPRESS = {"id": "zstd", "source": "zstd", "row": "zstd", "text": "zstd"}
GATHER_ITEMS = 4096  # items of small batches (one-line files) written together
_GROUP_TEXT_BYTES = 64 << 20  # with keep_text, a row group holds at most about this much text


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
        tabled: Their band and anchor keys are already in the writer's tables
            (``IndexWriter.add_tables``: items read back from a part built by a Ray task); they are
            neither signed nor anchored again, and ``anchor_keys``/``anchor_counts`` are left empty.
    """

    hashes: np.ndarray
    offsets: np.ndarray
    n_tokens: np.ndarray
    n_unique: np.ndarray
    anchor_keys: np.ndarray
    anchor_counts: np.ndarray
    signatures: np.ndarray | None = None
    bands: np.ndarray | None = None
    tabled: bool = False

    def signed(self, config: IndexConfig) -> PreparedItems:
        """These items with their signatures and band keys (computed here if missing)."""
        if self.tabled or (self.signatures is not None and self.bands is not None):
            return self
        sb = ShingleBatch(self.hashes, self.offsets, self.n_tokens)
        sigs = signatures(sb, config.num_perm, config.seed)
        return dataclasses.replace(self, signatures=sigs, bands=band_keys(sigs, config.bands, config.rows))


def _concat(parts: list[PreparedItems]) -> PreparedItems:
    """Batches of prepared items as one batch (in order)."""
    hashes = np.concatenate([p.hashes[p.offsets[0] : p.offsets[-1]] for p in parts])
    lengths = np.concatenate([np.diff(p.offsets) for p in parts])
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    signed = all(p.signatures is not None and p.bands is not None for p in parts)
    tabled = all(p.tabled for p in parts)
    assert tabled or not any(p.tabled for p in parts), "items of parts and items to sign in one writer"
    return PreparedItems(
        hashes, offsets, np.concatenate([p.n_tokens for p in parts]), np.concatenate([p.n_unique for p in parts]),
        np.concatenate([p.anchor_keys for p in parts]), np.concatenate([p.anchor_counts for p in parts]),
        np.concatenate([p.signatures for p in parts]) if signed else None,
        np.concatenate([p.bands for p in parts]) if signed else None,
        tabled,
    )


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


def prepare_whole(config: IndexConfig, tasks: list[tuple[Callable[[Any], tuple[Iterable[Record], ReadStats]], Any]],
                  ) -> tuple[list[ReadStats], list[int], Prepared | None]:
    """``prepare_parsed`` for the blocks of many small files at once (``run.small.SmallFiles``): their
    records prepared as one batch, so that a one-line file does not pay a batch's fixed cost (items are
    prepared record by record: the index is the same). Each task's ReadStats and record count, and the
    one Prepared of them all (None without records)."""
    counted: list[ReadStats] = []
    counts: list[int] = []
    ids: list[str] = []
    rows: list[int] = []
    texts: list[str] = []
    for parse, raw in tasks:
        records, stats = parse(raw)
        before = len(ids)
        for r in records:
            ids.append(r.id)
            rows.append(r.row)
            texts.append(r.text)
        counted.append(stats)
        counts.append(len(ids) - before)
    if not ids:
        return counted, counts, None
    return counted, counts, (ids, rows, texts if config.keep_text else None, prepare_items(texts, config, sign=False))


prepare_parsed.whole = prepare_whole  # type: ignore[attr-defined]  # run.small.SmallFiles runs its files' blocks with it


class IndexWriter:
    """Streams reference items into a temporary index directory, then commits it.

    Example:
        >>> w = IndexWriter(Path("ref.idx"), IndexConfig(), force=True)  # doctest: +SKIP
        >>> w.add(ids, sources, rows, prepare_items(texts, w.config), None)  # doctest: +SKIP
        >>> w.finish(manifest_extra)                                     # doctest: +SKIP
    """

    def __init__(self, dest: Path, config: IndexConfig, *, force: bool = False, segment: Path | None = None,
                 check_ids: bool = True, keep: bool = False):
        self.dest, self.config, self.force, self.check_ids = dest, config.resolved(), force, check_ids
        self.tmp: Path | None = None
        self._lock: int | None = None
        if segment is None:  # a new index: its only segment, in a temporary directory moved into place
            self.tmp = prepare_output_dir(dest, force, MARKER)
            self._lock = try_lock(self.tmp)  # marks the build as live for remove_stale_siblings
            segment = self.tmp / PARTIAL_SEGMENT.format(0)
        self.seg: Path = segment  # where the files are written (``add``: a partial segment of the index)
        self.seg.mkdir()
        self.schema = _items_schema(self.config.keep_text)
        self._items = pq.ParquetWriter(self.seg / "items.parquet", self.schema, compression=_COMPRESS, **_PARQUET)
        self._pending: list[pa.Table] = []
        self._pending_rows = self._pending_bytes = 0
        self._raw = {name: open(self.seg / name, "wb")  # noqa: SIM115 - closed in finish/abort
                     for name in ("seq_offsets.i64", "sequences.u64", "n_tokens.u32", "n_shingles.u32")}
        self._raw["seq_offsets.i64"].write(np.zeros(1, "<i8").tobytes())
        self._seq_end = 0
        self._bands = SpilledPairs(self.seg / "bands.spill")
        self._anchors = SpilledPairs(self.seg / "anchors.spill")
        self._id_hashes: list[np.ndarray] = []
        self._held: list[tuple[list[str], list[str], list[int], PreparedItems, list[str] | None]] = []
        self._held_items = 0
        self.plan = anchor_plan()  # settings of the stored anchor plan (``add``, ``compact``: the index's)
        self.n_items = 0
        self.n_tokens = 0
        self.n_shingles = 0
        # keep: the index is made of these segments, moved into ``tmp`` (index.parts.keep_segments)
        self.kept: list[tuple[str, dict[str, Any]]] | None = [] if keep else None

    def add(self, ids: list[str], sources: list[str], rows: list[int], items: PreparedItems,
            texts: list[str] | None) -> None:
        """Append one batch of reference items (in input order; signed here when ``items`` are not).

        Batches are gathered until ``GATHER_ITEMS`` items (a one-line file is a batch of one) and
        written together: the files are the same, the cost per batch is paid once.
        """
        self._held.append((ids, sources, rows, items, texts))
        self._held_items += len(ids)
        if self._held_items >= GATHER_ITEMS:
            self._write_held()

    @property
    def next_item(self) -> int:  # the number of the next item added
        return self.n_items + self._held_items

    def add_tables(self, base: int, bands: tuple[np.ndarray, np.ndarray], anchors: tuple[np.ndarray, np.ndarray]) -> None:
        """Add the band and anchor (key, item) pairs of items added as ``tabled`` (a part's tables, sorted by
        (key, item), items numbered from 0 within the part, ``base`` the number of its first item here).
        Parts must come in item order: the tables then sort as if their items had been added one by one."""
        self._bands.add(bands[0], bands[1].astype(np.uint32) + np.uint32(base))
        self._anchors.add(anchors[0], anchors[1].astype(np.uint32) + np.uint32(base))

    def _write_held(self) -> None:
        held, self._held, self._held_items = self._held, [], 0
        if not held:
            return
        if len(held) == 1:
            ids, sources, rows, items, texts = held[0]
        else:
            ids = [i for h in held for i in h[0]]
            sources = [s for h in held for s in h[1]]
            rows = [r for h in held for r in h[2]]
            items = _concat([h[3] for h in held])
            texts = None if held[0][4] is None else [t for h in held for t in (h[4] or [])]
        self._append(ids, sources, rows, items.signed(self.config), texts)

    def _append(self, ids: list[str], sources: list[str], rows: list[int], items: PreparedItems,
                texts: list[str] | None) -> None:
        assert items.tabled or (items.signatures is not None and items.bands is not None)
        n = len(ids)
        item_no = np.arange(self.n_items, self.n_items + n, dtype=np.uint32)
        cols: list[Any] = [arrow.array(ids, pa.string()), arrow.array(sources, pa.string()),
                            _arrow(np.asarray(rows, dtype=np.int64))]
        if self.config.keep_text:
            cols.append(arrow.array(texts or [], pa.large_string()))
        self._buffer(pa.Table.from_arrays(cols, schema=self.schema), sum(map(len, texts or [])))
        if len(items.n_tokens) and int(items.n_tokens.max()) >= 1 << 32:
            raise InputError(f"{sources[int(np.argmax(items.n_tokens))]}: a reference item of more than 2**32 tokens")
        ends = self._seq_end + items.offsets[1:] - items.offsets[0]
        self._seq_end += int(items.offsets[-1] - items.offsets[0])
        self._raw["seq_offsets.i64"].write(np.ascontiguousarray(ends, "<i8").tobytes())
        self._raw["sequences.u64"].write(
            np.ascontiguousarray(items.hashes[items.offsets[0] : items.offsets[-1]], "<u8").tobytes())
        self._raw["n_tokens.u32"].write(np.ascontiguousarray(items.n_tokens, "<u4").tobytes())
        self._raw["n_shingles.u32"].write(np.ascontiguousarray(items.n_unique, "<u4").tobytes())
        if not items.tabled:  # bands: every band key of every non-empty item
            assert items.bands is not None
            nonempty = (items.n_unique > 0) & self.config.band_table
            self._bands.add(items.bands[nonempty].reshape(-1), np.repeat(item_no[nonempty], items.bands.shape[1]))
            self._anchors.add(items.anchor_keys, np.repeat(item_no, items.anchor_counts))
        self._id_hashes.append(id_hashes(ids))
        self.n_items += n
        self.n_tokens += int(items.n_tokens.sum())
        self.n_shingles += int(items.n_unique.sum())

    def _buffer(self, table: pa.Table, text_bytes: int) -> None:
        """Collect items into row groups of ``ROW_GROUP`` rows (fewer when long texts are kept)."""
        self._pending.append(table)
        self._pending_rows += table.num_rows
        self._pending_bytes += text_bytes
        if self._pending_rows < ROW_GROUP and self._pending_bytes < _GROUP_TEXT_BYTES:
            return
        whole = pa.concat_tables(self._pending)
        while whole.num_rows >= ROW_GROUP:
            self._items.write_table(whole.slice(0, ROW_GROUP), row_group_size=ROW_GROUP)
            whole = whole.slice(ROW_GROUP)
        if self._pending_bytes >= _GROUP_TEXT_BYTES and whole.num_rows:
            self._items.write_table(whole, row_group_size=whole.num_rows)
            whole = whole.slice(whole.num_rows)
        self._pending = [whole] if whole.num_rows else []
        self._pending_rows = whole.num_rows
        self._pending_bytes = 0

    def _close_items(self) -> None:
        self._write_held()
        if self._pending_rows:
            whole = pa.concat_tables(self._pending)
            self._items.write_table(whole, row_group_size=whole.num_rows)
        self._pending, self._pending_rows = [], 0
        self._items.close()
        for f in self._raw.values():
            f.close()

    def _write_table(self, name: str, pairs: SpilledPairs) -> None:
        """``{name}_keys.u64``, ``{name}_items.u32`` (sorted by (key, item)) and ``{name}_dir.i64``."""
        with open(self.seg / f"{name}_keys.u64", "wb") as keys, open(self.seg / f"{name}_items.u32", "wb") as items:
            for k, it in pairs.sorted_chunks():
                keys.write(np.ascontiguousarray(k, "<u8").tobytes())
                items.write(np.ascontiguousarray(it, "<u4").tobytes())
        pairs.close()
        (self.seg / f"{name}_dir.i64").write_bytes(build_directory(self._map(f"{name}_keys.u64")).astype("<i8").tobytes())

    def _write_ids(self) -> None:  # id_keys.u64, id_items.u32, id_dir.i64: the id hashes by (hash, item)
        h = np.concatenate(self._id_hashes) if self._id_hashes else np.zeros(0, np.uint64)
        self._id_hashes.clear()
        write_pairs(self.seg, "id", *sort_pairs(h, np.arange(len(h), dtype=np.uint32)))

    def _map(self, name: str) -> np.ndarray:
        p = self.seg / name
        out: np.ndarray = np.memmap(p, dtype=RAW[name], mode="r") if p.stat().st_size else np.zeros(0, RAW[name])
        return out

    def _write_plan(self) -> None:
        """``anchor_usable.u8``, ``anchor_need.u8``, the shape tables, ``low_items.u32`` and the ``dep_*``
        table: what audits need of the anchor table, computed once."""
        keys, items, p = self._map("anchor_keys.u64"), self._map("anchor_items.u32"), self.plan
        usable, long = anchor_classes(keys, items, self.n_items, p["max_postings"], p["long_postings"])
        (self.seg / "anchor_usable.u8").write_bytes(usable.astype("u1").tobytes())
        n_shingles = self._map("n_shingles.u32").astype(np.int64)
        (self.seg / "shapes.i64").write_bytes(shape_table(n_shingles, usable).astype("<i8").tobytes())
        (self.seg / "token_shapes.i64").write_bytes(token_shape_table(self._map("n_tokens.u32"), n_shingles, usable).tobytes())
        (self.seg / "low_items.u32").write_bytes(low_items(n_shingles, usable).astype("<u4").tobytes())
        need = short_needs(n_shingles, usable, long, p["min_overlap"], p["miss_rate"])
        (self.seg / "anchor_need.u8").write_bytes(need.tobytes())
        with open(self.seg / "dep_keys.u64", "wb") as kf, open(self.seg / "dep_items.u32", "wb") as itf:
            for k, it in dependent_rows(keys, items, need == 0, p["max_postings"], p["long_postings"]):
                kf.write(np.ascontiguousarray(k, "<u8").tobytes())
                itf.write(np.ascontiguousarray(it, "<u4").tobytes())
        (self.seg / "dep_dir.i64").write_bytes(build_directory(self._map("dep_keys.u64")).astype("<i8").tobytes())

    def _write_checksums(self) -> tuple[dict[str, Any], dict[str, Any]]:
        files: dict[str, Any] = {}
        blob = bytearray()
        for name in FILES:
            p = self.seg / name
            size = p.stat().st_size
            digests = file_digests(p)
            blob += digests
            rows = size // np.dtype(RAW[name]).itemsize if name in RAW else self.n_items
            files[name] = {"bytes": size, "rows": rows, "chunks_sha256": digest_root(digests)}
        (self.seg / CHECKSUMS).write_bytes(bytes(blob))
        assert len(blob) % DIGEST == 0
        return files, {"bytes": len(blob), "sha256": digest_root(bytes(blob))}

    def _check_unique_ids(self) -> None:
        """Raise InputError naming the first repeated id (in input order), as a reader would meet it."""
        h = np.concatenate(self._id_hashes) if self._id_hashes else np.zeros(0, np.uint64)
        order = np.argsort(h, kind="stable")
        hs = h[order]
        rep = np.flatnonzero(hs[1:] == hs[:-1]) + 1
        if not len(rep):
            return
        # candidates: each later member of a group of equal hashes, with the group's first member
        group_first = np.maximum.accumulate(np.where(np.r_[True, hs[1:] != hs[:-1]], np.arange(len(hs)), 0))
        later, first = order[rep], order[group_first[rep]]
        meta = arrow.read_table(self.seg / "items.parquet", columns=["id", "source", "row"])
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

    def finish_segment(self) -> dict[str, Any]:
        """Write the lookup tables and checksums, fsync the files; returns the segment's manifest entry
        (``counts``, ``files``, ``checksums``; the caller names it and sets its ``base``).

        Raises:
            InputError: if two reference items have the same id (nothing is written; not checked with
                ``check_ids=False``: the parts of a Ray build, whose ids the final index checks).
        """
        self._close_items()
        if self.check_ids:
            self._check_unique_ids()
        self._write_ids()
        self._write_table("band", self._bands)
        self._write_table("anchor", self._anchors)
        self._write_plan()
        files, checksums = self._write_checksums()
        fsync_files(self.seg)
        return {"counts": {"items": self.n_items, "tokens": self.n_tokens, "distinct_shingles": self.n_shingles},
                "files": files, "checksums": checksums}

    def finish(self, manifest: dict[str, Any]) -> dict[str, Any]:
        """Write the segment and the manifest, then atomically move the index into place.

        Raises:
            InputError: if two reference items have the same id (nothing is written).
        """
        assert self.tmp is not None
        if self.kept:
            return self._finish_kept(manifest)
        entry = self.finish_segment()
        name = segment_name(0, entry)
        os.rename(self.seg, self.tmp / name)
        full = index_manifest(self.config, self.plan, [{"name": name, "base": 0, **entry}], None, 1, manifest)
        return self._commit(full)

    def _finish_kept(self, manifest: dict[str, Any]) -> dict[str, Any]:
        assert self.kept and self.n_items == 0 and not self._held
        self._close_items()
        self._bands.close()
        self._anchors.close()
        shutil.rmtree(self.seg)
        bases = np.cumsum([0] + [int(e["counts"]["items"]) for _, e in self.kept]).tolist()
        segments = [{"name": name, "base": base, **e} for (name, e), base in zip(self.kept, bases)]
        return self._commit(index_manifest(self.config, self.plan, segments, None, 1, manifest))

    def _commit(self, full: dict[str, Any]) -> dict[str, Any]:
        assert self.tmp is not None
        (self.tmp / "manifest.json").write_text(manifest_text(full))
        fsync_files(self.tmp)  # on disk before it appears under its name
        commit_output_dir(self.tmp, self.dest, self.force, MARKER)
        fsync_dir(self.dest.parent if str(self.dest.parent) else Path("."))
        unlock(self._lock)
        return full

    def abort(self) -> None:
        """Remove the temporary directory (the destination is left untouched)."""
        try:
            self._close_items()
            self._bands.close()
            self._anchors.close()
        except Exception:  # noqa: BLE001 - best effort cleanup
            pass
        shutil.rmtree(self.tmp if self.tmp is not None else self.seg, ignore_errors=True)
        unlock(self._lock)
