"""Key ranges: one index spread over P partitions without a new format.

Anchor keys are uniform 64-bit hashes. Partition ``p`` of ``P`` owns the keys in
``[(p << 64) // P, ((p + 1) << 64) // P)``; since every anchor table is sorted by key, a
partition is one contiguous row range of each table (``row_range``): a slice of the existing
layout. A batch's target shingles are split by partition (``split``), each one looked up in the
one partition that owns it, so the total lookup work stays that of one lookup per shingle
(``sum_p M_p log N <= M log N``), not P times it.

Example:
    >>> boundaries(3)
    [0, 6148914691236517205, 12297829382473034410, 18446744073709551616]
    >>> [p.tolist() for p in split(np.array([1, 2**63, 2**64 - 1], np.uint64), 2)]
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


def boundaries(partitions: int) -> list[int]:
    """The ``partitions + 1`` key boundaries (Python ints): partition p owns ``[b[p], b[p + 1])``; the
    last boundary is ``2**64``."""
    check_partitions(partitions)
    return [(p << 64) // partitions for p in range(partitions + 1)]


def partition_of(hashes: np.ndarray, partitions: int) -> np.ndarray:
    """The partition owning each key (int64), exactly by ``boundaries`` (no float arithmetic)."""
    inner = np.array(boundaries(partitions)[1:-1], dtype=np.uint64)
    return np.searchsorted(inner, np.asarray(hashes, np.uint64), side="right").astype(np.int64)


def split(hashes: np.ndarray, partitions: int) -> list[np.ndarray]:
    """For each partition, the positions of ``hashes`` it owns, ascending (so a batch's hits keep
    their record order). Every position is in exactly one list."""
    owner = partition_of(hashes, partitions)
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


def row_range(table: KeyTable, partition: int, partitions: int) -> tuple[int, int]:
    """Rows ``[lo, hi)`` of ``table`` whose keys ``partition`` owns: the only rows its lookups read."""
    b = boundaries(partitions)
    lo, hi = first_rows(table, [b[partition], b[partition + 1]])
    return lo, hi


__all__ = ["MAX_PARTITIONS", "boundaries", "check_partitions", "first_rows", "partition_of", "row_range", "split"]
