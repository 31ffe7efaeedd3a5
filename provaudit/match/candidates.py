"""Candidate generation and exact verification.

Two candidate generators feed one exact verifier:

* **Anchors** (containment, short-in-long). Each reference item keeps its ``k``
  smallest distinct shingle hashes as anchors. Every distinct shingle of a
  target record is looked up in the sorted anchor table, and a pair becomes a
  candidate when at least ``t`` of the item's anchors are found. If a share
  ``c`` of the item's ``N`` shingles is in the target, the number of anchors
  found is Hypergeometric(N, ceil(cN), k); ``t`` is the largest count whose
  miss probability at the threshold ``c_min`` is at most ``miss_rate``
  (exact, with no miss at all, when ``N <= k``). See docs/design.md.
* **LSH bands** (Jaccard, datasketch-compatible signatures) for target records
  whose size allows Jaccard >= min_jaccard with some reference item.

Every candidate is verified on exact shingle sets: nothing is reported from a
sketch estimate alone.
"""

from __future__ import annotations

from functools import cached_property

import numpy as np

from provaudit.text import kernels
from provaudit.config import AuditConfig
from provaudit.index.check import LOW_SHAPE, shape_table, usable_anchors
from provaudit.match.probability import anchor_threshold
from provaudit.index.format import Index
from provaudit.index.segment import Segment
from provaudit.index.chunks import SPARSE_MAX, SPARSE_RUNS, expand, hostile
from provaudit.text import sets
from provaudit.text.shingle import ShingleBatch


LOW_FILTER_MASK = (1 << 20) - 1  # low_filter: 1 MB, in cache, whatever the index size
_NO_LOW = np.zeros(LOW_FILTER_MASK + 1, np.uint8)  # no item kept for being low: ``anchor_counts`` keeps every pair


class AnchorPlan:
    """Anchor thresholds for one audit, computed for the items a target touches.

    An item's threshold depends only on its distinct shingles N, its usable anchors k
    (anchors whose key is shared by at most ``max_postings`` items) and the audit's
    thresholds, so it is solved once per distinct (N, k) and cached. Usable anchors are
    stored in the index for the default ``max_postings``; another value recounts them
    from the anchor table (reading all of it).

    ``long_postings``: keys of more items than this are probed, not expanded (``anchor_need``,
    ``dep_*``), when the index's stored plan holds for this audit's thresholds; else None.

    Example:
        >>> plan = AnchorPlan(index, AuditConfig())             # doctest: +SKIP
        >>> plan.threshold_of(np.array([0, 5]))                  # doctest: +SKIP
    """

    def __init__(self, index: Index, config: AuditConfig):
        self.index, self.c_min, self.miss_rate = index, config.min_overlap, config.miss_rate
        self.max_postings = config.max_postings
        stored = index.anchor_plan
        # the stored long-anchor plan holds when every threshold is at least the one it was computed for
        self.long_postings: int | None = stored["long_postings"] if (
            config.max_postings == stored["max_postings"] and stored["long_postings"] < stored["max_postings"]
            and config.min_overlap >= stored["min_overlap"] and config.miss_rate >= stored["miss_rate"]) else None
        self._usable: np.ndarray | None = None
        if config.max_postings != index.max_postings:  # recounted segment by segment, as they were built
            parts = []
            for seg in index.segments:
                t = seg.anchor_table
                t.keys_file.ensure_all()
                t.items_file.ensure_all()
                parts.append(usable_anchors(t.keys, t.items, len(seg), config.max_postings))
            self._usable = np.concatenate(parts)
        self._solved: dict[tuple[int, int], tuple[int, float]] = {}
        self._needs: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        # thresholds by code n * width + k, filled as codes are met (when the table is small enough)
        self._width = index.config.anchors + 1
        top = int(index.shapes[:, 0].max()) + 1 if len(index.shapes) else 1
        self._t_table = np.full(top * self._width, -1, np.int64) if top * self._width <= 1 << 22 else None

    @cached_property
    def t_cut(self) -> int:
        """Fewest anchor hits any item outside ``index.low_items`` needs to become a candidate.

        From the (distinct shingles, usable anchors) histogram: the smallest threshold over the
        shapes with both at least ``LOW_SHAPE`` (0-threshold shapes are never candidates). 1
        (no shortcut) when usable anchors were recounted for another ``max_postings``.
        """
        if self._usable is not None:
            return 1
        s = self.index.shapes
        big = (s[:, 0] >= LOW_SHAPE) & (s[:, 1] >= LOW_SHAPE)
        if not big.any():
            return 1
        t = self._solve(s[big, 0], s[big, 1])[0]
        return int(t[t > 0].min()) if (t > 0).any() else 1 << 30

    @cached_property
    def low_filter(self) -> np.ndarray:
        """A bitmap of the low items' numbers modulo ``LOW_FILTER_MASK + 1``: never false for a low
        item (a few other items share a bit; their pairs just get the per-item check)."""
        out = np.zeros(LOW_FILTER_MASK + 1, dtype=bool)
        out[self.index.low_items & LOW_FILTER_MASK] = True
        return out

    def needs(self, seg: Segment) -> tuple[np.ndarray, np.ndarray]:
        """The segment's ``anchor_need`` (verified) and ``need <= 1`` as bits, read once per audit."""
        if seg.name not in self._needs:
            seg.files["anchor_need.u8"].ensure_all()
            need = seg.arrays["anchor_need.u8"]
            self._needs[seg.name] = need, np.packbits(need <= 1, bitorder="little")
        return self._needs[seg.name]

    def usable_of(self, items: np.ndarray) -> np.ndarray:
        if self._usable is not None:
            return self._usable[np.asarray(items, dtype=np.int64)]
        return self.index.usable_of(items)

    def _solve(self, n: np.ndarray, k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        width = int(k.max()) + 1 if len(k) else 1
        uniq, inverse = np.unique(n * width + k, return_inverse=True)
        t_of, m_of = np.zeros(len(uniq), np.int64), np.ones(len(uniq), np.float64)
        for j, c in enumerate(uniq.tolist()):
            key = (c // width, c % width)
            if key not in self._solved:
                self._solved[key] = anchor_threshold(key[0], key[1], self.c_min, self.miss_rate)
            t_of[j], m_of[j] = self._solved[key]
        inverse = inverse.reshape(-1)
        return t_of[inverse], m_of[inverse]

    def threshold_of(self, items: np.ndarray) -> np.ndarray:
        """Anchors each item needs to become a candidate (0: not searchable by anchors)."""
        n, k = self.index.shingles_of(items), self.usable_of(items)
        table = self._t_table
        if table is None or (len(n) and int(n.max()) * self._width >= len(table)):
            return self._solve(n, k)[0]
        code = n * self._width + k
        new = sets.unique(code[table[code] < 0])
        if len(new):
            table[new] = self._solve(new // self._width, new % self._width)[0]
        out: np.ndarray = table[code]
        return out

    def thresholds_of_shapes(self, n: np.ndarray, k: np.ndarray) -> np.ndarray:
        """``threshold_of`` items of these distinct shingles and usable anchors."""
        return self._solve(np.asarray(n, dtype=np.int64), np.asarray(k, dtype=np.int64))[0]

    def miss_of(self, items: np.ndarray) -> np.ndarray:
        """Probability of missing a pair exactly at the containment threshold, per item."""
        return self._solve(self.index.shingles_of(items), self.usable_of(items))[1]

    @cached_property
    def usable(self) -> np.ndarray:
        """Usable anchors of every item (reads the whole index)."""
        return self.usable_of(np.arange(len(self.index)))

    @cached_property
    def threshold(self) -> np.ndarray:
        """``threshold_of`` every item (reads the whole index)."""
        return self.threshold_of(np.arange(len(self.index)))

    @cached_property
    def miss(self) -> np.ndarray:
        """``miss_of`` every item (reads the whole index)."""
        return self.miss_of(np.arange(len(self.index)))

    def summary(self) -> tuple[int, float | None, float | None]:
        """(items not searchable, largest and mean miss probability of the searchable items), from the
        index's (shingles, usable anchors) histogram: no per-item read."""
        if self._usable is not None:
            shapes = shape_table(self.index.n_shingles, self._usable)
        else:
            shapes = self.index.shapes
        t, m = self._solve(shapes[:, 0], shapes[:, 1])
        counts = shapes[:, 2]
        ok = (t > 0) & (counts > 0)
        if not ok.any():
            return int(counts.sum()), None, None
        return int(counts[~ok].sum()), float(m[ok].max()), float((m[ok] * counts[ok]).sum() / counts[ok].sum())


POSTINGS_STEP = 1 << 21  # anchor postings expanded at a time: bounds a batch's memory, whatever the index size


def anchor_candidates(index: Index, plan: AnchorPlan, batch: ShingleBatch,
                      step: int = POSTINGS_STEP) -> tuple[np.ndarray, np.ndarray]:
    """Candidate (record, item) pairs from anchor hits, by record, then item, segment by segment.

    Every shingle of every record is looked up (repeats included) in each segment's anchor
    table; keys shared by more than ``max_postings`` items of a segment are skipped there;
    hits are then reduced to distinct (record, anchor) pairs, so each anchor counts once.
    Postings are expanded for runs of whole records of about ``step`` postings at a time: a
    larger index means longer postings per key, not larger arrays.
    """
    return merge_segments([_segment_anchor_candidates(seg, plan, batch, step) for seg in index.segments if len(seg)])


def merge_segments(found: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Each segment's (record, item) pairs as one list, ordered by record, then item."""
    if len(found) == 1:
        return found[0]
    if not found:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    recs, items = np.concatenate([r for r, _ in found]), np.concatenate([i for _, i in found])
    order = np.lexsort((items, recs))
    return recs[order], items[order]


def _segment_anchor_candidates(seg: Segment, plan: AnchorPlan, batch: ShingleBatch,
                               step: int) -> tuple[np.ndarray, np.ndarray]:
    """``anchor_candidates`` in one segment (items numbered as the index numbers them)."""
    table = seg.anchor_table
    hit, lo, hi = table.hits(batch.hashes)
    live = (hi - lo) <= plan.max_postings
    hit, lo, hi = hit[live], lo[live], hi[live]
    if len(hit) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    rec = np.searchsorted(batch.offsets, hit, side="right") - 1  # hits come in record order
    keys = batch.hashes[hit]
    cost = hi - lo if plan.long_postings is None else np.minimum(hi - lo, plan.long_postings)
    ends = np.cumsum(cost)
    recs: list[np.ndarray] = []
    items: list[np.ndarray] = []
    start = 0
    while start < len(hit):
        # at least one record, then whole records while they fit in the step
        stop = int(np.searchsorted(ends, (ends[start - 1] if start else 0) + step, side="right"))
        stop = int(np.searchsorted(rec, rec[min(max(stop, start + 1), len(hit)) - 1], side="right"))
        r, i = _anchor_pairs(seg, plan, rec[start:stop], lo[start:stop], hi[start:stop], keys[start:stop])
        recs.append(r)
        items.append(i)
        start = stop
    return np.concatenate(recs), np.concatenate(items)


def _anchor_pairs(seg: Segment, plan: AnchorPlan, rec: np.ndarray, lo: np.ndarray, hi: np.ndarray,
                  keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``anchor_candidates`` for the hits of whole records (their records, posting ranges and keys).

    With the compiled kernel: each record's postings are counted in a hash table (``kernels.anchor_counts``);
    when the plan allows, the postings of long keys are not expanded: items met in short postings are
    searched in them, and the items that could have every hit in long keys are found by those keys in
    the segment's ``dep_*`` table. Same pairs as ``anchor_counts`` + ``accept_counts`` (tested).
    """
    if not kernels.ENABLED:
        code, counts = anchor_counts(seg, rec, lo, hi)
        return accept_counts(seg, plan, code, counts)
    table, n = seg.anchor_table, len(seg)
    # a record's repeated shingles hit the same key (the same rows): count each key once
    distinct, first = np.unique(rec.astype(np.int64) * len(table) + lo, return_index=True)
    rec, lo, hi, keys = distinct // len(table), lo[first], hi[first], keys[first]
    size = hi - lo
    is_long = size > plan.long_postings if plan.long_postings is not None else np.zeros(len(lo), bool)
    need = need_le1 = None  # then every item met in short postings is searched in the long ones (exact)
    if len(lo) <= min(SPARSE_RUNS, table.items_file.budget) and int(size.sum()) <= SPARSE_MAX:
        src = table.items_file.take_ranges(lo, hi, "<u4")  # few postings: read, not mapped
        starts, ends = np.cumsum(size) - size, np.cumsum(size)
    else:
        table.items_file.ensure_rows(lo, hi, 4)
        src, starts, ends = table.items, lo, hi
        if is_long.any():
            need, need_le1 = plan.needs(seg)
    short = (rec[~is_long], starts[~is_long], ends[~is_long])
    dep = long = None
    dep_src = None
    if is_long.any():
        long = (rec[is_long], starts[is_long], ends[is_long])
        q, dlo, dhi = seg.dep_table.hits(keys[is_long])
        dep_src = seg.dep_table.items_file.take_ranges(dlo, dhi, "<u4")
        dsize = dhi - dlo
        dep = (long[0][q], np.cumsum(dsize) - dsize, np.cumsum(dsize))
    t_cut = plan.t_cut if plan.t_cut > 1 else 0
    try:
        r, it, counts = kernels.anchor_counts(short, src, n, t_cut, plan.low_filter.view(np.uint8), LOW_FILTER_MASK,
                                              seg.base, dep, dep_src, long, need, need_le1)
    except kernels.AnchorCountError as e:
        raise hostile(table.items_file.path if dep is None else seg.dep_table.items_file.path,
                      "item number out of range" if str(e) == "item" else "posting range out of the table") from None
    it += seg.base
    t = plan.threshold_of(it)
    keep = (t > 0) & (counts >= t)
    return r[keep], it[keep]


def anchor_counts(seg: Segment, rec: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct anchors each (record, item) pair shares, from anchor hits (their records and posting ranges).

    Returns ``(code, count)`` sorted by code = ``record * len(seg) + item - seg.base``. Counts over
    disjoint sets of keys add up: lookups split by key range give, summed, the counts of one lookup.
    """
    table, n = seg.anchor_table, len(seg)
    if kernels.ENABLED:  # the same pairs and counts, counted in C (``kernels.anchor_counts``, every pair kept)
        distinct, first = np.unique(rec.astype(np.int64) * len(table) + lo, return_index=True)
        rec, lo, hi = distinct // len(table), lo[first], hi[first]
        table.items_file.ensure_rows(lo, hi, 4)
        try:
            r, it, counts = kernels.anchor_counts((rec, lo, hi), table.items, n, 0, _NO_LOW, LOW_FILTER_MASK, 0)
        except kernels.AnchorCountError as e:
            raise hostile(table.items_file.path, "item number out of range" if str(e) == "item" else
                          "posting range out of the table") from None
        return r * n + it, counts
    owner, pos = expand(lo, hi)
    distinct = sets.unique(rec[owner].astype(np.int64) * len(table) + pos)
    code = (distinct // len(table)) * n + table.item_numbers(distinct % len(table)).astype(np.int64)
    uniq, counts = np.unique(code, return_counts=True)
    return uniq, counts


def accept_counts(seg: Segment, plan: AnchorPlan, code: np.ndarray,
                  counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The (record, item) pairs of ``anchor_counts`` whose count reaches the item's threshold."""
    n = len(seg)
    it = code % n + seg.base
    if plan.t_cut > 1:  # most pairs share one anchor: drop those no item can accept, before any per-item read
        keep = (counts >= plan.t_cut) | plan.low_filter[it & LOW_FILTER_MASK]
        code, counts, it = code[keep], counts[keep], it[keep]
    t = plan.threshold_of(it)
    keep = (t > 0) & (counts >= t)
    return code[keep] // n, it[keep]


def lsh_candidates(index: Index, band_keys: np.ndarray, records: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Candidate (record, item) pairs sharing at least one LSH band key (in any segment).

    Args:
        band_keys: ``(len(records), bands)`` keys of the target records.
        records: The batch positions of those records.
    """
    n = len(index)
    codes = []
    for seg in index.segments:
        hit, lo, hi = seg.band_table.hits(band_keys.reshape(-1))
        owner, pos = expand(lo, hi)
        items = seg.band_table.item_numbers(pos).astype(np.int64) + seg.base
        recs = records[hit[owner] // band_keys.shape[1]].astype(np.int64)
        codes.append(recs * n + items)
    code = sets.unique(np.concatenate(codes))
    return code // n, code % n


def verify(index: Index, unique: ShingleBatch, recs: np.ndarray, items: np.ndarray) -> np.ndarray:
    """Exact ``|S(item) & S(record)|`` for each candidate pair.

    ``unique`` holds each candidate record's sorted distinct shingles (``unique_per_record``).
    The items' sequence offsets are validated and their bytes verified before the kernel reads them
    (segment by segment, with the segment's own item numbers).
    """
    out = np.zeros(len(recs), dtype=np.int64)
    for seg, where, local in index.split(items):
        seg.seq_bounds(sets.unique(local))
        if kernels.ENABLED:
            out[where] = kernels.overlap(unique.hashes, unique.offsets, recs[where], seg.seq_hashes, seg.seq_offsets,
                                         local)
        else:
            out[where] = _verify_py(seg, unique, recs[where], local)
    return out


def _verify_py(index: Segment, unique: ShingleBatch, recs: np.ndarray, items: np.ndarray) -> np.ndarray:
    vocab = sets.unique(unique.hashes)
    t_rec = np.repeat(np.arange(len(unique), dtype=np.int64), np.diff(unique.offsets))
    t_code = np.sort(t_rec * len(vocab) + np.searchsorted(vocab, unique.hashes))
    lo, hi = index.seq_offsets[items], index.seq_offsets[items + 1]
    pair, pos = expand(lo, hi)
    ref = index.seq_hashes[pos]
    # distinct reference shingles only: drop repeats within an item's sequence
    order = np.lexsort((ref, pair))
    ref, pair = ref[order], pair[order]
    first = np.ones(len(ref), dtype=bool)
    first[1:] = (ref[1:] != ref[:-1]) | (pair[1:] != pair[:-1])
    ref, pair = ref[first], pair[first]
    r = np.searchsorted(vocab, ref)
    r_clip = np.minimum(r, len(vocab) - 1)
    in_vocab = vocab[r_clip] == ref
    code = recs[pair] * len(vocab) + r_clip
    j = np.minimum(np.searchsorted(t_code, code), len(t_code) - 1)
    found = in_vocab & (t_code[j] == code)
    return np.bincount(pair[found], minlength=len(recs)).astype(np.int64)
