"""Parts of a distributed index build: what a Ray task wrote, read back into the final index.

A Ray task of ``provaudit index --engine ray`` (``run.ray_parts``) prepares, signs and writes the
items of a run of consecutive blocks as a *part*: an index directory of its own (the files of
``IndexWriter``, items numbered from 0, ids not checked) in a temporary directory next to the
output. It returns ``PartSlice``s, one per block, that say which of the
part's items the block's batches are. The driver's ``PartMerger`` adds them to the final
``IndexWriter`` in input order: each part's files verified against its checksums, its band and
anchor tables added as they are (offset by the number of the part's first item: no item is
signed or anchored again), its rows and sequences in the same batches as a local build adds
them. So the final index is byte for byte the one a local build writes.

With ``--keep-segments`` (``PartList``) nothing is merged: each part's segment becomes a segment
of the index as it is (moved, in input order), once every id was checked unique across the parts;
the driver reads only the ids.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from provaudit.errors import ConfigError, IndexFormatError, InputError
from provaudit.fs import arrow
from provaudit.index.build import IndexWriter, PreparedItems
from provaudit.index.keytable import _id_hash
from provaudit.index.format import Index, load_index
from provaudit.index.manifest import FILES, MAX_SEGMENTS, segment_name


@dataclass(frozen=True, slots=True)
class PartSlice:
    """Consecutive items of a part: the batches of one block (or of several small files).

    Attributes:
        part: The part's directory.
        start: Its first item (numbered within the part).
        sizes: Items of each batch, in order (the batches a local build adds one by one).
        tokens: Tokens of these items.
    """

    part: str
    start: int
    sizes: tuple[int, ...]
    tokens: int
    file_tokens: tuple[int, ...] = ()  # small files prepared as one batch: each file's tokens

    @property
    def items(self) -> int:
        return sum(self.sizes)


class _Part:
    """A part's arrays and rows, verified."""

    def __init__(self, path: Path):
        index: Index = load_index(path)
        if len(index.segments) != 1:
            raise IndexFormatError(f"{path}: a part of the build is not one segment")
        seg = index.segments[0]
        for name in FILES:
            seg.files[name].ensure_all()  # every chunk against the checksums its task wrote
        self.path, self.n = path, len(seg.arrays["n_tokens.u32"])
        a = seg.arrays
        self.offsets = np.asarray(a["seq_offsets.i64"], dtype=np.int64)
        self.sequences = a["sequences.u64"]
        self.n_tokens = np.asarray(a["n_tokens.u32"], dtype=np.int64)
        self.n_shingles = np.asarray(a["n_shingles.u32"], dtype=np.int64)
        self.bands = (np.asarray(a["band_keys.u64"]), np.asarray(a["band_items.u32"]))
        self.anchors = (np.asarray(a["anchor_keys.u64"]), np.asarray(a["anchor_items.u32"]))
        self.rows = arrow.read_table(seg.path / "items.parquet")
        if (len(self.offsets) != self.n + 1 or self.rows.num_rows != self.n or len(self.n_shingles) != self.n
                or int(self.offsets[0]) != 0 or bool((np.diff(self.offsets) < 0).any())
                or int(self.offsets[-1]) != len(self.sequences)):
            raise IndexFormatError(f"{path}: a part of the build is inconsistent (its arrays do not match)")
        for items in (self.bands[1], self.anchors[1]):
            if len(items) and int(items.max()) >= self.n:
                raise IndexFormatError(f"{path}: a part of the build has an item number out of range")


class PartMerger:
    """Adds ``PartSlice``s, in input order, to ``writer``; deletes each part once it is merged."""

    def __init__(self, writer: IndexWriter):
        self.writer = writer
        self.part: _Part | None = None
        self.at = 0  # the next item of the current part

    def add(self, sl: PartSlice, sources: list[str] | str) -> np.ndarray:
        """Add the slice's items (their ``sources``: one per item, or one for all); returns their tokens."""
        if self.part is None or str(self.part.path) != sl.part:
            self._next(Path(sl.part))
        part = self.part
        assert part is not None
        if sl.start != self.at or sl.start + sl.items > part.n:
            raise IndexFormatError(f"{sl.part}: the build's parts came out of order (items {sl.start}.. "
                                   f"of {part.n}, expected {self.at})")
        keep_text = self.writer.config.keep_text
        first = sl.start
        for n in sl.sizes:
            rows = part.rows.slice(first, n)
            lo, hi = int(part.offsets[first]), int(part.offsets[first + n])
            items = PreparedItems(np.asarray(part.sequences[lo:hi], dtype=np.uint64), part.offsets[first : first + n + 1] - lo,
                                  part.n_tokens[first : first + n], part.n_shingles[first : first + n],
                                  np.zeros(0, np.uint64), np.zeros(n, np.int64), tabled=True)
            srcs = [sources] * n if isinstance(sources, str) else sources[first - sl.start : first - sl.start + n]
            texts = [str(t) for t in rows.column("text").to_pylist()] if keep_text else None
            self.writer.add([str(i) for i in rows.column("id").to_pylist()], srcs,
                            [int(r) for r in rows.column("row").to_pylist()], items, texts)
            first += n
        self.at = first
        out: np.ndarray = part.n_tokens[sl.start : first]
        return out

    def _next(self, path: Path) -> None:
        self._done()
        part = _Part(path)
        self.writer.add_tables(self.writer.next_item, part.bands, part.anchors)
        self.part, self.at = part, 0

    def _done(self) -> None:
        if self.part is not None:
            if self.at != self.part.n:
                raise IndexFormatError(f"{self.part.path}: only {self.at} of the part's {self.part.n} items were merged")
            shutil.rmtree(self.part.path, ignore_errors=True)
            self.part = None

    def close(self) -> None:
        """Check that the last part was merged whole (and delete it)."""
        self._done()




class PartList:
    """``--keep-segments``: the parts, in input order, kept as the index's segments (nothing merged)."""

    def __init__(self) -> None:
        self.parts: list[tuple[str, int]] = []  # (part, items seen)

    def add(self, sl: PartSlice) -> None:
        if not self.parts or self.parts[-1][0] != sl.part:
            self.parts.append((sl.part, 0))
        part, at = self.parts[-1]
        if sl.start != at:
            raise IndexFormatError(f"{part}: the build's parts came out of order (items {sl.start}.., expected {at})")
        self.parts[-1] = (part, at + sl.items)

    def segments(self) -> list[tuple[Path, dict[str, Any]]]:
        """Each part's segment directory and manifest entry (checked whole; ids checked unique across all).

        Raises:
            ConfigError: more parts than an index may have segments (``MAX_SEGMENTS``).
        """
        if len(self.parts) > MAX_SEGMENTS:
            raise ConfigError(f"--keep-segments: the build has {len(self.parts):,} parts, more than the {MAX_SEGMENTS:,} "
                              "segments an index may have; build without --keep-segments")
        out = []
        for part, items in self.parts:
            index = load_index(Path(part))
            if len(index.segments) != 1 or index.segments[0].n_items != items:
                raise IndexFormatError(f"{part}: a part of the build does not hold the items its tasks returned")
            seg = index.segments[0]
            for name in FILES:
                seg.files[name].ensure_all()
            entry = {k: v for k, v in index.manifest["segments"][0].items() if k not in ("name", "base")}
            out.append((seg.path, entry))
        _check_unique_ids([seg for seg, _ in out])
        return out


def _check_unique_ids(segments: list[Path]) -> None:
    """Raise InputError naming the first id (in item order) that an earlier item of these segments has."""
    hashes = [np.fromiter(map(_id_hash, arrow.read_table(s / "items.parquet", columns=["id"]).column("id").to_pylist()),
                          dtype=np.uint64) for s in segments]
    h = np.concatenate(hashes) if hashes else np.zeros(0, np.uint64)
    hs = np.sort(h)
    suspect = set(hs[1:][hs[1:] == hs[:-1]].tolist())
    if not suspect:
        return
    first: dict[str, tuple[str, int]] = {}
    for s, hs_part in zip(segments, hashes):
        meta = arrow.read_table(s / "items.parquet", columns=["id", "source", "row"])
        for j in np.flatnonzero(np.isin(hs_part, np.fromiter(suspect, np.uint64))).tolist():
            i, src, row = meta.column("id")[j].as_py(), meta.column("source")[j].as_py(), meta.column("row")[j].as_py()
            if i in first:
                raise InputError(f"{src} row {row + 1}: duplicate reference id {i!r} (first at {first[i][0]} row "
                                 f"{first[i][1] + 1}); ids must be unique (or use --id-field)")
            first[i] = (src, row)


def keep_segments(writer: IndexWriter, segments: list[tuple[Path, dict[str, Any]]]) -> None:
    """Make ``writer``'s index (a new one, made with ``keep=True``, no item added) of these segments: each
    directory moved into it now, in item order, with its manifest entry (without name and base)."""
    assert writer.tmp is not None and writer.kept == [] and writer.next_item == 0
    for path, entry in segments:
        name = segment_name(0, entry)
        os.rename(path, writer.tmp / name)  # on the same file system: the parts are next to the output
        writer.kept.append((name, entry))


__all__ = ["PartList", "PartMerger", "PartSlice", "keep_segments"]
