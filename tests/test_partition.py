"""Key-range partitions (issue #11 item 4): every key goes to exactly one partition, a partition is one
row range of each sorted anchor table, and partial anchor counts summed over the partitions are the
counts (and so the candidates) of one lookup over all keys. Pure: no Ray (tests/test_ray_partitions.py
runs the range actors)."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import write_jsonl
from provaudit import api
from provaudit.api_segments import add_to_index
from provaudit.config import AuditConfig
from provaudit.errors import ConfigError
from provaudit.index import partition
from provaudit.index.format import load_index
from provaudit.match.candidates import AnchorPlan, anchor_candidates, anchor_counts
from provaudit.match.partitioned import (
    LocalRanges, PartitionedAnchors, pack, range_counts, segment_counts, sum_counts, unpack,
)
from provaudit.run.engines import RunEngine
from provaudit.text.shingle import shingle_batch


def _bounds(kind: str, parts: int, rng: np.random.Generator) -> list[int]:
    """Even key ranges, or random ordered boundaries (repeats included: empty partitions)."""
    if kind == "even":
        return partition.even_boundaries(parts)
    inner = sorted(int(k) for k in rng.integers(0, 1 << 64, parts - 1, dtype=np.uint64))
    if parts > 2:
        inner[1] = inner[0]
    return [0, *inner, 1 << 64]


def _edge_keys(rng: np.random.Generator, bounds: list[int]) -> list[int]:
    """Random keys plus each boundary, its neighbours and the ends of the key space."""
    keys = [int(k) for k in rng.integers(0, 1 << 64, 500, dtype=np.uint64)]
    for b in bounds[:-1]:
        keys += [b, b + 1, max(b - 1, 0)]
    return keys + [0, (1 << 64) - 1]


@pytest.mark.parametrize("kind", ["even", "random"])
@pytest.mark.parametrize("parts", [1, 2, 3, 5, 7, 64, 1000])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_every_key_goes_to_exactly_the_partition_owning_it(kind, parts, seed) -> None:
    rng = np.random.default_rng(seed)
    b = _bounds(kind, parts, rng)
    partition.check_boundaries(b)
    keys = _edge_keys(rng, b)
    lists = partition.split(np.array(keys, np.uint64), b)
    assert len(lists) == parts
    seen = np.concatenate(lists)
    assert sorted(seen.tolist()) == list(range(len(keys)))  # each position exactly once
    for p, pos in enumerate(lists):
        assert pos.tolist() == sorted(pos.tolist())  # the batch's order kept
        for k in (keys[i] for i in pos.tolist()):  # brute force, in Python integers
            assert b[p] <= k < b[p + 1]
            if kind == "even":
                assert (p << 64) // parts <= k < ((p + 1) << 64) // parts


def test_partitions_and_boundaries_out_of_range_are_refused() -> None:
    for bad in (0, -1, partition.MAX_PARTITIONS + 1):
        with pytest.raises(ConfigError, match="--partitions must be between 1 and"):
            partition.even_boundaries(bad)
    for bounds in ([0], [1, 1 << 64], [0, 1 << 63], [0, 5, 4, 1 << 64]):
        with pytest.raises(ConfigError, match="partition boundaries"):
            partition.check_boundaries(bounds)
    with pytest.raises(ConfigError, match="--partitions needs --engine ray"):
        RunEngine("local", partitions=2)


@pytest.fixture(scope="module")
def two_segments(corpus, tmp_path_factory):
    """The test corpus as an index of two segments (build, then add)."""
    refs, _, _, _ = corpus
    d = tmp_path_factory.mktemp("partition")
    keys = list(refs)
    a = write_jsonl(d / "a.jsonl", {k: refs[k] for k in keys[: len(keys) // 2]})
    b = write_jsonl(d / "b.jsonl", {k: refs[k] for k in keys[len(keys) // 2 :]})
    api.build_index([str(a)], d / "two.idx")
    add_to_index(d / "two.idx", [str(b)])
    return d / "two.idx"


@pytest.mark.parametrize("parts", [1, 2, 3, 8])
def test_a_partition_is_one_row_range_of_each_anchor_table(corpus_index, two_segments, parts) -> None:
    for path in (corpus_index, two_segments):
        segs = load_index(path).segments
        tables = [seg.anchor_table for seg in segs]
        for b in (partition.even_boundaries(parts), partition.balanced_boundaries(tables, parts),
                  partition.balanced_boundaries(tables, parts, samples=16)):
            for t in tables:
                keys = [int(k) for k in t.keys]
                ranges = [partition.row_range(t, b[p], b[p + 1]) for p in range(parts)]
                assert ranges[0][0] == 0 and ranges[-1][1] == len(t)
                assert all(ranges[p][1] == ranges[p + 1][0] for p in range(parts - 1))  # they tile the table
                for p, (lo, hi) in enumerate(ranges):
                    assert [k for k in keys if b[p] <= k < b[p + 1]] == keys[lo:hi]


@pytest.mark.parametrize("parts", [2, 3, 8])
def test_balanced_boundaries_give_each_partition_its_share_of_the_rows(corpus_index, parts) -> None:
    t = load_index(corpus_index).segments[0].anchor_table
    keys = t.keys.astype(np.uint64)
    assert len(keys) <= partition.SAMPLES  # every row sampled: exact quantiles, up to runs of one key
    run = int(np.unique(keys, return_counts=True)[1].max())
    b = partition.balanced_boundaries([t], parts)
    sizes = [hi - lo for lo, hi in (partition.row_range(t, b[p], b[p + 1]) for p in range(parts))]
    assert all(abs(n - len(keys) / parts) <= run + 1 for n in sizes), sizes
    even = partition.even_boundaries(parts)  # anchors are the smallest hashes of their items: crowded at 0
    first = partition.row_range(t, even[0], even[1])
    assert first[1] - first[0] > 1.5 * len(keys) / parts


def _random_hits(seg, rng: np.random.Generator, records: int) -> tuple[np.ndarray, np.ndarray]:
    """Random queries of ``records`` records: the segment's anchor keys (repeats included) and absent keys."""
    keys = seg.anchor_table.keys
    n = int(rng.integers(50, 400))
    q = np.concatenate([keys[rng.integers(0, len(keys), n)], rng.integers(0, 1 << 64, n // 4, dtype=np.uint64)])
    rng.shuffle(q)
    recs = np.sort(rng.integers(0, records, len(q))).astype(np.int32)
    return q, recs


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_partial_counts_summed_over_the_partitions_equal_the_counts_of_one_lookup(corpus_index, seed) -> None:
    rng = np.random.default_rng(seed)
    index = load_index(corpus_index)
    seg = index.segments[0]
    q, recs = _random_hits(seg, rng, 40)
    max_postings = int(rng.integers(1, 4))  # some keys skipped, as over max_postings
    hit, lo, hi = seg.anchor_table.hits(q)
    live = (hi - lo) <= max_postings
    assert 0 < live.sum() < len(live) or max_postings > 1
    whole_code, whole_count = anchor_counts(seg, recs[hit[live]].astype(np.int64), lo[live], hi[live])
    assert len(whole_code) > 20
    for parts in (1, 2, 3, 5):
        codes, counts, lookups = [], [], 0
        bounds = partition.even_boundaries(parts) if seed % 2 else partition.balanced_boundaries(
            [seg.anchor_table], parts)
        for pos in partition.split(q, bounds):
            partial, n = range_counts(index, max_postings, q[pos], recs[pos], step=int(rng.integers(1, 50)))
            codes.append(partial[0][0])
            counts.append(partial[0][1])
            lookups += n
        code, count = sum_counts(codes, counts)
        assert code.tolist() == whole_code.tolist() and count.tolist() == whole_count.tolist()
        assert lookups == len(q)  # each query looked up once, whatever the partitions
    one = segment_counts(seg, max_postings, q, recs, step=7)  # a few records at a time: the same counts
    assert one[0].tolist() == whole_code.tolist() and one[1].tolist() == whole_count.tolist()


@pytest.mark.parametrize("parts", [1, 2, 3, 7])
def test_partitioned_anchor_candidates_equal_the_unpartitioned_ones(corpus, corpus_index, two_segments,
                                                                    parts) -> None:
    texts = list(corpus[1].values())
    for path in (corpus_index, two_segments):
        index = load_index(path)
        for cfg in (AuditConfig(), AuditConfig(min_containment=0.2, max_postings=3)):
            plan = AnchorPlan(index, cfg)
            for start in range(0, len(texts), 70):
                sb = shingle_batch(texts[start : start + 70], index.config)
                want = anchor_candidates(index, plan, sb)
                tables = [seg.anchor_table for seg in index.segments]
                for b in (partition.even_boundaries(parts), partition.balanced_boundaries(tables, parts)):
                    got = PartitionedAnchors(b, LocalRanges(index, plan.max_postings, step=64))(index, plan, sb)
                    assert got[0].tolist() == want[0].tolist() and got[1].tolist() == want[1].tolist()
                assert len(want[0]) > 0
    assert len(load_index(two_segments).segments) == 2


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_partial_counts_are_shipped_in_5_bytes_a_pair_and_unpacked_exactly(seed) -> None:
    rng = np.random.default_rng(seed)
    n_items = [0, 7, 1 << 20, 3]
    partial = []
    for n in n_items:
        codes = np.unique(rng.integers(0, max(n, 1) * 3000, 0 if n == 0 else 5000)).astype(np.int64)
        partial.append((codes, rng.integers(1, 257, len(codes)).astype(np.uint16)))
    packed = pack(partial, n_items)
    assert [(len(p[1]), len(p[2])) for p in packed] == [(len(c), len(c)) for c, _ in partial]
    assert all(p[1].dtype == np.uint32 and p[2].dtype == np.uint8 for p in packed)
    back = unpack(packed, n_items)
    assert [(c.tolist(), k.tolist()) for c, k in back] == [(c.tolist(), k.tolist()) for c, k in partial]
    # a corrupt index can give a pair more anchors than an item may have: counts are never wrapped
    big = [(np.array([5, 9], np.int64), np.array([300, 70000], np.int64))]
    assert [k.tolist() for _, k in unpack(pack(big, [4]), [4])] == [[300, 70000]]


def test_cli_partitions_needs_the_ray_engine_and_is_left_out_of_the_recorded_command(corpus_index, corpus,
                                                                                        tmp_path) -> None:
    from click.testing import CliRunner

    from provaudit.cli import cli
    from provaudit.report.bundle import recorded_argv

    tgt = str(corpus[3])
    for cmd in (["audit", str(corpus_index), tgt, "-o", str(tmp_path / "out")], ["check", str(corpus_index), tgt]):
        r = CliRunner().invoke(cli, [*cmd, "--partitions", "2"])
        assert r.exit_code == 2 and "--partitions needs --engine ray" in r.output, r.output
        r = CliRunner().invoke(cli, [*cmd, "--engine", "ray", "--partitions", "0"])
        assert r.exit_code == 2 and "'--partitions'" in r.output and "0 is not in the range" in r.output, r.output
    assert not (tmp_path / "out").exists()
    base = ["audit", "i.idx", "d/", "-o", "out"]
    for extra in (["--partitions", "3"], ["--partitions=3"]):
        assert recorded_argv([*base, "--engine", "ray", *extra]) == ["audit", "i.idx", "d/", "-o", "OUT"]
