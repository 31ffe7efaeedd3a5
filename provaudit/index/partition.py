"""Key ranges: one index spread over P partitions without a new format.

Partition ``p`` of ``P`` owns the anchor keys in ``[b[p], b[p + 1])`` for boundaries
``0 = b[0] <= b[1] <= ... <= b[P] = 2**64``. Every anchor table is sorted by key, so a partition
is one contiguous row range of each table (``row_range``): a slice of the existing layout. A
batch's target shingles are split by partition (``split``), each one looked up in the one
partition that owns it, so the total lookup work stays that of one lookup per shingle
(``sum_p M_p log N <= M log N``), not P times it. Any boundaries give the same candidates (the
partial counts of disjoint key sets add up); they only decide the balance.

Anchor keys are not uniform: an item's anchors are its smallest shingle hashes, so the tables
crowd at small keys (100,000 posts of 60 words: 86.2% of the rows below ``2**64 / 4``). Equal key
ranges (``even_boundaries``) balance the lookups (target shingles are uniform) but not the rows a
partition holds; ``balanced_boundaries`` cuts the keys at quantiles of the tables' rows, so each
partition holds about ``1/P`` of every table's rows (its node's memory) and of the postings the
lookups expand; misses (a target shingle that is no anchor: a directory read and a short bucket)
then fall mostly on the partitions of large keys.

Example:
    >>> even_boundaries(3)
    [0, 6148914691236517205, 12297829382473034410, 18446744073709551616]
    >>> [p.tolist() for p in split(np.array([1, 2**63, 2**64 - 1], np.uint64), even_boundaries(2))]
    [[0], [1, 2]]
"""

from __future__ import annotations

import numpy as np

from provaudit.errors import ConfigError
from provaudit.index.keytable import KeyTable

MAX_PARTITIONS = 4096


def check_partitions(partitions: int) -> None:
    """Raises ConfigError unless ``1 <= partitions <= MAX_PARTITIONS``."""
    if not 1 <= partitions <= MAX_PARTITIONS:
        raise ConfigError(f"--partitions must be between 1 and {MAX_PARTITIONS}, got {partitions}")


def even_boundaries(partitions: int) -> list[int]:
    """Equal key ranges: partition p owns ``[(p << 64) // P, ((p + 1) << 64) // P)`` (P + 1 Python ints)."""
    check_partitions(partitions)
    return [(p << 64) // partitions for p in range(partitions + 1)]


SAMPLES = 4096  # rows read per table to place the boundaries: each partition's share is within ~1/SAMPLES


def balanced_boundaries(tables: list[KeyTable], partitions: int, samples: int = SAMPLES) -> list[int]:
    """Boundaries at quantiles of the rows of ``tables`` (pooled, each table weighted by its rows), so
    that each partition holds about ``1/partitions`` of them; ``even_boundaries`` without rows. The keys
    are read verified (``Chunked.take``); whatever they are, the boundaries are ordered, and any ordered
    boundaries give the same candidates."""
    check_partitions(partitions)
    keys, weights = [], []
    for t in tables:
        n = len(t)
        k = min(n, samples)
        if k:
            rows = (2 * np.arange(k, dtype=np.int64) + 1) * n // (2 * k)
            keys.append(t.keys_file.take(rows, "<u8"))
            weights.append(np.full(k, n / k))
    if not keys:
        return even_boundaries(partitions)
    key, weight = np.concatenate(keys), np.concatenate(weights)
    order = np.argsort(key, kind="stable")
    key, cum = key[order], np.cumsum(weight[order])
    at = np.searchsorted(cum, cum[-1] * np.arange(1, partitions) / partitions, side="left")
    inner = [int(key[min(int(j), len(key) - 1)]) for j in at]
    return [0, *inner, 1 << 64]


def check_boundaries(bounds: list[int]) -> None:
    """Raises ConfigError unless ``bounds`` start at 0, end at ``2**64`` and never decrease."""
    if len(bounds) < 2 or bounds[0] != 0 or bounds[-1] != 1 << 64 or any(a > b for a, b in zip(bounds, bounds[1:])):
        raise ConfigError("partition boundaries must run from 0 to 2**64 without decreasing")


def partition_of(hashes: np.ndarray, bounds: list[int]) -> np.ndarray:
    """The partition owning each key (int64), exactly by ``bounds`` (no float arithmetic)."""
    inner = np.array(bounds[1:-1], dtype=np.uint64)
    return np.searchsorted(inner, np.asarray(hashes, np.uint64), side="right").astype(np.int64)


def split(hashes: np.ndarray, bounds: list[int]) -> list[np.ndarray]:
    """For each partition, the positions of ``hashes`` it owns, ascending (so a batch's hits keep
    their record order). Every position is in exactly one list."""
    partitions = len(bounds) - 1
    owner = partition_of(hashes, bounds)
    order = np.argsort(owner, kind="stable")
    cuts = np.searchsorted(owner[order], np.arange(partitions + 1), side="left")
    return [order[cuts[p] : cuts[p + 1]].astype(np.int64) for p in range(partitions)]


def first_rows(table: KeyTable, keys: list[int]) -> list[int]:
    """For each key (a Python int in ``[0, 2**64]``), the first row of ``table`` whose key is >= it
    (``len(table)`` for ``2**64``), from the directory and one bucket's keys, both validated as
    ``KeyTable.hits`` validates them."""
    top = [k for k in keys if k < 1 << 64]
    q = np.array(top, dtype=np.uint64)
    lo, hi = table._buckets(q)  # validated directory entries (as segment.py uses them)
    out: dict[int, int] = {}
    for k, a, b in zip(top, lo.tolist(), hi.tolist()):
        bucket = table.keys_file.take_ranges(np.array([a], np.int64), np.array([b], np.int64), "<u8")
        out[k] = a + int(np.searchsorted(bucket, np.uint64(k), side="left"))
    return [out.get(k, len(table)) for k in keys]


def row_range(table: KeyTable, lo_key: int, hi_key: int) -> tuple[int, int]:
    """Rows ``[lo, hi)`` of ``table`` whose keys lie in ``[lo_key, hi_key)``: the only rows a partition's
    lookups read."""
    lo, hi = first_rows(table, [lo_key, hi_key])
    return lo, hi


__all__ = ["MAX_PARTITIONS", "SAMPLES", "balanced_boundaries", "check_boundaries", "check_partitions",
           "even_boundaries", "first_rows", "partition_of", "row_range", "split"]
