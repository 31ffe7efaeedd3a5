"""One segment of an index: its files memory-mapped, each chunk verified and each value validated
when an audit first uses it (the layout is described in ``index.manifest``)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from provaudit.config import IndexConfig
from provaudit.errors import IndexFormatError
from provaudit.index.chunks import CHUNK, DIGEST, Chunked, digest_root, expand, hostile, shared_flags
from provaudit.index.keytable import KeyTable
from provaudit.index.manifest import CHECKSUMS, FILES, RAW


class Segment:
    """One loaded segment: memory-mapped files, each chunk verified and each value validated when used.

    Item numbers here are the segment's own (0 to ``n_items - 1``); the index numbers them from ``base``.

    Item-wise accessors (``tokens_of``, ``shingles_of``, ``usable_of``, ``sequence``, ``ids_of``)
    cost what they touch; the whole-index properties (``n_tokens``, ``n_shingles``, ``ids``,
    ``items``) read and verify every row (outputs audits and reports that need them).

    Attributes:
        path: The segment's directory.
        name, base: Its name and the index's number of its first item.
        manifest: Its validated ``segments`` entry of manifest.json.
        config: Parameters the index was built with.
        plan: The manifest's ``anchor_plan``: the settings ``anchor_usable``, ``anchor_long`` and ``dep_*``
            were computed for.
        max_postings: Anchor keys of more items than this were skipped when ``anchor_usable`` was computed.
        anchor_table, band_table, id_table, dep_table: Lookup tables (``KeyTable``).
        shapes: ``(k, 3)`` int64 (distinct shingles, usable anchors, items), validated.
    """

    def __init__(self, root: Path, manifest: dict[str, Any], config: IndexConfig, plan: dict[str, Any]):
        self.name: str = manifest["name"]
        self.path, self.manifest, self.base = root / self.name, manifest, int(manifest["base"])
        path = self.path
        if not path.is_dir() or path.is_symlink():
            raise IndexFormatError(f"{path}: missing segment directory (or not a directory)")
        self.config, self.plan, self.max_postings = config, plan, int(plan["max_postings"])
        self.n_items: int = manifest["counts"]["items"]
        chk_path = path / CHECKSUMS
        blob = Chunked(chk_path, manifest["checksums"]["bytes"], np.zeros((0, DIGEST), np.uint8))
        digests = blob.view("u1").reshape(-1, DIGEST)
        if digest_root(digests.tobytes()) != manifest["checksums"]["sha256"]:
            raise IndexFormatError(f"{chk_path}: does not match the manifest (file changed or corrupt)")
        self.files: dict[str, Chunked] = {}
        flags = shared_flags(len(digests))  # one mapping for the segment's files
        at = 0
        for name in FILES:
            info = manifest["files"][name]
            k = math.ceil(info["bytes"] / CHUNK)
            mine = digests[at : at + k]
            verified = flags[at : at + k]
            at += k
            if digest_root(mine.tobytes()) != info["chunks_sha256"]:
                raise IndexFormatError(f"{path / name}: checksums do not match the manifest (file changed or corrupt)")
            if not (path / name).is_file() or (path / name).is_symlink():
                raise IndexFormatError(f"{path}: missing {name} (or not a regular file)")
            self.files[name] = Chunked(path / name, info["bytes"], mine, verified, info["chunks_sha256"])
        self.arrays = {name: self.files[name].view(dtype) for name, dtype in RAW.items()}
        self.anchor_table = self._table("anchor")
        self.band_table = self._table("band")
        self.id_table = self._table("id")
        self.dep_table = self._table("dep")
        ends = self._take("seq_offsets.i64", np.array([0, self.n_items]))
        if int(ends[0]) != 0 or int(ends[1]) != len(self.arrays["sequences.u64"]):
            raise hostile(path / "seq_offsets.i64", "first and last offsets do not frame sequences.u64")
        self.shapes = self._shapes()
        self._groups: dict[int, pa.Table] = {}

    def _table(self, name: str) -> KeyTable:
        f = self.files
        return KeyTable(f[f"{name}_keys.u64"], f[f"{name}_dir.i64"], f[f"{name}_items.u32"], self.n_items)

    def _take(self, name: str, idx: np.ndarray) -> np.ndarray:
        arr = self.arrays[name]
        idx = np.asarray(idx, dtype=np.int64)
        if len(idx) and (int(idx.min()) < 0 or int(idx.max()) >= len(arr)):
            raise hostile(self.path / name, "item number out of range")
        out: np.ndarray = self.files[name].take(idx, arr.dtype)
        return out

    def _shapes(self) -> np.ndarray:
        self.files["shapes.i64"].ensure_all()
        s = self.arrays["shapes.i64"].reshape(-1, 3)
        if len(s) and (int(s.min()) < 0 or int(s[:, 1].max()) > self.config.anchors
                       or bool((s[:, 1] > s[:, 0]).any())) or int(s[:, 2].sum()) != self.n_items:
            raise hostile(self.path / "shapes.i64", "counts out of range or not summing to the items")
        return s

    @cached_property
    def token_shapes(self) -> np.ndarray:
        """``(k, 4)`` int64 (tokens, distinct shingles, usable anchors, items), validated; read by
        model-output audits only (``regurgitation.verdicts``)."""
        self.files["token_shapes.i64"].ensure_all()
        s = self.arrays["token_shapes.i64"].reshape(-1, 4).astype(np.int64)
        if len(s) and (int(s.min()) < 0 or int(s[:, :2].max()) > 0xFFFFFFFF or int(s[:, 2].max()) > self.config.anchors
                       or bool((s[:, 2] > s[:, 1]).any()) or int(s[:, 3].min()) < 1) or int(s[:, 3].sum()) != self.n_items:
            raise hostile(self.path / "token_shapes.i64", "counts out of range or not summing to the items")
        return s

    def __len__(self) -> int:
        return self.n_items

    def tokens_of(self, items: np.ndarray) -> np.ndarray:
        return self._take("n_tokens.u32", items).astype(np.int64)

    def shingles_of(self, items: np.ndarray) -> np.ndarray:
        """Distinct shingles per item (a count: no kernel indexes memory with it)."""
        return self._take("n_shingles.u32", items).astype(np.int64)

    def usable_of(self, items: np.ndarray) -> np.ndarray:
        u = self._take("anchor_usable.u8", items).astype(np.int64)
        if bool((u > self.config.anchors).any()):
            raise hostile(self.path / "anchor_usable.u8", "more usable anchors than anchors")
        return u

    def seq_bounds(self, items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(lo, hi)`` of each item's sequence, validated, with those sequence bytes verified."""
        items = np.asarray(items, dtype=np.int64)
        lo, hi = self._take("seq_offsets.i64", items), self._take("seq_offsets.i64", items + 1)
        if len(items) and (int(lo.min()) < 0 or bool((hi < lo).any()) or int(hi.max()) > len(self.arrays["sequences.u64"])):
            raise hostile(self.path / "seq_offsets.i64", "sequence offsets out of order or out of range")
        self.files["sequences.u64"].ensure_rows(lo, hi, 8)
        return lo, hi

    @property
    def seq_hashes(self) -> np.ndarray:
        """The raw sequences (read only ranges checked by ``seq_bounds``)."""
        return self.arrays["sequences.u64"]

    @property
    def seq_offsets(self) -> np.ndarray:
        """The raw offsets (read only entries checked by ``seq_bounds``)."""
        return self.arrays["seq_offsets.i64"]

    def sequence(self, item: int) -> np.ndarray:
        """One item's shingle hashes (offsets validated, bytes verified)."""
        if not 0 <= item < self.n_items:
            raise hostile(self.path / "seq_offsets.i64", "item number out of range")
        self.files["seq_offsets.i64"].ensure_range(item * 8, item * 8 + 16)
        lo, hi = int(self.seq_offsets[item]), int(self.seq_offsets[item + 1])
        if not 0 <= lo <= hi <= len(self.seq_hashes):
            raise hostile(self.path / "seq_offsets.i64", "sequence offsets out of order or out of range")
        self.files["sequences.u64"].ensure_range(lo * 8, hi * 8)
        return self.seq_hashes[lo:hi]

    @cached_property
    def n_tokens(self) -> np.ndarray:
        return self.tokens_of(np.arange(self.n_items))

    @cached_property
    def n_shingles(self) -> np.ndarray:
        return self.shingles_of(np.arange(self.n_items))

    @cached_property
    def usable(self) -> np.ndarray:
        return self.usable_of(np.arange(self.n_items))

    @cached_property
    def low_items(self) -> np.ndarray:
        """``low_items.u32`` (every chunk verified), checked sorted and in range."""
        self.files["low_items.u32"].ensure_all()
        low = self.arrays["low_items.u32"].astype(np.int64)
        if len(low) and (int(low[-1]) >= self.n_items or bool((low[1:] <= low[:-1]).any())):
            raise hostile(self.path / "low_items.u32", "item numbers not sorted or out of range")
        return low

    def items_with_shingles(self, at_least: int) -> int:
        """Items with at least this many distinct shingles (from ``shapes``: no per-item read)."""
        return int(self.shapes[self.shapes[:, 0] >= at_least, 2].sum())

    # --- items.parquet, read row group by row group ---------------------------------------------------
    @cached_property
    def _parquet(self) -> tuple[pq.ParquetFile, np.ndarray]:
        from provaudit.index.items import open_items

        return open_items(self.files["items.parquet"], self.n_items, self.config.keep_text)

    def row_groups(self) -> Iterator[tuple[int, pa.Table]]:
        """Every row group of ``items.parquet`` (verified; not kept) with the number of its first item."""
        from provaudit.index.items import read_group

        pf, starts = self._parquet
        for g in range(pf.metadata.num_row_groups):
            yield int(starts[g]), read_group(self.files["items.parquet"], pf, g)

    def _group(self, g: int) -> pa.Table:
        if g not in self._groups:
            from provaudit.index.items import read_group

            if len(self._groups) >= 64:
                self._groups.pop(next(iter(self._groups)))
            pf, _ = self._parquet
            self._groups[g] = read_group(self.files["items.parquet"], pf, g)
        return self._groups[g]

    def column_of(self, name: str, items: np.ndarray) -> list[Any]:
        """Values of an ``items.parquet`` column for these items (``id``, ``source``, ``row``, ``text``)."""
        _, starts = self._parquet
        items = np.asarray(items, dtype=np.int64)
        if len(items) and (int(items.min()) < 0 or int(items.max()) >= self.n_items):
            raise hostile(self.path / "items.parquet", "item number out of range")
        groups = np.searchsorted(starts, items, side="right") - 1
        return [self._group(int(g)).column(name)[int(i - starts[g])].as_py() for g, i in zip(groups, items)]

    def items_with_id_hashes(self, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(query position, item within the segment) for every item whose id hash is a query's.

        Only the queries' directory buckets of ``id_keys.u64`` are read (verified); each bucket's keys
        are checked to be sorted and to start with the bucket's bits, and the items to be in range:
        a hostile id table is refused, never trusted.
        """
        t = self.id_table
        q = np.ascontiguousarray(queries, dtype=np.uint64)
        lo, hi = t._buckets(q)
        owner, pos = expand(lo, hi)
        keys = t.keys_file.take_ranges(lo, hi, "<u8")
        same = owner[1:] == owner[:-1]
        if bool((same & (keys[1:] < keys[:-1])).any()) or bool(
                ((keys >> np.uint64(t.shift)) != (q[owner] >> np.uint64(t.shift))).any()):
            raise hostile(t.keys_file.path, "keys not sorted or not in their directory bucket")
        eq = keys == q[owner]
        return owner[eq].astype(np.int64), t.item_numbers(pos[eq]).astype(np.int64)

    def ids_of(self, items: np.ndarray) -> list[str]:
        return [str(v) for v in self.column_of("id", items)]

    @cached_property
    def items(self) -> pa.Table:
        """The whole items table (every row group read and verified)."""
        pf, _ = self._parquet
        parts = [self._group(g) for g in range(pf.metadata.num_row_groups)]
        return pa.concat_tables(parts) if parts else pf.schema_arrow.empty_table()

    @cached_property
    def ids(self) -> Any:
        ids = self.items.column("id").combine_chunks()
        return ids.dictionary_decode() if pa.types.is_dictionary(ids.type) else ids
