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

import math
from dataclasses import dataclass

import numpy as np

from provaudit.text import kernels
from provaudit.config import AuditConfig
from provaudit.match.probability import hypergeom_cdf
from provaudit.index.format import Index
from provaudit.text import sets
from provaudit.text.shingle import ShingleBatch


@dataclass(frozen=True, slots=True)
class AnchorPlan:
    """Per-item anchor thresholds for one audit.

    Attributes:
        threshold: Anchors an item needs to become a candidate (0: not searchable by anchors).
        usable: Anchors per item after skipping over-shared (boilerplate) keys.
        miss: Probability of missing a pair exactly at the containment threshold.
        skip_key: Per anchor-table row, True where its key is shared by too many items.
    """

    threshold: np.ndarray
    usable: np.ndarray
    miss: np.ndarray
    skip_key: np.ndarray


def plan_anchors(index: Index, config: AuditConfig) -> AnchorPlan:
    """Choose each item's anchor threshold for the audit's thresholds and miss rate."""
    keys = index.anchor_keys
    n_items = len(index)
    if len(keys) and kernels.ENABLED:
        skip_key = kernels.long_runs(keys, config.max_postings)
    elif len(keys):
        starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
        counts = np.diff(np.r_[starts, len(keys)])
        skip_key = np.repeat(counts > config.max_postings, counts)
    else:
        skip_key = np.zeros(0, dtype=bool)
    total = np.bincount(index.anchor_items, minlength=n_items)
    usable = total - np.bincount(index.anchor_items[skip_key], minlength=n_items)
    # items share few distinct (shingles, usable anchors) pairs: solve each pair once
    width = int(usable.max()) + 1 if n_items else 1
    code = np.asarray(index.n_shingles, dtype=np.int64) * width + usable.astype(np.int64)
    uniq, inverse = np.unique(code, return_inverse=True)
    solved = [_threshold(int(c) // width, int(c) % width, config.min_overlap, config.miss_rate) for c in uniq.tolist()]
    t_of = np.array([t for t, _ in solved], dtype=np.int64).reshape(-1)
    m_of = np.array([m for _, m in solved], dtype=np.float64).reshape(-1)
    inverse = inverse.reshape(-1)
    threshold = t_of[inverse] if n_items else np.zeros(0, dtype=np.int64)
    miss = m_of[inverse] if n_items else np.ones(0, dtype=np.float64)
    return AnchorPlan(threshold, usable, miss, skip_key)


def _threshold(n_shingles: int, k: int, c_min: float, miss_rate: float) -> tuple[int, float]:
    k = min(k, n_shingles)
    if k == 0:
        return 0, 1.0
    overlap = math.ceil(c_min * n_shingles - 1e-9)
    cdf = hypergeom_cdf(n_shingles, overlap, k)  # cdf[t-1] = P(X < t)
    ok = np.flatnonzero(cdf <= miss_rate)
    t = int(ok[-1]) + 1 if len(ok) else 1
    return t, float(cdf[t - 1]) if t >= 1 else 0.0


def _expand(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flatten ranges [lo, hi): (owner index, position) for every position."""
    cnt = hi - lo
    owner = np.repeat(np.arange(len(lo)), cnt)
    base = np.repeat(lo - (np.cumsum(cnt) - cnt), cnt)
    return owner, base + np.arange(int(cnt.sum()))


def anchor_candidates(index: Index, plan: AnchorPlan, batch: ShingleBatch) -> tuple[np.ndarray, np.ndarray]:
    """Candidate (record, item) pairs from anchor hits.

    Every shingle of every record is looked up (repeats included); hits are then
    reduced to distinct (record, anchor) pairs, so each anchor counts once.
    """
    hit, lo, hi = index.anchor_table.hits(batch.hashes)
    if len(hit) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    owner, pos = _expand(lo, hi)
    live = ~plan.skip_key[pos]
    owner, pos = owner[live], pos[live]
    rec = np.searchsorted(batch.offsets, hit[owner], side="right") - 1
    distinct = sets.unique(rec.astype(np.int64) * len(index.anchor_keys) + pos)
    rec, pos = distinct // len(index.anchor_keys), distinct % len(index.anchor_keys)
    code = rec * len(index) + index.anchor_items[pos].astype(np.int64)
    uniq, counts = np.unique(code, return_counts=True)
    it = uniq % len(index)
    keep = (plan.threshold[it] > 0) & (counts >= plan.threshold[it])
    return uniq[keep] // len(index), it[keep]


def lsh_candidates(index: Index, band_keys: np.ndarray, records: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Candidate (record, item) pairs sharing at least one LSH band key.

    Args:
        band_keys: ``(len(records), bands)`` keys of the target records.
        records: The batch positions of those records.
    """
    hit, lo, hi = index.band_table.hits(band_keys.reshape(-1))
    owner, pos = _expand(lo, hi)
    recs = records[hit[owner] // band_keys.shape[1]].astype(np.int64)
    items = index.band_items[pos].astype(np.int64)
    code = sets.unique(recs * len(index) + items)
    return code // len(index), code % len(index)


def verify(index: Index, unique: ShingleBatch, recs: np.ndarray, items: np.ndarray) -> np.ndarray:
    """Exact ``|S(item) & S(record)|`` for each candidate pair.

    ``unique`` holds each candidate record's sorted distinct shingles (``unique_per_record``).
    """
    if len(recs) == 0:
        return np.zeros(0, dtype=np.int64)
    if kernels.ENABLED:
        return kernels.overlap(unique.hashes, unique.offsets, recs, index.seq_hashes, index.seq_offsets, items)
    return _verify_py(index, unique, recs, items)


def _verify_py(index: Index, unique: ShingleBatch, recs: np.ndarray, items: np.ndarray) -> np.ndarray:
    vocab = sets.unique(unique.hashes)
    t_rec = np.repeat(np.arange(len(unique), dtype=np.int64), np.diff(unique.offsets))
    t_code = np.sort(t_rec * len(vocab) + np.searchsorted(vocab, unique.hashes))
    lo, hi = index.seq_offsets[items], index.seq_offsets[items + 1]
    pair, pos = _expand(lo, hi)
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


@dataclass(frozen=True, slots=True)
class Runs:
    """Maximal runs of consecutive equal elements shared by sequences ``a`` and ``b``.

    Attributes:
        a_start: Start position of each run in ``a``.
        b_start: Start position of each run in ``b``.
        length: Run length (elements).
    """

    a_start: np.ndarray
    b_start: np.ndarray
    length: np.ndarray

    def __len__(self) -> int:
        return len(self.length)


def shared_runs(a: np.ndarray, b: np.ndarray) -> Runs:
    """Every maximal diagonal run of equal elements between ``a`` and ``b``, ordered by (b_start, a_start).

    A run is maximal: it cannot be extended at either end. Its longest length
    equals ``longest_common_run(a, b)``.

    Example:
        >>> r = shared_runs(np.array([1, 2, 3, 9]), np.array([0, 1, 2, 3, 4, 9]))
        >>> r.a_start.tolist(), r.b_start.tolist(), r.length.tolist()
        ([0, 3], [1, 5], [3, 1])
    """
    empty = np.zeros(0, dtype=np.int64)
    if len(a) == 0 or len(b) == 0:
        return Runs(empty, empty, empty)
    order = np.argsort(a, kind="stable")
    sa = a[order]
    lo = np.searchsorted(sa, b, side="left")
    hi = np.searchsorted(sa, b, side="right")
    jb, pos = _expand(lo, hi)
    if len(pos) == 0:
        return Runs(empty, empty, empty)
    ia = order[pos].astype(np.int64)
    jb = jb.astype(np.int64)
    diag = jb - ia
    o = np.lexsort((ia, diag))
    d, i = diag[o], ia[o]
    brk = np.ones(len(d), dtype=bool)
    brk[1:] = (d[1:] != d[:-1]) | (i[1:] != i[:-1] + 1)
    first = np.flatnonzero(brk)
    length = np.diff(np.r_[first, len(d)]).astype(np.int64)
    a0 = i[first]
    b0 = a0 + d[first]
    by_b = np.lexsort((a0, b0))
    return Runs(a0[by_b], b0[by_b], length[by_b])


def longest_common_run(a: np.ndarray, b: np.ndarray) -> int:
    """Length of the longest run of consecutive equal elements shared by sequences ``a`` and ``b``.

    Example:
        >>> longest_common_run(np.array([1, 2, 3, 9]), np.array([0, 1, 2, 3, 4]))
        3
    """
    if len(a) == 0 or len(b) == 0:
        return 0
    if kernels.ENABLED:
        return kernels.longest_common_run(a, b)
    runs = shared_runs(a, b)
    return int(runs.length.max()) if len(runs) else 0


def covered_tokens(seq: np.ndarray, matched: np.ndarray, n_tokens: int, ngram: int) -> int:
    """Tokens of a target record covered by at least one of its shingles found in ``matched``."""
    if len(seq) == 0:
        return 0
    if kernels.ENABLED:
        m = np.asarray(matched, dtype=np.uint64)
        if len(m) > 1 and not bool((m[1:] >= m[:-1]).all()):
            m = np.sort(m)
        return kernels.covered_tokens(seq, m, n_tokens, min(ngram, n_tokens))
    hit = sets.isin(seq, matched)
    if not hit.any():
        return 0
    width = min(ngram, n_tokens)
    cover = np.convolve(hit.astype(np.int64), np.ones(width, dtype=np.int64))[:n_tokens]
    return int((cover > 0).sum())
