"""Reproducible uniform sampling of target records and shards.

Whether a record is sampled depends only on ``(seed, source, row)`` through a
64-bit key from a stable hash (BLAKE2b), never on worker count, on the order
in which shards or records are processed, or on Python's randomized
``hash()``. Samplers stream: they never hold the input.

Inclusion probabilities are known exactly, so the estimators in
:mod:`provaudit.estimate.stats` are design-unbiased: a :class:`BernoulliSampler`
keeps every record independently with probability ``fraction``; a
:class:`BottomKSampler` keeps a simple random sample of ``count`` of the ``N``
records it was offered (each record with probability ``count / N``).

Use a stable ``source`` name (e.g. the shard path as the user gave it, or a
path relative to the dataset root), not an absolute path that differs between
machines, if the same sample must be drawn elsewhere.

Example:
    >>> sampler = BernoulliSampler(0.5, seed=7)
    >>> sampler.keep("shard-0.jsonl", 3) == sampler.keep("shard-0.jsonl", 3)
    True
"""

from __future__ import annotations

import hashlib
import heapq
import math
import numbers
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import numpy as np
import numpy.typing as npt

__all__ = ["BernoulliSampler", "BottomKSampler", "SampledRecord", "record_key", "record_keys",
           "sample_shards"]

T = TypeVar("T")

_KEY_SPACE = 2**64
_RECORD_PERSON = b"provaudit-rec-v1"
_SHARD_PERSON = b"provaudit-shd-v1"


def _check_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not 0 <= int(value) < _KEY_SPACE:
        raise ValueError(f"{name} must be an integer in [0, 2**64), got {value!r}")
    return int(value)


def _prefix(seed: int, source: str, person: bytes) -> hashlib.blake2b:
    """A BLAKE2b state that has absorbed the seed and the length-prefixed source."""
    if not isinstance(source, str):
        raise ValueError(f"source must be a string, got {source!r}")
    name = source.encode("utf-8", "surrogatepass")
    h = hashlib.blake2b(digest_size=8, person=person)
    h.update(_check_int("seed", seed).to_bytes(8, "little"))
    h.update(len(name).to_bytes(8, "little"))
    h.update(name)
    return h


def record_key(seed: int, source: str, row: int) -> int:
    """The 64-bit sampling key of record ``row`` of ``source`` under ``seed``.

    BLAKE2b (digest size 8, personalised) over the seed (8 bytes), the
    length-prefixed UTF-8 source name and the row (8 bytes, little-endian),
    read as a big-endian unsigned integer. Keys are uniform on [0, 2**64) and
    stable across Python versions, platforms and processes.

    Args:
        seed: Sampling seed in [0, 2**64).
        source: Stable name of the file or dataset the record came from.
        row: 0-based row of the record within ``source``, in [0, 2**64).

    Returns:
        The key, an int in [0, 2**64).

    Raises:
        ValueError: If ``seed`` or ``row`` is not an integer in range or ``source`` is not a string.

    Example:
        >>> 0 <= record_key(1, "a.jsonl", 0) < 2**64
        True
    """
    h = _prefix(seed, source, _RECORD_PERSON)
    h.update(_check_int("row", row).to_bytes(8, "little"))
    return int.from_bytes(h.digest(), "big")


def record_keys(seed: int, source: str, rows: Any) -> npt.NDArray[np.uint64]:
    """Vectorized :func:`record_key` for many rows of one source.

    Args:
        seed: Sampling seed in [0, 2**64).
        source: Stable name of the source.
        rows: 1-D array-like of non-negative integer rows.

    Returns:
        A ``uint64`` array of keys, one per row.

    Raises:
        ValueError: As :func:`record_key`, or if ``rows`` is not 1-D integers.

    Example:
        >>> int(record_keys(1, "a.jsonl", [0])[0]) == record_key(1, "a.jsonl", 0)
        True
    """
    arr = np.asarray(rows)
    if arr.ndim != 1 or (arr.size and not np.issubdtype(arr.dtype, np.integer)):
        raise ValueError(f"rows must be a 1-D integer array, got dtype {arr.dtype} shape {arr.shape}")
    if arr.size and int(arr.min()) < 0:
        raise ValueError(f"row must be an integer in [0, 2**64), got {int(arr.min())}")
    base = _prefix(seed, source, _RECORD_PERSON)
    out = np.empty(arr.size, dtype=np.uint64)
    for i, row in enumerate(arr.tolist()):
        h = base.copy()
        h.update(row.to_bytes(8, "little"))
        out[i] = int.from_bytes(h.digest(), "big")
    return out


def _threshold(fraction: Any) -> int:
    """Smallest integer key that is NOT kept: ``ceil(fraction * 2**64)`` (exact in floats)."""
    if isinstance(fraction, bool) or not isinstance(fraction, numbers.Real) or not 0.0 <= float(fraction) <= 1.0:
        raise ValueError(f"fraction must be in [0, 1], got {fraction!r}")
    return math.ceil(float(fraction) * 2.0**64)


class BernoulliSampler:
    """Keep each record independently with probability ``fraction`` (Poisson sampling).

    A record is kept iff ``record_key(seed, source, row) < fraction * 2**64``,
    so the decision is a pure function of the record's identity. Samples for
    a smaller fraction are subsets of those for a larger one (same seed).

    Args:
        fraction: Inclusion probability in [0, 1].
        seed: Sampling seed in [0, 2**64).

    Raises:
        ValueError: If ``fraction`` or ``seed`` is out of range.

    Example:
        >>> s = BernoulliSampler(0.25, seed=3)
        >>> s.keep_rows("x", np.arange(4)).tolist() == [s.keep("x", r) for r in range(4)]
        True
    """

    __slots__ = ("fraction", "seed", "_limit")

    def __init__(self, fraction: float, seed: int) -> None:
        self._limit: int = _threshold(fraction)
        self.fraction: float = float(fraction)
        self.seed: int = _check_int("seed", seed)

    @property
    def inclusion_probability(self) -> float:
        """Probability that any given record is kept (equals ``fraction``)."""
        return self.fraction

    def keep(self, source: str, row: int) -> bool:
        """Whether record ``row`` of ``source`` is in the sample.

        Args:
            source: Stable name of the source.
            row: 0-based row within ``source``.

        Returns:
            ``True`` iff the record's key is below ``fraction * 2**64``.
        """
        return record_key(self.seed, source, row) < self._limit

    def keep_rows(self, source: str, rows: Any) -> npt.NDArray[np.bool_]:
        """Vectorized :meth:`keep` for many rows of one source.

        Args:
            source: Stable name of the source.
            rows: 1-D array-like of non-negative integer rows.

        Returns:
            A boolean mask aligned with ``rows``.
        """
        keys = record_keys(self.seed, source, rows)
        if self._limit >= _KEY_SPACE:
            return np.ones(keys.shape, dtype=np.bool_)
        return np.asarray(keys < np.uint64(self._limit), dtype=np.bool_)


@dataclass(frozen=True, slots=True)
class SampledRecord(Generic[T]):
    """One record kept by a :class:`BottomKSampler`.

    Attributes:
        key: The record's 64-bit sampling key.
        source: Source name.
        row: Row within the source.
        payload: Whatever the caller attached when offering the record.
    """

    key: int
    source: str
    row: int
    payload: T


class _Slot(Generic[T]):
    """Heap entry ordered by *descending* ``(key, source, row)`` so heap[0] is the largest."""

    __slots__ = ("rank", "item")

    def __init__(self, item: SampledRecord[T]) -> None:
        self.rank = (item.key, item.source, item.row)
        self.item = item

    def __lt__(self, other: _Slot[T]) -> bool:
        return self.rank > other.rank


class BottomKSampler(Generic[T]):
    """Fixed-size uniform sample: the ``count`` records with the smallest keys.

    Memory is bounded by ``count`` (a max-heap). The result depends only on the
    set of records offered, not on their order or on how they were split
    across workers (combine per-worker samplers with :meth:`merge`). Over
    ``N`` distinct records each is kept with probability ``min(1, count / N)``
    and the sample is a simple random sample without replacement. Offering
    the same ``(source, row)`` twice has no further effect on the sample.

    Args:
        count: Sample size (>= 1).
        seed: Sampling seed in [0, 2**64).

    Raises:
        ValueError: If ``count`` < 1 or ``seed`` is out of range.

    Example:
        >>> s: BottomKSampler[str] = BottomKSampler(2, seed=1)
        >>> for row in range(10):
        ...     _ = s.offer("a.jsonl", row, f"text {row}")
        >>> len(s.result()), s.offered
        (2, 10)
    """

    def __init__(self, count: int, seed: int) -> None:
        if isinstance(count, bool) or not isinstance(count, numbers.Integral) or int(count) < 1:
            raise ValueError(f"count must be an integer >= 1, got {count!r}")
        self.count: int = int(count)
        self.seed: int = _check_int("seed", seed)
        self.offered: int = 0
        self._heap: list[_Slot[T]] = []
        self._members: set[tuple[str, int]] = set()

    @property
    def inclusion_probability(self) -> float:
        """``min(1, count / offered)``: the chance each offered record is in the result."""
        return 1.0 if self.offered <= self.count else self.count / self.offered

    def offer(self, source: str, row: int, payload: T) -> bool:
        """Offer one record; keep it if its key is among the ``count`` smallest so far.

        Each distinct record should be offered once (repeats of a record that
        is currently held are ignored and not counted in :attr:`offered`).

        Args:
            source: Stable name of the source.
            row: 0-based row within ``source``.
            payload: Data to keep with the record (e.g. its text or a match summary).

        Returns:
            Whether the record is (for now) in the sample.
        """
        return self._push(SampledRecord(record_key(self.seed, source, row), source, int(row), payload))

    def _push(self, item: SampledRecord[T]) -> bool:
        ident = (item.source, item.row)
        if ident in self._members:
            return True
        self.offered += 1
        slot = _Slot(item)
        if len(self._heap) < self.count:
            heapq.heappush(self._heap, slot)
        elif slot.rank < self._heap[0].rank:
            evicted = heapq.heapreplace(self._heap, slot).item
            self._members.discard((evicted.source, evicted.row))
        else:
            return False
        self._members.add(ident)
        return True

    def merge(self, other: BottomKSampler[T]) -> None:
        """Fold in a sampler that saw a disjoint part of the stream (e.g. another worker).

        Args:
            other: A sampler with the same ``count`` and ``seed``.

        Raises:
            ValueError: If ``count`` or ``seed`` differ.
        """
        if (other.count, other.seed) != (self.count, self.seed):
            raise ValueError(
                f"cannot merge samplers with different count/seed: {(other.count, other.seed)} "
                f"vs {(self.count, self.seed)}")
        seen = self.offered + other.offered
        for slot in other._heap:
            self._push(slot.item)
        self.offered = seen

    def result(self) -> list[SampledRecord[T]]:
        """The sample, sorted by ``(key, source, row)``.

        Returns:
            At most ``count`` records (fewer only if fewer were offered).
        """
        return [slot.item for slot in sorted(self._heap, key=lambda s: s.rank)]


def sample_shards(paths: list[str], fraction_or_count: float | int, seed: int) -> list[str]:
    """Cluster sampling: choose whole shards (files), deterministically.

    An ``int`` is a count: the ``count`` shards with the smallest keys (a simple
    random sample; inclusion probability ``count / len(paths)``). A ``float``
    is a fraction: each shard is kept independently with that probability
    (the number kept varies; it may be 0). Keys come from the path strings
    (hashed separately from record keys), so pass stable names.

    Args:
        paths: Shard names; duplicates are an error.
        fraction_or_count: ``int`` >= 0 (count) or ``float`` in [0, 1] (fraction).
        seed: Sampling seed in [0, 2**64).

    Returns:
        The chosen paths, sorted (independent of the input order).

    Raises:
        ValueError: On duplicate paths or an out-of-range count, fraction or seed.

    Example:
        >>> sample_shards(["a", "b", "c"], 3, seed=0)
        ['a', 'b', 'c']
    """
    _check_int("seed", seed)
    if isinstance(fraction_or_count, bool):
        raise ValueError(f"fraction_or_count must be an int count or a float fraction, got {fraction_or_count!r}")
    if not isinstance(fraction_or_count, numbers.Integral):
        _threshold(fraction_or_count)
    elif int(fraction_or_count) < 0:
        raise ValueError(f"shard count must be >= 0, got {fraction_or_count!r}")
    if len(set(paths)) != len(paths):
        dup = next(p for i, p in enumerate(paths) if p in paths[:i])
        raise ValueError(f"duplicate shard path {dup!r}")
    keyed = sorted((int.from_bytes(_prefix(seed, p, _SHARD_PERSON).digest(), "big"), p) for p in paths)
    if isinstance(fraction_or_count, numbers.Integral):
        chosen = [p for _, p in keyed[: int(fraction_or_count)]]
    else:
        limit = _threshold(fraction_or_count)
        chosen = [p for key, p in keyed if key < limit]
    return sorted(chosen)
