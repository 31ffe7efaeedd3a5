"""What each reference item needs for a positive regurgitation verdict, and the chance the search misses it.

The verdict rules themselves are ``config.VerdictRules`` (docs/outputs.md); this module turns
them into per-item thresholds (``min_overlaps``: the fewest shared shingles a positive verdict
needs) and the probability that the anchor search misses a pair right at them. An item's
thresholds depend only on its tokens, distinct shingles and usable anchors, so the audit's
summary (``search_containment``, ``requirements``) is computed over the index's histogram of
those (``token_shapes.i64``), not item by item: its cost follows the distinct shapes, not the
corpus; the matched items' thresholds are computed as they are met (``item_needs``).
"""

from __future__ import annotations

import numpy as np

from provaudit.config import AuditConfig, IndexConfig, VerdictRules
from provaudit.errors import ConfigError
from provaudit.index.check import token_shape_table
from provaudit.index.format import Index
from provaudit.match.candidates import AnchorPlan
from provaudit.match.probability import hypergeom_cdf
from provaudit.results import Requirements


def min_overlaps(n_tokens: np.ndarray, n_shingles: np.ndarray, ngram: int, rules: VerdictRules,
                 min_containment: float, min_item_shingles: int) -> np.ndarray:
    """The fewest distinct shared shingles any positive verdict needs, per item of these tokens and
    distinct shingles (0: never evidence).

    A verbatim span of L tokens is a run of L - w + 1 shingle positions; an item with P
    positions and D distinct shingles has at least L - w + 1 - (P - D) distinct ones in it.
    """
    n, d = np.asarray(n_tokens, dtype=np.int64), np.asarray(n_shingles, dtype=np.int64)
    w = np.minimum(ngram, n)
    dup = np.where(n >= ngram, n - ngram + 1, np.minimum(n, 1)) - d
    f = rules.min_span_tokens

    def lower(tokens: np.ndarray | int) -> np.ndarray:
        return np.asarray(np.maximum(1, tokens - w + 1 - dup))

    span = np.minimum(np.maximum(f, np.minimum(rules.min_verbatim_tokens, n)),
                      np.maximum(f, np.ceil(rules.min_span_share * n - 1e-9).astype(np.int64)))
    near = np.maximum(f - ngram + 1, np.ceil(min_containment * d - 1e-9).astype(np.int64))
    out = np.minimum(lower(span), near)
    evidence = (n >= f) & (d >= max(1, min_item_shingles))
    return np.where(evidence, out, 0).astype(np.int64)


def item_needs(index: Index, items: np.ndarray, n_tokens: np.ndarray, n_shingles: np.ndarray, rules: VerdictRules,
               min_containment: float, min_item_shingles: int) -> np.ndarray:
    """``min_overlaps`` of these items (their tokens and shingles as read); removed items: 0."""
    out = min_overlaps(n_tokens, n_shingles, index.config.ngram, rules, min_containment, min_item_shingles)
    out[index.is_removed(items)] = 0  # removed items are no longer part of the corpus
    return out


def _needs(rows: np.ndarray, index: Index, rules: VerdictRules, config: AuditConfig) -> np.ndarray:
    return min_overlaps(rows[:, 0], rows[:, 1], index.config.ngram, rules, config.min_containment,
                        config.min_item_shingles)


def search_containment(index: Index, rules: VerdictRules, config: AuditConfig) -> float:
    """The candidate search's containment threshold: the smallest ``min_overlap / shingles`` over the
    live items that can be evidence (at most ``config.min_containment``)."""
    rows = index.token_shapes
    need = _needs(rows, index, rules, config)
    ok = need > 0
    c = float((need[ok] / rows[ok, 1]).min()) if ok.any() else config.min_containment
    return max(min(c, config.min_containment) * (1 - 1e-9), 1e-9)


def requirements(index: Index, plan: AnchorPlan, rules: VerdictRules, config: AuditConfig,
                 searched: float) -> Requirements:
    """The outputs audit's summary over the live items: how many can be evidence, and the probability
    that the anchor search (``plan``, at ``searched``: ``search_containment``) misses a pair at their
    thresholds."""
    rows = index.token_shapes
    if plan.max_postings != index.max_postings:  # usable anchors recounted for this audit: item by item
        live = ~index.is_removed(np.arange(len(index)))
        rows = token_shape_table(index.n_tokens[live], index.n_shingles[live], plan.usable[live]).astype(np.int64)
    need = _needs(rows, index, rules, config)
    ok = need > 0
    d, u, count = rows[ok, 1], rows[ok, 2], rows[ok, 3]
    t = plan.thresholds_of_shapes(d, u)
    miss = miss_probabilities(d, need[ok], np.minimum(u, d), t)
    evidence = int(count.sum())
    return Requirements(
        searched, evidence,
        float(miss.max()) if evidence else None,
        float((miss * count).sum() / evidence) if evidence else None,
        int(count[miss > config.miss_rate].sum()), int(count[t <= 0].sum()))


def miss_probabilities(d: np.ndarray, need: np.ndarray, k: np.ndarray, t: np.ndarray) -> np.ndarray:
    """P(X < t), X ~ Hypergeometric(d, min(need, d), k): the anchor search, needing t of an item's k usable
    anchors, misses a pair sharing ``need`` of the item's d distinct shingles (1 when t is not in 1..k).

    Solved once per distinct (d, need, k, t).
    """
    d = np.asarray(d, dtype=np.int64)
    if not len(d):
        return np.zeros(0, np.float64)
    o, k, t = np.minimum(need, d), np.asarray(k, dtype=np.int64), np.asarray(t, dtype=np.int64)
    t = np.where((t > 0) & (t <= k), t, 0)  # outside 1..k the search cannot find the pair: coded as t = 0
    # rows compared whole, not coded into one integer: values read from an index can be as large as 2^32
    uniq, inverse = np.unique(np.stack([d, o, k, t], axis=1), axis=0, return_inverse=True)
    solved = [1.0 if tt == 0 else float(hypergeom_cdf(dd, oo, kk)[tt - 1]) for dd, oo, kk, tt in uniq.tolist()]
    out: np.ndarray = np.asarray(solved, dtype=np.float64)[inverse.reshape(-1)]
    return out


def check_index(icfg: IndexConfig, rules: VerdictRules) -> None:
    """Outputs audits need word shingles no longer than the shortest span the rules measure."""
    if icfg.unit != "word":
        raise ConfigError(f"outputs audits need a word-shingle index; this one has {icfg.unit} {icfg.ngram}-grams")
    if rules.min_span_tokens < icfg.ngram:
        raise ConfigError(f"min span tokens ({rules.min_span_tokens}) must be >= the index's n-gram size "
                          f"({icfg.ngram}): shorter spans are not measured")
