"""Long anchor keys (issue #11): their postings are searched, not expanded, and the dependent items' table.

Truth is brute force: an item is a candidate for a record when at least its threshold of its usable
anchors (its ``anchors`` smallest distinct shingle hashes whose key is shared by at most ``max_postings``
items) are among the record's shingles, counted with Python sets from the stored sequences.
"""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from conftest import long_postings, near_duplicates, write_jsonl
from provaudit import api
from provaudit.api_segments import add_to_index
from provaudit.config import AuditConfig, IndexConfig
from provaudit.index.check import NEVER, verify_index
from provaudit.index.format import Index, load_index
from provaudit.match import candidates
from provaudit.match.candidates import AnchorPlan, anchor_candidates
from provaudit.match.probability import anchor_threshold
from provaudit.text import kernels
from provaudit.text.shingle import shingle_batch

needs_kernels = pytest.mark.skipif(not kernels.ENABLED, reason="the compiled kernels are not built")


def _anchors(index: Index) -> list[list[int]]:
    """Per item (index numbering): its anchors, the smallest distinct hashes of its stored sequence."""
    out = []
    for seg in index.segments:
        for i in range(len(seg)):
            out.append(sorted(set(seg.sequence(i).tolist()))[: index.config.anchors])
    return out


def _truth(index: Index, config: AuditConfig, texts: list[str]) -> set[tuple[int, int]]:
    anchors = _anchors(index)
    plan = AnchorPlan(index, config)
    pairs = set()
    base = 0
    for seg in index.segments:  # usability is decided per segment, as each was built
        mine = anchors[base : base + len(seg)]
        occurs = Counter(k for a in mine for k in a)
        for i, a in enumerate(mine):
            usable = [k for k in a if occurs[k] <= config.max_postings]
            t = int(plan.threshold_of(np.array([base + i]))[0])
            for r, text in enumerate(texts):
                have = set(shingle_batch([text], index.config).hashes.tolist())
                if t > 0 and sum(k in have for k in usable) >= t:
                    pairs.add((r, base + i))
        base += len(seg)
    return pairs


def _found(index: Index, config: AuditConfig, texts: list[str]) -> set[tuple[int, int]]:
    recs, items = anchor_candidates(index, AnchorPlan(index, config), shingle_batch(texts, index.config))
    return set(zip(recs.tolist(), items.tolist()))


def _targets(refs: dict[str, str], seed: int, n: int = 40) -> list[str]:
    """Records that embed, edit or cut reference texts (often several of one near-duplicate family)."""
    rng = random.Random(seed)
    texts = list(refs.values())
    out = []
    for _ in range(n):
        words: list[str] = []
        for t in rng.sample(texts, rng.randint(1, 4)):
            w = t.split()
            cut = rng.randint(0, len(w) // 3)
            w = w[cut:]
            for _ in range(rng.randint(0, 3)):
                if w:
                    w[rng.randrange(len(w))] = "zz" + str(rng.randrange(99))
            words += w + ["filler"] * rng.randint(0, 5)
        out.append(" ".join(words))
    return out


@pytest.fixture(scope="module")
def families(corpus, tmp_path_factory) -> tuple[dict[str, str], Path]:
    d = tmp_path_factory.mktemp("long")
    refs = near_duplicates(corpus[0], copies=6, every=5)
    return refs, write_jsonl(d / "ref.jsonl", refs)


@needs_kernels
@pytest.mark.parametrize("long", [1, 2, 4, 5000])
@pytest.mark.parametrize("mapped", [False, True])
def test_long_keys_give_the_candidates_of_brute_force(families, tmp_path, monkeypatch, long, mapped) -> None:
    """Whatever keys are long, read with pread or through the map, the candidates are brute force's,
    for the default thresholds and for thresholds above, below and beside the stored plan's."""
    refs, src = families
    with long_postings(long):
        api.build_index([str(src)], tmp_path / "idx")
    index = load_index(tmp_path / "idx")
    if long < 5000:  # the near-duplicate families make dependent items and long keys
        assert len(index.segments[0].arrays["dep_keys.u64"]) > 0
    if mapped:
        monkeypatch.setattr(candidates, "SPARSE_MAX", 0)
    texts = _targets(refs, seed=long)
    for config in (AuditConfig(), AuditConfig(min_containment=0.8), AuditConfig(miss_rate=0.001),
                   AuditConfig(miss_rate=0.2), AuditConfig(max_postings=5)):
        plan = AnchorPlan(index, config)
        split = config.max_postings == 5000 and config.miss_rate >= 0.01 and long < 5000
        assert (plan.long_postings is not None) == split
        truth = _truth(index, config, texts)
        assert truth, config  # the targets do hit items
        assert _found(index, config, texts) == truth, config


@needs_kernels
def test_long_keys_in_a_two_segment_index_give_brute_force(families, tmp_path, monkeypatch) -> None:
    refs, _ = families
    keys = list(refs)
    a = write_jsonl(tmp_path / "a.jsonl", {k: refs[k] for k in keys[::2]})
    b = write_jsonl(tmp_path / "b.jsonl", {k: refs[k] for k in keys[1::2]})
    with long_postings(2):
        api.build_index([str(a)], tmp_path / "idx")
        add_to_index(tmp_path / "idx", [str(b)])
    index = load_index(tmp_path / "idx")
    assert len(index.segments) == 2 and all(len(s.arrays["dep_keys.u64"]) for s in index.segments)
    texts = _targets(refs, seed=11)
    assert _found(index, AuditConfig(), texts) == _truth(index, AuditConfig(), texts)
    monkeypatch.setattr(candidates, "SPARSE_MAX", 0)
    assert _found(index, AuditConfig(), texts) == _truth(index, AuditConfig(), texts)
    verify_index(tmp_path / "idx")


def test_stored_needs_and_dependent_table_match_brute_force(families, tmp_path) -> None:
    refs, src = families
    with long_postings(2):
        api.build_index([str(src)], tmp_path / "idx")
    index = load_index(tmp_path / "idx")
    seg = index.segments[0]
    anchors = _anchors(index)
    occurs = Counter(k for a in anchors for k in a)
    plan = index.anchor_plan
    want_need, want_rows = [], []
    for i, a in enumerate(anchors):
        usable = [k for k in a if occurs[k] <= plan["max_postings"]]
        long = [k for k in usable if occurs[k] > plan["long_postings"]]
        n = len(set(seg.sequence(i).tolist()))
        t = anchor_threshold(n, len(usable), plan["min_overlap"], plan["miss_rate"])[0]
        want_need.append(NEVER if t == 0 else max(t - len(long), 0))
        if t > 0 and len(long) >= t:
            want_rows += [(k, i) for k in long]
    assert np.asarray(seg.arrays["anchor_need.u8"]).tolist() == want_need
    assert 0 < len(want_rows) < len(seg.arrays["anchor_keys.u64"])
    got = list(zip(np.asarray(seg.arrays["dep_keys.u64"]).tolist(), np.asarray(seg.arrays["dep_items.u32"]).tolist()))
    assert got == sorted(want_rows)


@needs_kernels
def test_the_kernel_refuses_ranges_and_items_outside_their_tables() -> None:
    low = np.zeros(1 << 20, np.uint8)
    one = (np.array([0]), np.array([0]), np.array([2]))
    src = np.array([1, 3], np.uint32)
    r, it, c = kernels.anchor_counts(one, src, 4, 0, low, (1 << 20) - 1, 0)
    assert (r.tolist(), it.tolist(), c.tolist()) == ([0, 0], [1, 3], [1, 1])
    with pytest.raises(kernels.AnchorCountError, match="item"):
        kernels.anchor_counts(one, src, 3, 0, low, (1 << 20) - 1, 0)
    with pytest.raises(kernels.AnchorCountError, match="range"):
        kernels.anchor_counts((np.array([0]), np.array([1]), np.array([3])), src, 4, 0, low, (1 << 20) - 1, 0)
    long = (np.array([0]), np.array([0]), np.array([5]))
    with pytest.raises(kernels.AnchorCountError, match="range"):
        kernels.anchor_counts(one, src, 4, 0, low, (1 << 20) - 1, 0, long=long, need=np.zeros(4, np.uint8))
    dep = (np.array([0]), np.array([0]), np.array([1]))
    with pytest.raises(kernels.AnchorCountError, match="item"):
        kernels.anchor_counts(one, src, 4, 0, low, (1 << 20) - 1, 0, dep=dep, dep_src=np.array([9], np.uint32))


def _kernel_truth(short, src, dep, dep_src, long, need, t_cut, low, base):
    """``kernels.anchor_counts``'s contract, in Python: short and dependent postings counted, items met
    in short postings and not in dependent ones searched in the long postings once their count reaches
    their need."""
    out = []
    for r in sorted(set(short[0].tolist()) | set(dep[0].tolist())):
        count: Counter[int] = Counter()
        for rr, a, b in zip(*short):
            if rr == r:
                count.update(src[a:b].tolist())
        marked: Counter[int] = Counter()
        for rr, a, b in zip(*dep):
            if rr == r:
                marked.update(dep_src[a:b].tolist())
        for it in sorted(set(count) | set(marked)):
            c = count[it] + marked[it]
            if not marked[it] and c >= need[it]:
                c += sum(it in src[a:b].tolist() for rr, a, b in zip(*long) if rr == r)
            if c >= t_cut or low[(it + base) & ((1 << 20) - 1)]:
                out.append((r, it, c))
    return out


@needs_kernels
@pytest.mark.parametrize("seed", range(8))
def test_the_kernel_keeps_its_contract_on_random_hits(seed) -> None:
    rng = np.random.default_rng(seed)
    n = 40
    ranges = []  # postings: ascending distinct items per key
    src_parts, at = [], 0
    for _ in range(30):
        items = np.sort(rng.choice(n, size=int(rng.integers(1, 12)), replace=False)).astype(np.uint32)
        src_parts.append(items)
        ranges.append((at, at + len(items)))
        at += len(items)
    src = np.concatenate(src_parts)
    dep_src = rng.integers(0, n, 50).astype(np.uint32)

    def hits(k: int, pool: list[tuple[int, int]]) -> tuple[np.ndarray, ...]:
        rec = np.sort(rng.integers(0, 6, k))
        pick = [pool[int(i)] for i in rng.integers(0, len(pool), k)]
        return rec, np.array([a for a, _ in pick]), np.array([b for _, b in pick])

    short, long = hits(25, ranges[:20]), hits(15, ranges[20:])
    dep = hits(8, [(a, a + int(rng.integers(1, 4))) for a in range(0, 45, 5)])
    need = rng.integers(0, 4, n).astype(np.uint8)
    low = np.zeros(1 << 20, np.uint8)
    low[rng.integers(0, n, 3) + 7] = 1
    for t_cut in (0, 2, 3):
        got = kernels.anchor_counts(short, src, n, t_cut, low, (1 << 20) - 1, 7, dep=dep, dep_src=dep_src, long=long,
                                    need=need)
        want = _kernel_truth(short, src, dep, dep_src, long, need, t_cut, low, 7)
        assert list(zip(*(a.tolist() for a in got))) == want


@needs_kernels
@pytest.mark.parametrize("seed", range(4))
def test_lookups_find_runs_of_any_length_as_searchsorted(seed) -> None:
    """Keys shared by 1 to 5,000 items (a run per key): ``probe`` and ``probe_hits`` equal searchsorted."""
    from provaudit.index.keytable import build_directory, directory_bits

    rng = np.random.default_rng(seed)
    distinct = np.unique(rng.integers(0, 1 << 63, 400, dtype=np.int64).astype(np.uint64) * np.uint64(2))
    runs = rng.choice([1, 1, 2, 3, 7, 64, 129, 1000, 5000], len(distinct))
    keys = np.repeat(distinct, runs)
    directory = build_directory(keys)
    shift = 64 - directory_bits(len(keys))
    q = np.concatenate([distinct, distinct + np.uint64(1), rng.integers(0, 1 << 63, 200, dtype=np.int64).astype(np.uint64)])
    rng.shuffle(q)
    lo, hi = kernels.probe(keys, directory, shift, q)
    assert np.array_equal(lo, np.searchsorted(keys, q, "left")) and np.array_equal(hi, np.searchsorted(keys, q, "right"))
    qi, lo2, hi2 = kernels.probe_hits(keys, directory, shift, q)
    found = np.flatnonzero(hi > lo)
    assert np.array_equal(qi, found) and np.array_equal(lo2, lo[found]) and np.array_equal(hi2, hi[found])


@needs_kernels
def test_anchor_counts_in_c_equal_the_numpy_twin(families, tmp_path, monkeypatch) -> None:
    """``candidates.anchor_counts`` (every (record, item) pair and its count: what partitioned lookups sum)."""
    refs, src = families
    with long_postings(2):
        api.build_index([str(src)], tmp_path / "idx")
    seg = load_index(tmp_path / "idx").segments[0]
    sb = shingle_batch(_targets(refs, seed=5), seg.config)
    hit, lo, hi = seg.anchor_table.hits(sb.hashes)
    rec = np.searchsorted(sb.offsets, hit, side="right") - 1
    fast = candidates.anchor_counts(seg, rec, lo, hi)
    monkeypatch.setattr(kernels, "ENABLED", False)
    slow = candidates.anchor_counts(seg, rec, lo, hi)
    assert len(slow[0]) > 100 and all(np.array_equal(a, b) for a, b in zip(fast, slow))
