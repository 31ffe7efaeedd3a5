"""The index on disk: a directory of immutable segments and a manifest listing them (``index.manifest``
describes the layout), loaded lazily and verified as it is read.

``load_index`` returns an ``Index``: the segments in force (``index.segment.Segment``, each
memory-mapped, each 256 KiB chunk verified the first time an audit reads it, every value
validated before the compiled kernels use it) and the removed items. Item numbers are the
index's: segment ``i`` holds items ``base_i`` to ``base_i + items_i - 1``. The item-wise
accessors take and return such numbers and dispatch to the segments; the candidate search
(``match.candidates``) walks the segments' lookup tables one by one.

Note:
    Format 5 (issue #11) replaced the whole-file sha256 checked on every load by chunk
    checksums, dropped ``signatures.u32`` (audits recompute the few signatures they report
    from the sequences), moved per-item counts out of ``items.parquet`` and stored the
    directories and usable anchors. Format 6 made the LSH band table optional and off by
    default (the fingerprint marks an index that has one with ``-lsh``) and added
    ``low_items.u32``. Format 7 put the files in segments (``add``, ``remove``, ``compact``).
    Older indexes must be rebuilt.
"""

from __future__ import annotations

import bisect
import hashlib
import json
from collections.abc import Callable, Iterator
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from provaudit.config import IndexConfig
from provaudit.errors import IndexFormatError
from provaudit.index.chunks import Chunked, hostile
from provaudit.index.manifest import (
    CHECKSUMS, FILES, FORMAT, FORMAT_VERSION, MARKER, MAX_MANIFEST_BYTES, RAW, SEGMENT_NAME, manifest_checksum,
    manifest_text, read_manifest, validate_manifest,
)
from provaudit.index.segment import Segment

__all__ = ["CHECKSUMS", "FILES", "FORMAT", "FORMAT_VERSION", "MARKER", "MAX_MANIFEST_BYTES", "RAW", "Index",
           "Segment", "checksum_lists_sha256", "load_index", "manifest_checksum", "manifest_text", "read_manifest",
           "validate_manifest"]


def read_removed(path: Path, entry: dict[str, Any] | None, numbered: int) -> np.ndarray:
    """The removed items' numbers (``del-*.u64``), read whole, checked against their sha256, sorted,
    distinct and below ``numbered``."""
    if entry is None:
        return np.zeros(0, np.int64)
    p = path / entry["name"]
    if not p.is_file() or p.is_symlink():
        raise IndexFormatError(f"{p}: missing (or not a regular file)")
    with open(p, "rb") as f:
        data = f.read(entry["bytes"] + 1)
    if len(data) != entry["bytes"] or hashlib.sha256(data).hexdigest() != entry["sha256"]:
        raise IndexFormatError(f"{p}: does not match its checksum in the manifest (file changed or corrupt)")
    out = np.frombuffer(data, "<u8").astype(np.int64)
    if len(out) and (int(out[0]) < 0 or int(out[-1]) >= numbered or bool((out[1:] <= out[:-1]).any())):
        raise hostile(p, "removed item numbers not sorted, repeated or out of range")
    return out


class Index:
    """A loaded index: its segments in force and its removed items.

    ``len(index)`` is the number of items numbered (removed ones included: item numbers stay
    below it); ``live_items`` counts the items not removed. Item-wise accessors (``tokens_of``,
    ``shingles_of``, ``usable_of``, ``sequence``, ``ids_of``) cost what they touch; the
    whole-index properties (``n_tokens``, ``n_shingles``, ``ids``, ``items``) read every row.

    Attributes:
        path: Index directory.
        location: Where the index was named: ``path``, or the URL of an index cached at ``path``
            (``index.remote``).
        manifest: Parsed, validated manifest.json.
        config: Parameters the index was built with.
        max_postings: Anchor keys of more items than this (in a segment) were skipped when
            ``anchor_usable`` was computed.
        segments: The segments, in item order; ``bases`` their first item numbers.
        removed: Sorted numbers of the removed items.
        files: Every segment file, by its path relative to ``path``.
    """

    def __init__(self, path: Path, manifest: dict[str, Any]):
        self.path, self.manifest = path, manifest
        self.location = str(path)
        self.config = IndexConfig.from_dict(manifest["config"])
        self.anchor_plan: dict[str, Any] = manifest["anchor_plan"]
        self.max_postings: int = self.anchor_plan["max_postings"]
        self.segments = [Segment(path, s, self.config, self.anchor_plan) for s in manifest["segments"]]
        self.bases = np.array([s.base for s in self.segments] + [self._end()], dtype=np.int64)
        self._starts = self.bases[:-1].tolist()
        self.n_items = int(self.bases[-1])
        self.removed = read_removed(path, manifest.get("removed"), self.n_items)
        self.live_items = self.n_items - len(self.removed)
        self.files: dict[str, Chunked] = {f"{s.name}/{n}": f for s in self.segments for n, f in s.files.items()}
        self.shapes = self._shapes()

    def _end(self) -> int:
        last = self.manifest["segments"][-1]
        return int(last["base"]) + int(last["counts"]["items"])

    def _shapes(self) -> np.ndarray:
        """(distinct shingles, usable anchors, items) of the live items, summed over the segments."""
        return self._live_rows([s.shapes for s in self.segments], lambda r: (self.shingles_of(r), self.usable_of(r)))

    @cached_property
    def token_shapes(self) -> np.ndarray:
        """(tokens, distinct shingles, usable anchors, items) of the live items, summed over the segments:
        what a model-output audit's summary needs, read without any per-item array."""
        return self._live_rows([s.token_shapes for s in self.segments],
                               lambda r: (self.tokens_of(r), self.shingles_of(r), self.usable_of(r)))

    def _live_rows(self, parts: list[np.ndarray], of_removed: Callable[[np.ndarray], tuple[np.ndarray, ...]]
                   ) -> np.ndarray:
        """Histogram rows (values..., items) of every segment, summed, minus the removed items' rows."""
        width = parts[0].shape[1]
        if len(parts) == 1 and not len(self.removed):
            return parts[0]
        if len(self.removed):
            parts = [*parts, np.stack([*of_removed(self.removed), -np.ones(len(self.removed), np.int64)], axis=1)]
        rows = np.concatenate(parts).reshape(-1, width)
        code, inverse = np.unique(rows[:, :-1], axis=0, return_inverse=True)
        counts = np.bincount(inverse.reshape(-1), weights=rows[:, -1], minlength=len(code)).astype(np.int64)
        if bool((counts < 0).any()):
            raise hostile(self.path, "removed items do not match the segments' shapes")
        out: np.ndarray = np.concatenate([code, counts[:, None]], axis=1)[counts > 0].astype(np.int64)
        return out.reshape(-1, width)

    def __len__(self) -> int:
        return self.n_items

    # --- dispatch of item numbers to segments ---------------------------------------------------------
    def split(self, items: np.ndarray) -> Iterator[tuple[Segment, np.ndarray, np.ndarray]]:
        """For each segment holding some of ``items``: (segment, positions in ``items``, its own numbers).

        Raises:
            IndexFormatError: for an item number out of range.
        """
        items = np.asarray(items, dtype=np.int64)
        if len(items) and (int(items.min()) < 0 or int(items.max()) >= self.n_items):
            raise hostile(self.path, "item number out of range")
        if len(self.segments) == 1:
            yield self.segments[0], np.arange(len(items)), items
            return
        seg = np.searchsorted(self.bases, items, side="right") - 1
        for s in np.unique(seg).tolist():
            where = np.flatnonzero(seg == s)
            yield self.segments[s], where, items[where] - self.segments[s].base

    def segment_of(self, item: int) -> Segment:
        if not 0 <= item < self.n_items:
            raise hostile(self.path, "item number out of range")
        return self.segments[bisect.bisect_right(self._starts, item) - 1]

    def _gather(self, items: np.ndarray, name: str, dtype: Any = np.int64) -> np.ndarray:
        items = np.asarray(items, dtype=np.int64)
        out = np.zeros(len(items), dtype=dtype)
        for seg, where, local in self.split(items):
            out[where] = getattr(seg, name)(local)
        return out

    def tokens_of(self, items: np.ndarray) -> np.ndarray:
        return self._gather(items, "tokens_of")

    def shingles_of(self, items: np.ndarray) -> np.ndarray:
        """Distinct shingles per item (a count: no kernel indexes memory with it)."""
        return self._gather(items, "shingles_of")

    def usable_of(self, items: np.ndarray) -> np.ndarray:
        return self._gather(items, "usable_of")

    def sequence(self, item: int) -> np.ndarray:
        """One item's shingle hashes (offsets validated, bytes verified)."""
        seg = self.segment_of(item)
        return seg.sequence(item - seg.base)

    def sequences_of(self, items: np.ndarray) -> list[np.ndarray]:
        """The items' shingle hashes, in order (offsets validated, bytes verified)."""
        out: list[np.ndarray] = [np.zeros(0, np.uint64)] * len(items)
        for seg, where, local in self.split(items):
            lo, hi = seg.seq_bounds(local)
            for w, a, b in zip(where.tolist(), lo.tolist(), hi.tolist()):
                out[w] = seg.seq_hashes[a:b]
        return out

    def column_of(self, name: str, items: np.ndarray) -> list[Any]:
        """Values of an ``items.parquet`` column for these items (``id``, ``source``, ``row``, ``text``)."""
        out: list[Any] = [None] * len(items)
        for seg, where, local in self.split(items):
            for w, v in zip(where.tolist(), seg.column_of(name, local)):
                out[w] = v
        return out

    def ids_of(self, items: np.ndarray) -> list[str]:
        return [str(v) for v in self.column_of("id", items)]

    def is_removed(self, items: np.ndarray) -> np.ndarray:
        """Per item number: True when the item was removed."""
        items = np.asarray(items, dtype=np.int64)
        if not len(self.removed):
            return np.zeros(len(items), dtype=bool)
        at = np.minimum(np.searchsorted(self.removed, items), len(self.removed) - 1)
        out: np.ndarray = self.removed[at] == items
        return out

    # --- whole-index views ----------------------------------------------------------------------------
    def _concat(self, name: str) -> np.ndarray:
        if len(self.segments) == 1:
            one: np.ndarray = getattr(self.segments[0], name)
            return one
        return np.concatenate([getattr(s, name) for s in self.segments])

    @cached_property
    def n_tokens(self) -> np.ndarray:
        return self._concat("n_tokens")

    @cached_property
    def n_shingles(self) -> np.ndarray:
        return self._concat("n_shingles")

    @cached_property
    def usable(self) -> np.ndarray:
        return self._concat("usable")

    @cached_property
    def low_items(self) -> np.ndarray:
        """Every segment's ``low_items.u32`` (verified, checked), as the index's item numbers."""
        return np.concatenate([s.low_items + s.base for s in self.segments]).astype(np.int64)

    def items_with_shingles(self, at_least: int) -> int:
        """Live items with at least this many distinct shingles (from ``shapes``: no per-item read)."""
        return int(self.shapes[self.shapes[:, 0] >= at_least, 2].sum())

    @cached_property
    def items(self) -> pa.Table:
        """The whole items table of every segment (removed items included: rows are item numbers)."""
        parts = [s.items for s in self.segments]
        return parts[0] if len(parts) == 1 else pa.concat_tables(parts)

    @cached_property
    def ids(self) -> Any:
        ids = self.items.column("id").combine_chunks()
        return ids.dictionary_decode() if pa.types.is_dictionary(ids.type) else ids


def checksum_lists_sha256(path: Path) -> str | None:
    """sha256 of the index's segments' checksum lists (``checksums.sha256``) in manifest order, read as
    they are (an audit's bundle records it); None when the manifest or a list cannot be read."""
    try:
        m = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
        names = [s["name"] for s in m["segments"]]
        h = hashlib.sha256()
        for name in names:
            if not isinstance(name, str) or not SEGMENT_NAME.fullmatch(name):
                return None
            h.update(hashlib.sha256((path / name / CHECKSUMS).read_bytes()).digest())
        return h.hexdigest()
    except (OSError, ValueError, KeyError, TypeError):
        return None


def load_index(path: Path) -> Index:
    """Open an index directory: manifest, checksum lists and removed items verified, files mapped,
    nothing else read.

    Raises:
        IndexFormatError: on a missing, changed, truncated or unreadable file, or a value out of range.
    """
    return Index(path, read_manifest(path))
