"""The index on disk: Parquet tables plus ``manifest.json``, written atomically, verified on load.

Layout of an index directory::

    manifest.json     format version, parameters, inputs, counts, sha256 of every file
    items.parquet     one row per reference item: id, source, row, n_tokens, n_shingles,
                      shingles (list<uint64>, in text order), signature (list<uint32>),
                      [text] (only with keep_text)
    bands.parquet     LSH band table: key uint64, item uint32 (sorted by key, item)
    anchors.parquet   containment anchors: key uint64, item uint32 (sorted by key, item)

The index holds hashes, not text (unless built with ``keep_text``). Items are
numbered by their row in ``items.parquet``.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from provaudit.config import IndexConfig
from provaudit.errors import IndexFormatError, OutputExistsError
from provaudit.records import sha256_file

FORMAT = "provaudit-index"
FORMAT_VERSION = 1
FILES = ("items.parquet", "bands.parquet", "anchors.parquet")
_ROW_GROUP = 65536


def _items_schema(num_perm: int, keep_text: bool) -> pa.Schema:
    fields = [
        pa.field("id", pa.string()),
        pa.field("source", pa.string()),
        pa.field("row", pa.int64()),
        pa.field("n_tokens", pa.int64()),
        pa.field("n_shingles", pa.int32()),
        pa.field("shingles", pa.large_list(pa.uint64())),
        pa.field("signature", pa.list_(pa.uint32(), num_perm)),
    ]
    if keep_text:
        fields.append(pa.field("text", pa.large_string()))
    return pa.schema(fields)


def _table_schema() -> pa.Schema:
    return pa.schema([pa.field("key", pa.uint64()), pa.field("item", pa.uint32())])


def _write_parquet(table: pa.Table, path: Path) -> None:
    pq.write_table(table, path, compression="zstd", row_group_size=_ROW_GROUP, write_statistics=False)


def prepare_output_dir(dest: Path, force: bool, marker: str) -> Path:
    """Make a fresh temporary directory beside ``dest`` for an atomic write.

    Raises:
        OutputExistsError: if ``dest`` exists and ``force`` is false, or if it is a
            non-empty directory that does not look like provaudit output (no ``marker`` file).
    """
    if dest.exists():
        if not force:
            raise OutputExistsError(f"{dest}: already exists (use --force to replace it)")
        if not dest.is_dir() or (any(dest.iterdir()) and not (dest / marker).exists()):
            raise OutputExistsError(f"{dest}: exists and is not a provaudit output directory; refusing to replace it")
    dest.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.tmp-"))


def commit_output_dir(tmp: Path, dest: Path) -> None:
    """Move a finished temporary directory into place (replacing an old one last)."""
    old = None
    if dest.exists():
        old = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.old-"))
        os.rmdir(old)
        os.replace(dest, old)
    os.replace(tmp, dest)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


class IndexWriter:
    """Streams reference items into a temporary index directory, then commits it.

    Example:
        >>> w = IndexWriter(Path("ref.idx"), IndexConfig(), force=True)  # doctest: +SKIP
        >>> w.add(ids, sources, rows, batch, sigs, band_keys, texts)     # doctest: +SKIP
        >>> w.finish(manifest_extra)                                     # doctest: +SKIP
    """

    def __init__(self, dest: Path, config: IndexConfig, *, force: bool = False):
        self.dest, self.config = dest, config.resolved()
        self.tmp = prepare_output_dir(dest, force, "manifest.json")
        self.schema = _items_schema(self.config.num_perm, self.config.keep_text)
        self._items = pq.ParquetWriter(
            self.tmp / "items.parquet", self.schema, compression="zstd", write_statistics=False
        )
        self._band_keys: list[np.ndarray] = []
        self._band_items: list[np.ndarray] = []
        self._anchor_keys: list[np.ndarray] = []
        self._anchor_items: list[np.ndarray] = []
        self.n_items = 0
        self.n_tokens = 0
        self.n_shingles = 0

    def add(
        self,
        ids: list[str],
        sources: list[str],
        rows: list[int],
        shingles: Any,  # ShingleBatch (sequence) -- kept untyped to avoid an import cycle
        unique: Any,  # ShingleBatch of distinct sorted hashes
        sigs: np.ndarray,
        bands: np.ndarray,
        texts: list[str] | None,
    ) -> None:
        n = len(ids)
        first = self.n_items
        item_no = np.arange(first, first + n, dtype=np.uint32)
        n_unique = np.diff(unique.offsets)
        seq = pa.LargeListArray.from_arrays(pa.array(shingles.offsets), pa.array(shingles.hashes))
        cols: list[Any] = [
            pa.array(ids, pa.string()),
            pa.array(sources, pa.string()),
            pa.array(rows, pa.int64()),
            pa.array(shingles.n_tokens, pa.int64()),
            pa.array(n_unique.astype(np.int32)),
            seq,
            pa.FixedSizeListArray.from_arrays(pa.array(sigs.reshape(-1)), self.config.num_perm),
        ]
        if self.config.keep_text:
            cols.append(pa.array(texts, pa.large_string()))
        self._items.write_table(pa.Table.from_arrays(cols, schema=self.schema), row_group_size=_ROW_GROUP)
        # bands: every band key of every non-empty item
        nonempty = n_unique > 0
        self._band_keys.append(bands[nonempty].reshape(-1))
        self._band_items.append(np.repeat(item_no[nonempty], bands.shape[1]))
        # anchors: the k smallest distinct shingle hashes of each item
        rec = np.repeat(np.arange(n), n_unique)
        rank = np.arange(len(unique.hashes)) - unique.offsets[rec]
        take = rank < self.config.anchors
        self._anchor_keys.append(unique.hashes[take])
        self._anchor_items.append(item_no[rec[take]])
        self.n_items += n
        self.n_tokens += int(shingles.n_tokens.sum())
        self.n_shingles += int(n_unique.sum())

    def _write_table(self, name: str, keys: list[np.ndarray], items: list[np.ndarray]) -> None:
        k = np.concatenate(keys) if keys else np.zeros(0, np.uint64)
        it = np.concatenate(items) if items else np.zeros(0, np.uint32)
        order = np.lexsort((it, k))
        table = pa.Table.from_arrays([pa.array(k[order]), pa.array(it[order])], schema=_table_schema())
        _write_parquet(table, self.tmp / name)

    def finish(self, manifest: dict[str, Any]) -> dict[str, Any]:
        """Write the lookup tables and manifest, then atomically move the index into place."""
        self._items.close()
        self._write_table("bands.parquet", self._band_keys, self._band_items)
        self._write_table("anchors.parquet", self._anchor_keys, self._anchor_items)
        files = {}
        for name in FILES:
            p = self.tmp / name
            files[name] = {"sha256": sha256_file(p), "bytes": p.stat().st_size, "rows": pq.ParquetFile(p).metadata.num_rows}
        full = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "config": self.config.to_dict(),
            "fingerprint": self.config.fingerprint(),
            "counts": {"items": self.n_items, "tokens": self.n_tokens, "distinct_shingles": self.n_shingles},
            "files": files,
            **manifest,
        }
        (self.tmp / "manifest.json").write_text(json.dumps(full, indent=2, sort_keys=True) + "\n")
        commit_output_dir(self.tmp, self.dest)
        return full

    def abort(self) -> None:
        """Remove the temporary directory (the destination is left untouched)."""
        try:
            self._items.close()
        except Exception:  # noqa: BLE001 - best effort cleanup
            pass
        shutil.rmtree(self.tmp, ignore_errors=True)


@dataclass
class Index:
    """A loaded, verified index. Arrays are numpy views of the Parquet data.

    Attributes:
        path: Index directory.
        manifest: Parsed manifest.json.
        config: Parameters the index was built with.
        ids: Reference item ids (pyarrow StringArray, by item number).
        n_tokens, n_shingles: Per item token count and distinct shingle count.
        seq_offsets, seq_hashes: Shingle hash sequences (text order) of all items.
        signatures: uint32 ``(items, num_perm)``.
        band_keys, band_items, anchor_keys, anchor_items: Sorted lookup tables.
        items: The whole items table (for sources, rows and optional text).
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
    signatures: np.ndarray
    band_keys: np.ndarray
    band_items: np.ndarray
    anchor_keys: np.ndarray
    anchor_items: np.ndarray

    def __len__(self) -> int:
        return len(self.n_tokens)

    def sequence(self, item: int) -> np.ndarray:
        return self.seq_hashes[self.seq_offsets[item] : self.seq_offsets[item + 1]]


def read_manifest(path: Path) -> dict[str, Any]:
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
    return manifest


def load_index(path: Path, *, verify: bool = True) -> Index:
    """Load an index directory, checking its format version and file hashes.

    Raises:
        IndexFormatError: on a missing, changed, truncated or unreadable file.
    """
    manifest = read_manifest(path)
    try:
        config = IndexConfig.from_dict(manifest["config"])
        files = manifest["files"]
        for name in FILES:
            p = path / name
            if not p.is_file():
                raise IndexFormatError(f"{path}: missing {name}")
            if verify and sha256_file(p) != files[name]["sha256"]:
                raise IndexFormatError(f"{p}: sha256 does not match the manifest (file changed or corrupt)")
        items = pq.read_table(path / "items.parquet", memory_map=True)
        bands = pq.read_table(path / "bands.parquet", memory_map=True)
        anchors = pq.read_table(path / "anchors.parquet", memory_map=True)
    except (KeyError, TypeError) as e:
        raise IndexFormatError(f"{path}: manifest lacks {e}") from e
    except (pa.ArrowException, OSError) as e:
        raise IndexFormatError(f"{path}: unreadable index file ({e})") from e
    seq = items.column("shingles").combine_chunks()
    sig = items.column("signature").combine_chunks()
    if len(items) != manifest["counts"]["items"]:
        raise IndexFormatError(f"{path}: items.parquet has {len(items)} rows, manifest says {manifest['counts']['items']}")
    return Index(
        path=path,
        manifest=manifest,
        config=config,
        items=items,
        ids=items.column("id").combine_chunks(),
        n_tokens=items.column("n_tokens").to_numpy(),
        n_shingles=items.column("n_shingles").to_numpy().astype(np.int64),
        seq_offsets=np.asarray(seq.offsets, dtype=np.int64) - int(seq.offsets[0].as_py()) if len(seq) else np.zeros(1, np.int64),
        seq_hashes=np.asarray(seq.flatten(), dtype=np.uint64) if len(seq) else np.zeros(0, np.uint64),
        signatures=np.asarray(sig.flatten(), dtype=np.uint32).reshape(len(items), config.num_perm),
        band_keys=bands.column("key").to_numpy(),
        band_items=bands.column("item").to_numpy(),
        anchor_keys=anchors.column("key").to_numpy(),
        anchor_items=anchors.column("item").to_numpy(),
    )
