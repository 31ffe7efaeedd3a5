"""Tests for provaudit.estimate.sampling: stable keys, determinism, order independence, accuracy."""

from __future__ import annotations

import hashlib
import math
import random

import numpy as np
import pytest

from provaudit.estimate.sampling import (
    BernoulliSampler, BottomKSampler, SampledRecord, record_key, record_keys, sample_shards,
)

SOURCES = [f"shard-{i:03d}.jsonl" for i in range(10)]


def _records(rows_per_source: int = 1000) -> list[tuple[str, int]]:
    return [(src, row) for src in SOURCES for row in range(rows_per_source)]


# --- record_key ----------------------------------------------------------------------


def test_record_key_is_pinned() -> None:
    """The key encoding is part of the reproducibility contract: changing it changes every sample."""
    assert record_key(0, "shard-000.jsonl", 0) == 6879932088858239755
    assert record_key(42, "data/train-00001.parquet", 123456) == 14131981165788090868
    h = hashlib.blake2b(digest_size=8, person=b"provaudit-rec-v1")
    name = "data/train-00001.parquet".encode()
    for part in ((42).to_bytes(8, "little"), len(name).to_bytes(8, "little"), name,
                 (123456).to_bytes(8, "little")):
        h.update(part)
    assert int.from_bytes(h.digest(), "big") == 14131981165788090868


def test_record_key_depends_on_every_input() -> None:
    base = record_key(1, "a", 5)
    assert 0 <= base < 2**64
    assert len({base, record_key(2, "a", 5), record_key(1, "b", 5), record_key(1, "a", 6)}) == 4
    # Length prefix: ("ab", row) and ("a", row') never share an encoding.
    assert record_key(1, "ab", 0) != record_key(1, "a", int.from_bytes(b"b", "little"))
    assert record_key(1, "é", 0) == record_key(1, "é", 0)


def test_record_keys_vectorized_matches_scalar() -> None:
    rows = np.array([0, 1, 7, 2**40, 2**63 - 1], dtype=np.int64)
    keys = record_keys(9, "x.parquet", rows)
    assert keys.dtype == np.uint64
    assert [int(k) for k in keys] == [record_key(9, "x.parquet", int(r)) for r in rows]
    assert record_keys(9, "x", np.array([], dtype=np.int64)).size == 0


@pytest.mark.parametrize(("args", "needle"), [
    ((-1, "a", 0), "seed"), ((2**64, "a", 0), "seed"), ((1, "a", -1), "row"),
    ((1, "a", 1.0), "row"), ((True, "a", 0), "seed"), ((1, b"a", 0), "source"),
])
def test_record_key_rejects_bad_arguments(args: tuple[object, object, object], needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        record_key(*args)  # type: ignore[arg-type]


def test_record_keys_rejects_bad_rows() -> None:
    with pytest.raises(ValueError, match="row"):
        record_keys(1, "a", np.array([1, -2]))
    with pytest.raises(ValueError, match="integer"):
        record_keys(1, "a", np.array([1.5]))


# --- BernoulliSampler ----------------------------------------------------------------


def _bernoulli_sample(sampler: BernoulliSampler, records: list[tuple[str, int]]) -> set[tuple[str, int]]:
    return {rec for rec in records if sampler.keep(*rec)}


def test_bernoulli_same_seed_same_sample_different_seed_different() -> None:
    records = _records(300)
    a = _bernoulli_sample(BernoulliSampler(0.1, seed=5), records)
    b = _bernoulli_sample(BernoulliSampler(0.1, seed=5), records)
    c = _bernoulli_sample(BernoulliSampler(0.1, seed=6), records)
    assert a == b and a != c and a


def test_bernoulli_independent_of_processing_order_and_workers() -> None:
    records = _records(300)
    sampler = BernoulliSampler(0.2, seed=11)
    expected = _bernoulli_sample(sampler, records)
    shuffled = records[:]
    random.Random(3).shuffle(shuffled)
    assert {rec for rec in shuffled if sampler.keep(*rec)} == expected
    # "Workers": each handles some shards with its own sampler instance, in any order.
    per_worker: set[tuple[str, int]] = set()
    for worker_sources in (SOURCES[7:], SOURCES[:3], SOURCES[3:7]):
        worker = BernoulliSampler(0.2, seed=11)
        for src in reversed(worker_sources):
            mask = worker.keep_rows(src, np.arange(300))
            per_worker |= {(src, int(r)) for r in np.flatnonzero(mask)}
    assert per_worker == expected


def test_bernoulli_keep_rows_matches_keep() -> None:
    sampler = BernoulliSampler(0.37, seed=2)
    rows = np.arange(2000)
    mask = sampler.keep_rows("s", rows)
    assert mask.dtype == np.bool_
    assert mask.tolist() == [sampler.keep("s", int(r)) for r in rows]


def test_bernoulli_fraction_accuracy_100k() -> None:
    sampler, n = BernoulliSampler(0.1, seed=123), 100_000
    kept = sum(int(sampler.keep_rows(src, np.arange(n // 10)).sum()) for src in SOURCES)
    sigma = math.sqrt(n * 0.1 * 0.9)
    assert abs(kept - 0.1 * n) <= 4 * sigma, kept
    assert sampler.inclusion_probability == 0.1


def test_bernoulli_edges_and_nesting() -> None:
    rows = np.arange(500)
    assert not BernoulliSampler(0.0, seed=1).keep_rows("s", rows).any()
    assert BernoulliSampler(1.0, seed=1).keep_rows("s", rows).all()
    assert BernoulliSampler(1, seed=1).keep("s", 0)
    small = BernoulliSampler(0.05, seed=4).keep_rows("s", rows)
    large = BernoulliSampler(0.5, seed=4).keep_rows("s", rows)
    assert not (small & ~large).any()  # smaller fraction is a subset (same seed)


@pytest.mark.parametrize("fraction", [-0.1, 1.01, math.nan, True])
def test_bernoulli_rejects_bad_fraction(fraction: float) -> None:
    with pytest.raises(ValueError, match="fraction"):
        BernoulliSampler(fraction, seed=0)


# --- BottomKSampler ------------------------------------------------------------------


def _bottom_k(records: list[tuple[str, int]], count: int, seed: int) -> BottomKSampler[str]:
    sampler: BottomKSampler[str] = BottomKSampler(count, seed)
    for src, row in records:
        sampler.offer(src, row, f"{src}:{row}")
    return sampler


def test_bottom_k_equals_brute_force_sort() -> None:
    records = _records(500)
    sampler = _bottom_k(records, 250, seed=77)
    got = sampler.result()
    brute = sorted((record_key(77, src, row), src, row) for src, row in records)[:250]
    assert len(got) == 250
    assert [(r.key, r.source, r.row) for r in got] == brute
    assert all(r.payload == f"{r.source}:{r.row}" for r in got)
    assert sampler.offered == len(records)
    assert sampler.inclusion_probability == pytest.approx(250 / len(records))


def test_bottom_k_independent_of_order_and_workers() -> None:
    records = _records(200)
    expected = _bottom_k(records, 100, seed=8).result()
    shuffled = records[:]
    random.Random(9).shuffle(shuffled)
    assert _bottom_k(shuffled, 100, seed=8).result() == expected
    workers = [_bottom_k(shuffled[i::3], 100, seed=8) for i in range(3)]
    merged = workers[2]
    merged.merge(workers[0])
    merged.merge(workers[1])
    assert merged.result() == expected and merged.offered == len(records)


def test_bottom_k_determinism_and_seed() -> None:
    records = _records(100)
    a, b = _bottom_k(records, 50, seed=1).result(), _bottom_k(records, 50, seed=1).result()
    c = _bottom_k(records, 50, seed=2).result()
    assert a == b and a != c


def test_bottom_k_fewer_records_than_count_and_repeats() -> None:
    sampler: BottomKSampler[int] = BottomKSampler(10, seed=0)
    for row in range(4):
        assert sampler.offer("s", row, row)
    assert sampler.offer("s", 2, 99)  # a repeat of a held record is ignored
    result = sampler.result()
    assert len(result) == 4 and sampler.offered == 4 and sampler.inclusion_probability == 1.0
    assert isinstance(result[0], SampledRecord) and sorted(r.payload for r in result) == [0, 1, 2, 3]
    assert [r.key for r in result] == sorted(r.key for r in result)


def test_bottom_k_bounded_memory_and_offer_return() -> None:
    sampler: BottomKSampler[None] = BottomKSampler(5, seed=3)
    admitted = [sampler.offer("s", row, None) for row in range(1000)]
    assert len(sampler._heap) == 5 and len(sampler._members) == 5
    assert sum(admitted) < 100  # late records rarely beat the running threshold


def test_bottom_k_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="count"):
        BottomKSampler(0, seed=1)
    with pytest.raises(ValueError, match="seed"):
        BottomKSampler(3, seed=-5)
    with pytest.raises(ValueError, match="different count/seed"):
        BottomKSampler[int](3, seed=1).merge(BottomKSampler[int](3, seed=2))


# --- sample_shards -------------------------------------------------------------------


def test_sample_shards_count_is_deterministic_and_order_free() -> None:
    paths = [f"data/part-{i:05d}.parquet" for i in range(100)]
    chosen = sample_shards(paths, 10, seed=4)
    assert len(chosen) == 10 and chosen == sorted(chosen) and set(chosen) <= set(paths)
    assert sample_shards(list(reversed(paths)), 10, seed=4) == chosen
    assert sample_shards(paths, 10, seed=5) != chosen
    assert set(sample_shards(paths, 5, seed=4)) <= set(chosen)  # nested counts
    assert sample_shards(paths, 1000, seed=4) == sorted(paths)
    assert sample_shards(paths, 0, seed=4) == []


def test_sample_shards_fraction() -> None:
    paths = [f"s{i}" for i in range(2000)]
    chosen = sample_shards(paths, 0.25, seed=1)
    assert abs(len(chosen) - 500) <= 4 * math.sqrt(2000 * 0.25 * 0.75)
    assert sample_shards(paths[::-1], 0.25, seed=1) == chosen
    assert sample_shards(paths, 1.0, seed=1) == sorted(paths)
    assert sample_shards(paths, 0.0, seed=1) == []
    assert sample_shards([], 0.5, seed=1) == []


@pytest.mark.parametrize(("paths", "arg", "needle"), [
    (["a", "b", "a"], 1, "duplicate shard path 'a'"),
    (["a"], -1, "count"),
    (["a"], 1.5, "fraction"),
    (["a"], True, "fraction_or_count"),
])
def test_sample_shards_rejects_bad_arguments(paths: list[str], arg: float, needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        sample_shards(paths, arg, seed=0)
