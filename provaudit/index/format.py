"""The index on disk: its format, manifest validation and verified, lazy loading (built by ``build``).

Layout of an index directory (format 6)::

    manifest.json       format version, parameters, inputs, counts, per-file sizes and checksum roots
    checksums.sha256    sha256 of every 256 KiB chunk of every file below, file after file (``chunks``)
    items.parquet       one row per reference item: id, source, row, [text] (only with keep_text);
                        read only for the items an audit reports
    seq_offsets.i64     item i's shingle hashes are sequences[seq_offsets[i]:seq_offsets[i + 1]]
    sequences.u64       every item's shingle hashes in text order, items concatenated
    n_tokens.u32        per item: tokens
    n_shingles.u32      per item: distinct shingles
    anchor_usable.u8    per item: anchors left once keys of more than ``max_postings`` items are skipped
    anchor_keys.u64     containment anchors, sorted by (key, item): keys ...
    anchor_items.u32    ... and items
    anchor_dir.i64      directory on the keys' top bits: rows of keys starting with each prefix
    band_keys.u64, band_items.u32, band_dir.i64   the LSH band table, likewise
    shapes.i64          (distinct shingles, usable anchors, items) for every such pair present
    low_items.u32       items with fewer than 8 distinct shingles or usable anchors, sorted (the
                        only items an anchor hit count below ``AnchorPlan.t_cut`` can make candidates)

Everything but ``items.parquet`` is raw little-endian fixed-width data, memory-mapped on load:
an audit reads only the pages its target touches, verifies each 256 KiB chunk the first time
it reads it, and validates every value it takes from the index (ranges, sizes) before the
compiled kernels use it. Whatever depends only on the index (lookup directories, usable
anchors, the histogram behind the report's miss figures) is computed at build time.

Note:
    Format 5 (issue #11) replaced the whole-file sha256 checked on every load by chunk
    checksums, dropped ``signatures.u32`` (audits recompute the few signatures they report
    from the sequences), moved per-item counts out of ``items.parquet`` and stored the
    directories and usable anchors. Format 6 made the LSH band table optional and off by
    default (the fingerprint marks an index that has one with ``-lsh``) and added
    ``low_items.u32``. Older indexes must
    be rebuilt.
"""

from __future__ import annotations

import json
import math
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from provaudit.config import IndexConfig
from provaudit.errors import ConfigError, IndexFormatError
from provaudit.fs.hashing import json_checksum
from provaudit.index.chunks import CHUNK, DIGEST, Chunked, digest_root, hostile
from provaudit.index.keytable import KeyTable, directory_bits

FORMAT = "provaudit-index"
MARKER = ("manifest.json", FORMAT)  # what marks an index directory (fs.atomic.check_output)
FORMAT_VERSION = 6
RAW: dict[str, str] = {
    "seq_offsets.i64": "<i8", "sequences.u64": "<u8", "n_tokens.u32": "<u4", "n_shingles.u32": "<u4",
    "anchor_usable.u8": "u1", "anchor_keys.u64": "<u8", "anchor_items.u32": "<u4", "anchor_dir.i64": "<i8",
    "band_keys.u64": "<u8", "band_items.u32": "<u4", "band_dir.i64": "<i8", "shapes.i64": "<i8",
    "low_items.u32": "<u4",
}
FILES = ("items.parquet", *RAW)
CHECKSUMS = "checksums.sha256"
MAX_MANIFEST_BYTES = 256 << 20
_CONFIG_TYPES = {"ngram": int, "unit": str, "num_perm": int, "seed": int, "hash": str, "threshold": float,
                 "bands": int, "rows": int, "anchors": int, "keep_text": bool, "scheme": str, "band_table": bool}


def manifest_checksum(manifest: dict[str, Any]) -> str:
    """sha256 of the manifest's content without this field: it names every file's checksum root."""
    return json_checksum(manifest, "manifest_checksum", prefix="sha256:")


def manifest_text(manifest: dict[str, Any]) -> str:
    """manifest.json's text: indented, each input on one line (json's indenting encoder is pure Python:
    6 s for the 100,000 inputs of as many files, against 1 s for this)."""
    inputs = manifest.get("inputs")
    if not inputs:
        return json.dumps(manifest, indent=2, sort_keys=True) + "\n"
    text = json.dumps({**manifest, "inputs": []}, indent=2, sort_keys=True)
    rows = "\n  \"inputs\": [\n" + ",\n".join("    " + json.dumps(i, sort_keys=True) for i in inputs) + "\n  ]"
    for end in (",", "\n"):  # followed by another key, or the last one
        if '\n  "inputs": []' + end in text:
            return text.replace('\n  "inputs": []' + end, rows + end, 1) + "\n"
    return json.dumps(manifest, indent=2, sort_keys=True) + "\n"


def read_manifest(path: Path) -> dict[str, Any]:
    """Parse and check ``path/manifest.json`` (format, version, its own checksum, value types).

    Raises:
        IndexFormatError: if it is missing, unparsable, of another format or version, changed or
            holds values of the wrong type or range.
    """
    mpath = path / "manifest.json"
    if not path.is_dir():
        raise IndexFormatError(f"{path}: not an index directory")
    if not mpath.is_file():
        raise IndexFormatError(f"{path}: no manifest.json (not a provaudit index, or an incomplete build)")
    if mpath.stat().st_size > MAX_MANIFEST_BYTES:
        raise hostile(mpath, f"manifest larger than {MAX_MANIFEST_BYTES} bytes")
    try:
        manifest = json.loads(mpath.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:
        raise IndexFormatError(f"{mpath}: corrupt manifest ({type(e).__name__})") from e
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise IndexFormatError(f"{mpath}: not a provaudit index manifest")
    version = manifest.get("format_version")
    if version != FORMAT_VERSION or not isinstance(version, int):
        raise IndexFormatError(
            f"{path}: index format version {version!r} is not supported by this provaudit "
            f"(reads version {FORMAT_VERSION}); rebuild the index with 'provaudit index'"
        )
    if manifest.get("manifest_checksum") != manifest_checksum(manifest):
        raise IndexFormatError(f"{mpath}: manifest checksum does not match its content (file changed or corrupt)")
    validate_manifest(mpath, manifest)
    return manifest


def _int(mpath: Path, value: Any, what: str, lo: int = 0, hi: int = 1 << 62) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise hostile(mpath, f"{what} must be an integer in [{lo}, {hi}], got {str(value)[:40]!r}")
    return value


def validate_manifest(mpath: Path, m: dict[str, Any]) -> None:
    """Check the type and range of every manifest value a load relies on."""
    cfg = m.get("config")
    if not isinstance(cfg, dict) or set(cfg) != set(_CONFIG_TYPES):
        raise hostile(mpath, "config must hold exactly the index parameters")
    for name, typ in _CONFIG_TYPES.items():
        v = cfg[name]
        if type(v) is not typ and not (typ is float and type(v) is int):
            raise hostile(mpath, f"config.{name} must be of type {typ.__name__}, got {type(v).__name__}")
    try:
        config = IndexConfig.from_dict(cfg)
    except ConfigError as e:
        raise hostile(mpath, f"config: {e}") from e
    if config.bands == 0 or config.resolved() != config or m.get("fingerprint") != config.fingerprint():
        raise hostile(mpath, "config is not resolved or does not match the fingerprint")
    counts = m.get("counts")
    if not isinstance(counts, dict):
        raise hostile(mpath, "counts must be an object")
    for name in ("items", "tokens", "distinct_shingles"):
        _int(mpath, counts.get(name), f"counts.{name}", 0, (1 << 32) - 1 if name == "items" else 1 << 62)
    plan = m.get("anchor_plan")
    if not isinstance(plan, dict):
        raise hostile(mpath, "anchor_plan must be an object")
    _int(mpath, plan.get("max_postings"), "anchor_plan.max_postings", 1)
    if m.get("chunk_bytes") != CHUNK:
        raise hostile(mpath, f"chunk_bytes must be {CHUNK}")
    files = m.get("files")
    if not isinstance(files, dict) or set(files) != set(FILES):
        raise hostile(mpath, f"files must list exactly {', '.join(FILES)}")
    for name in FILES:
        f = files[name]
        if not isinstance(f, dict) or not isinstance(f.get("chunks_sha256"), str):
            raise hostile(mpath, f"files.{name} must hold bytes, rows and chunks_sha256")
        size, rows = _int(mpath, f.get("bytes"), f"files.{name}.bytes"), _int(mpath, f.get("rows"), f"files.{name}.rows")
        if name in RAW and size != rows * np.dtype(RAW[name]).itemsize:
            raise hostile(mpath, f"files.{name}: {rows} rows do not fill {size} bytes")
    n = counts["items"]
    rows_of = {name: files[name]["rows"] for name in FILES}
    expected = {"items.parquet": n, "seq_offsets.i64": n + 1, "n_tokens.u32": n, "n_shingles.u32": n,
                "anchor_usable.u8": n, "anchor_items.u32": rows_of["anchor_keys.u64"],
                "band_items.u32": rows_of["band_keys.u64"],
                "anchor_dir.i64": (1 << directory_bits(rows_of["anchor_keys.u64"])) + 1,
                "band_dir.i64": (1 << directory_bits(rows_of["band_keys.u64"])) + 1}
    for name, want in expected.items():
        if rows_of[name] != want:
            raise hostile(mpath, f"files.{name} has {rows_of[name]} rows, expected {want}")
    if rows_of["low_items.u32"] > n:
        raise hostile(mpath, f"files.low_items.u32 has {rows_of['low_items.u32']} rows, more than the items")
    if rows_of["shapes.i64"] % 3:
        raise hostile(mpath, "shapes.i64 must hold (shingles, usable, items) triples")
    chk = m.get("checksums")
    total = sum(math.ceil(files[name]["bytes"] / CHUNK) for name in FILES)
    if not isinstance(chk, dict) or chk.get("bytes") != total * DIGEST or not isinstance(chk.get("sha256"), str):
        raise hostile(mpath, f"checksums must cover {total} chunks")
    for key in ("inputs",):
        if not isinstance(m.get(key, []), list) or not all(isinstance(i, dict) for i in m.get(key, [])):
            raise hostile(mpath, f"{key} must be a list of objects")


class Index:
    """A loaded index: memory-mapped files, each chunk verified and each value validated when used.

    Item-wise accessors (``tokens_of``, ``shingles_of``, ``usable_of``, ``sequence``, ``ids_of``)
    cost what they touch; the whole-index properties (``n_tokens``, ``n_shingles``, ``ids``,
    ``items``) read and verify every row (outputs audits and reports that need them).

    Attributes:
        path: Index directory.
        location: Where the index was named: ``path``, or the URL of an index cached at ``path``
            (``index.remote``).
        manifest: Parsed, validated manifest.json.
        config: Parameters the index was built with.
        max_postings: Anchor keys of more items than this were skipped when ``anchor_usable`` was computed.
        anchor_table, band_table: Lookup tables (``KeyTable``).
        shapes: ``(k, 3)`` int64 (distinct shingles, usable anchors, items), validated.
    """

    def __init__(self, path: Path, manifest: dict[str, Any]):
        self.path, self.manifest = path, manifest
        self.location = str(path)
        self.config = IndexConfig.from_dict(manifest["config"])
        self.n_items: int = manifest["counts"]["items"]
        self.max_postings: int = manifest["anchor_plan"]["max_postings"]
        chk_path = path / CHECKSUMS
        blob = Chunked(chk_path, manifest["checksums"]["bytes"], np.zeros((0, DIGEST), np.uint8))
        digests = blob.view("u1").reshape(-1, DIGEST)
        if digest_root(digests.tobytes()) != manifest["checksums"]["sha256"]:
            raise IndexFormatError(f"{chk_path}: does not match the manifest (file changed or corrupt)")
        self.files: dict[str, Chunked] = {}
        at = 0
        for name in FILES:
            info = manifest["files"][name]
            k = math.ceil(info["bytes"] / CHUNK)
            mine = digests[at : at + k]
            at += k
            if digest_root(mine.tobytes()) != info["chunks_sha256"]:
                raise IndexFormatError(f"{path / name}: checksums do not match the manifest (file changed or corrupt)")
            if not (path / name).is_file() or (path / name).is_symlink():
                raise IndexFormatError(f"{path}: missing {name} (or not a regular file)")
            self.files[name] = Chunked(path / name, info["bytes"], mine)
        self.arrays = {name: self.files[name].view(dtype) for name, dtype in RAW.items()}
        self.anchor_table = self._table("anchor")
        self.band_table = self._table("band")
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


def load_index(path: Path) -> Index:
    """Open an index directory: manifest and checksum list verified, files mapped, nothing else read.

    Raises:
        IndexFormatError: on a missing, changed, truncated or unreadable file, or a value out of range.
    """
    return Index(path, read_manifest(path))

