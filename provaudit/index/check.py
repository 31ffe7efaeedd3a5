"""The whole-index structural check behind ``provaudit verify``: every value against every rule it must obey.

Audits validate only the values they use; this reads everything (O(index size)).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from provaudit.index.chunks import hostile
from provaudit.index.format import Index, load_index
from provaudit.index.segment import Segment
from provaudit.index.keytable import build_directory, id_hashes
from provaudit.match.probability import anchor_threshold
from provaudit.text.shingle import ShingleBatch, unique_per_record
from provaudit.text.sketch import band_keys, signatures

_BLOCK = 1 << 16  # items re-derived at a time
_M1, _M2, _M3 = np.uint64(0x9E3779B97F4A7C15), np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)



USABLE_ROWS = 1 << 22  # anchor rows per step of usable_anchors (bounded memory on memory-mapped tables)


def usable_anchors(keys: np.ndarray, items: np.ndarray, n_items: int, max_postings: int,
                   step: int = USABLE_ROWS) -> np.ndarray:
    """Per item: anchors whose key is shared by at most ``max_postings`` items (keys sorted)."""
    return anchor_classes(keys, items, n_items, max_postings, max_postings, step)[0]


def _runs(keys: np.ndarray, step: int) -> Iterator[tuple[int, int, np.ndarray]]:
    """``(start, end, run length of each row)`` for ``step`` rows at a time of sorted ``keys``, each step
    ending where a key ends, so that temporaries stay bounded however large the table."""
    start, n = 0, len(keys)
    while start < n:
        end = n if start + step >= n else int(np.searchsorted(keys, keys[start + step - 1], side="right"))
        k = np.asarray(keys[start:end])
        starts = np.flatnonzero(np.r_[True, k[1:] != k[:-1]])
        runs = np.diff(np.r_[starts, len(k)])
        yield start, end, np.repeat(runs, runs)
        start = end


def anchor_classes(keys: np.ndarray, items: np.ndarray, n_items: int, max_postings: int, long_postings: int,
                   step: int = USABLE_ROWS) -> tuple[np.ndarray, np.ndarray]:
    """Per item: usable anchors (key shared by at most ``max_postings`` items) and, of those, long ones
    (key shared by more than ``long_postings`` items), from the table sorted by key."""
    usable = np.zeros(n_items, dtype=np.int64)
    long = np.zeros(n_items, dtype=np.int64)
    for start, end, run in _runs(keys, step):
        it = np.asarray(items[start:end])
        usable += np.bincount(it[run <= max_postings], minlength=n_items)
        long += np.bincount(it[(run <= max_postings) & (run > long_postings)], minlength=n_items)
    return usable, long


NEVER = 255  # ``anchor_need`` of an item no audit searches by anchors (no usable anchor)


def short_needs(n_shingles: np.ndarray, usable: np.ndarray, long: np.ndarray, min_overlap: float,
                miss_rate: float) -> np.ndarray:
    """Per item (``anchor_need.u8``): the hits in short keys it needs before its long anchors can bring it
    to its threshold at these settings, ``max(t - long, 0)``; 0 marks a *dependent* item, which may have
    every hit in long keys (``dep_*``: its long anchors, looked up by key); ``NEVER`` when t is 0."""
    width = int(usable.max()) + 1 if len(usable) else 1
    code = n_shingles.astype(np.int64) * width + usable
    uniq, inverse = np.unique(code, return_inverse=True)
    t = np.array([anchor_threshold(int(c // width), int(c % width), min_overlap, miss_rate)[0] for c in uniq.tolist()],
                 dtype=np.int64)
    t_item = t[inverse.reshape(-1)] if len(uniq) else np.zeros(0, np.int64)
    out: np.ndarray = np.where(t_item > 0, np.minimum(np.maximum(t_item - long, 0), NEVER - 1), NEVER).astype(np.uint8)
    return out


def dependent_rows(keys: np.ndarray, items: np.ndarray, dependent: np.ndarray, max_postings: int,
                   long_postings: int, step: int = USABLE_ROWS) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The rows of the anchor table (sorted by (key, item), so these are too) of long keys and dependent items
    (``dependent``: per item, True when ``short_needs`` is 0)."""
    for start, end, run in _runs(keys, step):
        it = np.asarray(items[start:end])
        keep = (run <= max_postings) & (run > long_postings)
        keep[keep] = dependent[it[keep]]
        yield np.asarray(keys[start:end])[keep], it[keep]


LOW_SHAPE = 8  # items with fewer distinct shingles or usable anchors than this are listed in low_items.u32


def low_items(n_shingles: np.ndarray, usable: np.ndarray) -> np.ndarray:
    """Items with ``min(distinct shingles, usable anchors) < LOW_SHAPE``, sorted.

    Every other item needs at least ``AnchorPlan.t_cut`` anchor hits, so an audit can drop
    the (record, item) pairs with fewer hits before it looks anything up per item.
    """
    out: np.ndarray = np.flatnonzero(np.minimum(n_shingles, usable) < LOW_SHAPE).astype(np.int64)
    return out


def shape_table(n_shingles: np.ndarray, usable: np.ndarray) -> np.ndarray:
    """``(k, 3)`` rows (distinct shingles, usable anchors, items), sorted."""
    width = int(usable.max()) + 1 if len(usable) else 1
    code, counts = np.unique(n_shingles.astype(np.int64) * width + usable, return_counts=True)
    return np.stack([code // width, code % width, counts], axis=1).astype(np.int64).reshape(-1, 3)


def token_shape_table(n_tokens: np.ndarray, n_shingles: np.ndarray, usable: np.ndarray) -> np.ndarray:
    """``(k, 4)`` rows (tokens, distinct shingles, usable anchors, items), sorted: what a model-output
    audit's per-item requirements depend on (``regurgitation.verdicts``), so that it needs no per-item read."""
    cols = [np.asarray(c, dtype=np.int64) for c in (n_tokens, n_shingles, usable)]
    if not len(cols[0]):
        return np.zeros((0, 4), "<i8")
    order = np.lexsort(cols[::-1])
    rows = np.stack([c[order] for c in cols], axis=1)
    start = np.flatnonzero(np.r_[True, (rows[1:] != rows[:-1]).any(axis=1)])
    counts = np.diff(np.r_[start, len(rows)])
    return np.concatenate([rows[start], counts[:, None]], axis=1).astype("<i8")


def _pair_sum(keys: np.ndarray, items: np.ndarray, seed: np.uint64) -> int:
    """An order-independent digest of a multiset of (key, item) pairs under a secret ``seed``: equal
    multisets give equal sums; a forged change that keeps the sum needs the seed."""
    with np.errstate(over="ignore"):
        h = (keys ^ seed) * _M1 ^ (items.astype(np.uint64) + seed) * _M2
        h ^= h >> np.uint64(31)
        h *= _M3
        h ^= h >> np.uint64(29)
    return int(h.sum(dtype=np.uint64))


def _table_sum(keys: np.ndarray, items: np.ndarray, seed: np.uint64) -> int:
    total = 0
    for a in range(0, len(keys), 1 << 22):
        total += _pair_sum(np.asarray(keys[a : a + (1 << 22)]), np.asarray(items[a : a + (1 << 22)]), seed)
    return total % (1 << 64)


def _derived_sums(index: Segment, seed: np.uint64) -> tuple[int, int]:
    """Digests of the anchor and band tables re-derived from the stored sequences, block by block."""
    a, cfg = index.arrays, index.config
    off, seq, n_tok = a["seq_offsets.i64"], a["sequences.u64"], a["n_tokens.u32"]
    anchors = bands = 0
    for lo in range(0, index.n_items, _BLOCK):
        hi = min(index.n_items, lo + _BLOCK)
        o = np.asarray(off[lo : hi + 1]) - int(off[lo])
        sb = ShingleBatch(np.asarray(seq[int(off[lo]) : int(off[hi])]), o, np.asarray(n_tok[lo:hi], np.int64))
        ub = unique_per_record(sb)
        n_unique = np.diff(ub.offsets)
        rec = np.repeat(np.arange(hi - lo), n_unique)
        take = (np.arange(len(ub.hashes)) - ub.offsets[rec]) < cfg.anchors
        anchors += _pair_sum(ub.hashes[take], rec[take] + lo, seed)
        nonempty = np.flatnonzero((n_unique > 0) & cfg.band_table)
        keys = band_keys(signatures(sb, cfg.num_perm, cfg.seed), cfg.bands, cfg.rows)[nonempty]
        bands += _pair_sum(keys.reshape(-1), np.repeat(nonempty + lo, cfg.bands), seed)
    return anchors % (1 << 64), bands % (1 << 64)


def check_structure(index: Segment) -> None:
    """Raise ``hostile`` naming the first rule a fully verified segment breaks."""
    a, n = index.arrays, index.n_items
    off = a["seq_offsets.i64"]
    if len(off) and (off[0] != 0 or bool((np.diff(off) < 0).any()) or off[-1] != len(a["sequences.u64"])):
        raise hostile(index.path / "seq_offsets.i64", "offsets out of order")
    n_sh = a["n_shingles.u32"].astype(np.int64)
    if bool((n_sh > np.diff(off)).any()):
        raise hostile(index.path / "n_shingles.u32", "more distinct shingles than shingles")
    ng = index.config.ngram
    n_tok = a["n_tokens.u32"].astype(np.int64)
    if not np.array_equal(np.diff(off), np.where(n_tok >= ng, n_tok - ng + 1, np.minimum(n_tok, 1))):
        raise hostile(index.path / "n_tokens.u32", "token counts do not match the sequence lengths")
    seed = np.uint64(int.from_bytes(np.random.default_rng().bytes(8), "little"))
    derived = dict(zip(("anchor", "band"), _derived_sums(index, seed)))
    ids = [str(i) for i in index.ids.to_pylist()]
    derived["id"] = _pair_sum(id_hashes(ids), np.arange(n, dtype=np.int64), seed) % (1 << 64)
    for name in ("anchor", "band", "id"):
        keys, items = a[f"{name}_keys.u64"], a[f"{name}_items.u32"]
        if len(items) and int(items.max()) >= n:
            raise hostile(index.path / f"{name}_items.u32", "item number out of range")
        if len(keys) > 1 and bool(((keys[1:] < keys[:-1]) | ((keys[1:] == keys[:-1]) & (items[1:] <= items[:-1]))).any()):
            raise hostile(index.path / f"{name}_keys.u64", "keys not sorted by (key, item)")
        if _table_sum(keys, items, seed) != derived[name]:
            raise hostile(index.path / f"{name}_keys.u64", f"the {name} table does not match the sequences")
        if not np.array_equal(build_directory(keys), a[f"{name}_dir.i64"]):
            raise hostile(index.path / f"{name}_dir.i64", "directory does not match the keys")
    keys, items = a["anchor_keys.u64"], a["anchor_items.u32"].astype(np.int64)
    per_item = np.bincount(items, minlength=n)
    if not np.array_equal(per_item, np.minimum(n_sh, index.config.anchors)):
        raise hostile(index.path / "anchor_items.u32", "anchors per item do not match the distinct shingles")
    plan = index.plan
    usable, long = anchor_classes(keys, items, n, plan["max_postings"], plan["long_postings"])
    if not np.array_equal(usable, a["anchor_usable.u8"]):
        raise hostile(index.path / "anchor_usable.u8", "usable anchors do not match the anchor table")
    need = short_needs(n_sh, usable, long, plan["min_overlap"], plan["miss_rate"])
    if not np.array_equal(need, a["anchor_need.u8"]):
        raise hostile(index.path / "anchor_need.u8", "does not match the anchor table")
    dependent = need == 0
    rows = list(dependent_rows(keys, items, dependent, plan["max_postings"], plan["long_postings"]))
    dep_keys = np.concatenate([k for k, _ in rows]) if rows else np.zeros(0, np.uint64)
    dep_items = np.concatenate([i for _, i in rows]) if rows else np.zeros(0, np.uint32)
    if not (np.array_equal(dep_keys, a["dep_keys.u64"]) and np.array_equal(dep_items, a["dep_items.u32"])):
        raise hostile(index.path / "dep_keys.u64", "the dependent items' table does not match the anchor table")
    if not np.array_equal(build_directory(dep_keys), a["dep_dir.i64"]):
        raise hostile(index.path / "dep_dir.i64", "directory does not match the keys")
    if not np.array_equal(shape_table(n_sh, usable), index.shapes):
        raise hostile(index.path / "shapes.i64", "does not match the items")
    if not np.array_equal(token_shape_table(a["n_tokens.u32"], n_sh, usable), index.token_shapes):
        raise hostile(index.path / "token_shapes.i64", "does not match the items")
    if not np.array_equal(low_items(n_sh, usable), index.low_items):
        raise hostile(index.path / "low_items.u32", "does not match the items")
    index.items  # noqa: B018 - every row group parsed


def verify_index(path: Path) -> Index:
    """``provaudit verify``: every byte of every file against its checksum, then every structural
    rule of every segment (sorted keys, offsets, directories, derived tables, counts) an audit relies on.

    Raises:
        IndexFormatError: naming the first file and the rule that fails.
    """
    index = load_index(path)  # the manifest, the segments' checksum lists and the removed items verified
    for seg in index.segments:
        for f in seg.files.values():
            f.forget()  # every byte hashed, whatever a verified stamp says
            f.ensure_all()
        check_structure(seg)
    return index
