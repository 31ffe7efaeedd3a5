from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest

from conftest import brute_force_pairs, simple_tokens
from provaudit import api
from provaudit.config import AuditConfig
from provaudit.match.runs import covered_tokens, longest_common_run
from provaudit.match.probability import anchor_threshold as _threshold
from provaudit.match.probability import hypergeom_cdf
from provaudit.report.training import matches_table


def _audit_pairs(index, tgt, **kw):
    res = api.audit(index, [str(tgt)], AuditConfig(**kw))
    t = matches_table(res).to_pylist()
    return {(r["reference_id"], r["target_id"]): r for r in t}, res


@pytest.mark.parametrize("min_c,min_j", [(0.5, 0.5), (0.8, 0.9), (0.3, 0.6)])
def test_audit_equals_brute_force(corpus, corpus_index, min_c, min_j) -> None:
    refs, targets, _, tgt = corpus
    truth = brute_force_pairs(refs, targets, min_c, min_j)
    got, _ = _audit_pairs(corpus_index, tgt, min_containment=min_c, min_jaccard=min_j)
    assert len(truth) > 50
    # precision 1.0: every reported pair is a true pair with exactly the brute-force values
    for key, row in got.items():
        assert key in truth, key
        c, j = truth[key]
        assert row["containment"] == pytest.approx(c, abs=1e-12)
        assert row["jaccard"] == pytest.approx(j, abs=1e-12)
    recall = sum(k in got for k in truth) / len(truth)
    assert recall >= 0.99, recall


def test_verbatim_tokens_equal_brute_force(corpus, corpus_index) -> None:
    refs, targets, _, tgt = corpus
    got, _ = _audit_pairs(corpus_index, tgt)
    assert got
    for (rid, tid), row in got.items():
        a, b = simple_tokens(refs[rid]), simple_tokens(targets[tid])
        best = 0  # O(n*m) dynamic programming: longest common substring of tokens
        prev = [0] * (len(b) + 1)
        for x in a:
            cur = [0] * (len(b) + 1)
            for j, y in enumerate(b):
                if x == y:
                    cur[j + 1] = prev[j] + 1
                    best = max(best, cur[j + 1])
            prev = cur
        expected = best if best >= min(3, len(a)) else 0  # runs shorter than one shingle are not seen
        assert row["verbatim_tokens"] == expected, (rid, tid)


def test_estimated_jaccard_is_sketch_estimate(corpus, corpus_index) -> None:
    got, _ = _audit_pairs(corpus_index, corpus[3])
    exact = np.array([r["jaccard"] for r in got.values()])
    est = np.array([r["estimated_jaccard"] for r in got.values()])
    assert np.abs(exact - est).mean() < 0.05  # 128 permutations: standard error <= 0.045


def test_hypergeom_cdf_matches_brute_force() -> None:
    from math import comb

    for pop, succ, draws in [(30, 15, 16), (20, 10, 20), (100, 37, 16), (5, 0, 3)]:
        cdf = hypergeom_cdf(pop, succ, draws)
        acc = 0.0
        for x in range(draws + 1):
            acc += comb(succ, x) * comb(pop - succ, draws - x) / comb(pop, draws)
            assert cdf[x] == pytest.approx(acc, abs=1e-12)


def test_anchor_threshold_is_exact_for_small_items_and_bounded_for_large() -> None:
    assert _threshold(8, 8, 0.5, 0.01) == (4, 0.0)  # all shingles are anchors: no miss possible
    t, miss = _threshold(200, 16, 0.5, 0.01)
    assert miss <= 0.01 and hypergeom_cdf(200, 100, 16)[t] > 0.01  # t is the largest admissible


def test_longest_common_run_and_coverage() -> None:
    assert longest_common_run(np.array([1, 2, 3, 9]), np.array([0, 1, 2, 3, 4])) == 3
    assert longest_common_run(np.array([5, 5, 5]), np.array([5, 5])) == 2
    assert longest_common_run(np.array([], np.uint64), np.array([1])) == 0
    seq = np.array([10, 11, 12, 13], np.uint64)  # 6 tokens, trigrams
    assert covered_tokens(seq, np.array([11], np.uint64), 6, 3) == 3
    assert covered_tokens(seq, np.array([10, 13], np.uint64), 6, 3) == 6


def test_matches_parquet_schema(corpus, corpus_index, tmp_path) -> None:
    res = api.audit(corpus_index, [str(corpus[3])])
    from provaudit.api import write_audit

    write_audit(res, tmp_path / "out")
    schema = pq.read_schema(tmp_path / "out" / "matches.parquet")
    for name, typ in [("reference_id", "string"), ("target_id", "string"), ("target_source", "string"),
                      ("target_row", "int64"), ("jaccard", "double"), ("containment", "double"),
                      ("estimated_jaccard", "double"), ("verbatim_tokens", "int64")]:
        assert str(schema.field(name).type) == typ


@pytest.mark.parametrize("min_c,miss_rate", [(0.5, 0.01), (0.3, 0.05), (0.8, 0.001)])
def test_pairs_under_t_cut_are_dropped_only_when_no_item_could_take_them(corpus, corpus_index, min_c,
                                                                         miss_rate) -> None:
    """anchor_candidates drops (record, item) pairs with fewer than t_cut anchor hits unless the item is
    in low_items; the candidates are exactly those of the per-item thresholds applied to every pair."""
    from provaudit.index.check import LOW_SHAPE
    from provaudit.index.format import load_index
    from provaudit.match.candidates import AnchorPlan, anchor_candidates
    from provaudit.text.shingle import shingle_batch

    refs, targets, _, _ = corpus
    idx = load_index(corpus_index)
    cfg = AuditConfig(min_containment=min_c, min_jaccard=min_c, miss_rate=miss_rate)
    pruned, full = AnchorPlan(idx, cfg), AnchorPlan(idx, cfg)
    full.__dict__["t_cut"] = 1  # the cached property, overridden: every pair goes through threshold_of
    assert pruned.t_cut > 1 and len(idx.low_items) > 0
    # low_items holds exactly the items with a small shape (independently recomputed here)
    n_sh, usable = idx.n_shingles, idx.usable
    assert idx.low_items.tolist() == [i for i in range(len(idx)) if min(n_sh[i], usable[i]) < LOW_SHAPE]
    # ... and every item outside it needs at least t_cut hits
    t = full.threshold_of(np.arange(len(idx)))
    outside = np.setdiff1d(np.arange(len(idx)), idx.low_items)
    assert ((t[outside] == 0) | (t[outside] >= pruned.t_cut)).all()
    texts = list(targets.values()) + [" ".join(r.split()[:3]) + " x y z " + r for r in refs.values()]
    low_hits = 0
    for i in range(0, len(texts), 40):
        sb = shingle_batch(texts[i:i + 40], idx.config)
        a, b = anchor_candidates(idx, pruned, sb), anchor_candidates(idx, full, sb)
        assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
        low_hits += int(np.isin(a[1], idx.low_items).sum())
    assert low_hits > 0  # the low-item route was exercised


def test_anchor_candidates_in_steps_of_postings_equal_one_step(corpus, corpus_index) -> None:
    """Postings expanded a few records at a time (memory bounded) give the same candidates, in the same order."""
    from provaudit.index.format import load_index
    from provaudit.match.candidates import AnchorPlan, anchor_candidates
    from provaudit.text.shingle import shingle_batch

    refs, targets, _, _ = corpus
    idx = load_index(corpus_index)
    plan = AnchorPlan(idx, AuditConfig())
    sb = shingle_batch(list(targets.values())[:80], idx.config)
    whole = anchor_candidates(idx, plan, sb, step=1 << 40)
    assert len(whole[0]) > 20 and len(set(whole[0].tolist())) > 10
    for step in (1, 7, 300, 5000):
        parts = anchor_candidates(idx, plan, sb, step=step)
        assert np.array_equal(parts[0], whole[0]) and np.array_equal(parts[1], whole[1]), step
