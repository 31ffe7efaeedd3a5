"""Anchor candidates from lookups split by key range (``index.partition``).

A batch's target shingles are split by the partition owning their key; each partition's
lookups (``range_counts``: in a Ray range actor, ``run.ray_ranges``, or in this process,
``LocalRanges``) give per segment the partial ``(code, count)`` of ``candidates.anchor_counts``
for its hits, after dropping keys over ``max_postings`` exactly as the unpartitioned search
does. Distinct anchors of disjoint key sets add up, so the partial counts summed per code are
the counts of one lookup over all keys; ``combine`` sums them and applies
``candidates.accept_counts``: the candidates of ``candidates.anchor_candidates``, by construction.

Example:
    >>> bounds = partition.even_boundaries(3)                                    # doctest: +SKIP
    >>> search = PartitionedAnchors(bounds, LocalRanges(index, plan.max_postings))  # doctest: +SKIP
    >>> recs, items = search(index, plan, shingled_batch)                        # = anchor_candidates(...)
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from provaudit.index import partition
from provaudit.index.format import Index
from provaudit.index.segment import Segment
from provaudit.match.candidates import POSTINGS_STEP, AnchorPlan, accept_counts, anchor_counts, merge_segments
from provaudit.text.shingle import ShingleBatch

Partial = list[tuple[np.ndarray, np.ndarray]]  # per segment of the index: (code int64 sorted, count)


def _small(values: np.ndarray) -> np.ndarray:
    """Non-negative integers in the smallest unsigned type that holds them (a pair's count is at most
    its item's anchors, <= 256, in an index that is not corrupt; a corrupt one must not wrap them)."""
    top = int(values.max()) if len(values) else 0
    for dt in (np.uint8, np.uint16, np.uint32):
        if top <= np.iinfo(dt).max:
            return values.astype(dt)
    return values.astype(np.uint64)


class AnchorSearch(Protocol):
    """What ``Engine`` calls for anchor candidates (default: ``candidates.anchor_candidates``)."""

    def __call__(self, index: Index, plan: AnchorPlan, batch: ShingleBatch) -> tuple[np.ndarray, np.ndarray]: ...


class RangeLookup(Protocol):
    """Partial counts of each partition's hits: ``hashes[j]`` (records ``recs[j]``) go to partition
    ``parts[j]``; returns one ``Partial`` per entry, in that order."""

    def __call__(self, parts: list[int], hashes: list[np.ndarray], recs: list[np.ndarray]) -> list[Partial]: ...


def _empty() -> tuple[np.ndarray, np.ndarray]:
    return np.zeros(0, np.int64), np.zeros(0, np.uint16)


def record_steps(rec: np.ndarray, postings: np.ndarray, step: int) -> Iterator[tuple[int, int]]:
    """``[start, stop)`` runs of hits (``rec`` non-decreasing) of whole records, about ``step``
    postings each (at least one record), as ``candidates._segment_anchor_candidates`` expands them."""
    ends = np.cumsum(postings)
    start = 0
    while start < len(rec):
        stop = int(np.searchsorted(ends, (ends[start - 1] if start else 0) + step, side="right"))
        stop = int(np.searchsorted(rec, rec[min(max(stop, start + 1), len(rec)) - 1], side="right"))
        yield start, stop
        start = stop


def segment_counts(seg: Segment, max_postings: int, hashes: np.ndarray, recs: np.ndarray,
                   step: int = POSTINGS_STEP) -> tuple[np.ndarray, np.ndarray]:
    """``anchor_counts`` of the hits of ``hashes`` (of records ``recs``, non-decreasing) in one segment,
    keys shared by more than ``max_postings`` items skipped, postings expanded about ``step`` at a time."""
    hit, lo, hi = seg.anchor_table.hits(hashes)
    live = (hi - lo) <= max_postings
    hit, lo, hi = hit[live], lo[live], hi[live]
    rec = np.asarray(recs, np.int64)[hit]
    codes: list[np.ndarray] = []
    counts: list[np.ndarray] = []
    for a, b in record_steps(rec, hi - lo, step):
        code, count = anchor_counts(seg, rec[a:b], lo[a:b], hi[a:b])
        codes.append(code)
        counts.append(_small(count))
    if not codes:
        return _empty()
    return np.concatenate(codes), np.concatenate(counts)


def range_counts(index: Index, max_postings: int, hashes: np.ndarray, recs: np.ndarray,
                 step: int = POSTINGS_STEP) -> tuple[Partial, int]:
    """One partition's answer: ``segment_counts`` in every segment (empty for an empty one), and the
    lookups made (keys looked up, summed over the segments)."""
    out: Partial = []
    lookups = 0
    for seg in index.segments:
        if len(seg) and len(hashes):
            out.append(segment_counts(seg, max_postings, hashes, recs, step))
            lookups += len(hashes)
        else:
            out.append(_empty())
    return out, lookups


Packed = list[tuple[np.ndarray, np.ndarray, np.ndarray]]  # per segment: pairs per record, items, counts - 1


def pack(partial: Partial, n_items: list[int]) -> Packed:
    """A ``Partial`` as shipped between processes, 5 bytes a pair instead of 10: per segment (of
    ``n_items[s]`` items) the number of pairs of each record (uint32, records 0 to the last with a
    pair), the pairs' items (uint32, ascending within a record) and their counts minus one (uint8:
    a count is 1 to 256, the most anchors an item has; wider only for a corrupt index)."""
    out: Packed = []
    for (code, count), n in zip(partial, n_items):
        if not len(code):
            out.append((np.zeros(0, np.uint32), np.zeros(0, np.uint32), np.zeros(0, np.uint8)))
            continue
        rec = code // max(n, 1)
        out.append((np.bincount(rec).astype(np.uint32), (code - rec * n).astype(np.uint32),
                    _small(count.astype(np.int64) - 1)))
    return out


def unpack(packed: Packed, n_items: list[int]) -> Partial:
    """``pack``'s ``Partial`` back: ``(code int64, count int64)`` per segment."""
    out: Partial = []
    for (per_rec, items, less), n in zip(packed, n_items):
        rec = np.repeat(np.arange(len(per_rec), dtype=np.int64), per_rec.astype(np.int64))
        out.append((rec * n + items.astype(np.int64), less.astype(np.int64) + 1))
    return out


def sum_counts(codes: list[np.ndarray], counts: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Partial ``(code, count)`` lists summed per code: ``(distinct codes ascending, int64 sums)``."""
    if not codes:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    code = np.concatenate(codes)
    count = np.concatenate(counts).astype(np.int64)
    if len(codes) > 1:
        order = np.argsort(code, kind="stable")
        code, count = code[order], count[order]
    if len(code) == 0:
        return code, count
    first = np.flatnonzero(np.r_[True, code[1:] != code[:-1]])
    return code[first], np.add.reduceat(count, first)


def combine(index: Index, plan: AnchorPlan, partials: list[Partial]) -> tuple[np.ndarray, np.ndarray]:
    """Candidate (record, item) pairs from partitions' partial counts, ordered as ``anchor_candidates``."""
    found = []
    for s, seg in enumerate(index.segments):
        if not len(seg):
            continue
        code, count = sum_counts([p[s][0] for p in partials], [p[s][1] for p in partials])
        found.append(accept_counts(seg, plan, code, count))
    return merge_segments(found)


@dataclass(frozen=True)
class PartitionedAnchors:
    """``AnchorSearch`` by key range: each target shingle looked up once, by the partition owning it.

    Attributes:
        bounds: The P + 1 key boundaries (``index.partition``: partition p owns ``[bounds[p], bounds[p + 1])``).
        lookup: Answers a batch's partitions (``RangeLookup``); partitions without a shingle are not asked.
    """

    bounds: list[int]
    lookup: RangeLookup

    def __post_init__(self) -> None:
        partition.check_boundaries(self.bounds)

    def __call__(self, index: Index, plan: AnchorPlan, batch: ShingleBatch) -> tuple[np.ndarray, np.ndarray]:
        parts, hashes, recs = [], [], []
        rec_dtype = np.int32 if len(batch.offsets) < 1 << 31 else np.int64
        for p, pos in enumerate(partition.split(batch.hashes, self.bounds)):
            if len(pos):
                parts.append(p)
                hashes.append(batch.hashes[pos])
                recs.append((np.searchsorted(batch.offsets, pos, side="right") - 1).astype(rec_dtype))
        return combine(index, plan, self.lookup(parts, hashes, recs) if parts else [])


@dataclass(frozen=True)
class LocalRanges:
    """``RangeLookup`` in this process (tests; the reference the Ray range actors are checked against)."""

    index: Index
    max_postings: int
    step: int = POSTINGS_STEP

    def __call__(self, parts: list[int], hashes: list[np.ndarray], recs: list[np.ndarray]) -> list[Partial]:
        return [range_counts(self.index, self.max_postings, h, r, self.step)[0] for h, r in zip(hashes, recs)]


__all__ = ["AnchorSearch", "LocalRanges", "Packed", "Partial", "PartitionedAnchors", "RangeLookup", "combine", "pack",
           "range_counts", "record_steps", "segment_counts", "sum_counts", "unpack"]
