"""What each reference item needs for a positive regurgitation verdict, and the chance the search misses it.

The verdict rules themselves are ``config.VerdictRules`` (docs/outputs.md); this module turns
them into per-item candidate-search thresholds (``plan_requirements``) and the probability that
the anchor search misses a pair right at them (``miss_probabilities``).
"""

from __future__ import annotations

import numpy as np

from provaudit.config import AuditConfig, IndexConfig, VerdictRules
from provaudit.errors import ConfigError
from provaudit.index.format import Index
from provaudit.match.candidates import AnchorPlan
from provaudit.match.probability import hypergeom_cdf
from provaudit.results import Requirements


def requirements(index: Index, rules: VerdictRules, config: AuditConfig) -> np.ndarray:
    """``Requirements.min_overlap`` for every item of ``index``.

    A verbatim span of L tokens is a run of L - w + 1 shingle positions; an item with P
    positions and D distinct shingles has at least L - w + 1 - (P - D) distinct ones in it.
    """
    ng = index.config.ngram
    n, d = index.n_tokens.astype(np.int64), index.n_shingles.astype(np.int64)
    w = np.minimum(ng, n)
    dup = np.where(n >= ng, n - ng + 1, np.minimum(n, 1)) - d
    f = rules.min_span_tokens

    def lower(tokens: np.ndarray | int) -> np.ndarray:
        return np.asarray(np.maximum(1, tokens - w + 1 - dup))

    span = np.minimum(np.maximum(f, np.minimum(rules.min_verbatim_tokens, n)),
                      np.maximum(f, np.ceil(rules.min_span_share * n - 1e-9).astype(np.int64)))
    near = np.maximum(f - ng + 1, np.ceil(config.min_containment * d - 1e-9).astype(np.int64))
    out = np.minimum(lower(span), near)
    evidence = (n >= f) & (d >= max(1, config.min_item_shingles))
    evidence[index.removed] = False  # removed items are no longer part of the corpus
    return np.where(evidence, out, 0).astype(np.int64)


def plan_requirements(index: Index, rules: VerdictRules, config: AuditConfig) -> Requirements:
    need = requirements(index, rules, config)
    ok = need > 0
    d = index.n_shingles.astype(np.int64)
    c = float((need[ok] / d[ok]).min()) if ok.any() else config.min_containment
    return Requirements(need, max(min(c, config.min_containment) * (1 - 1e-9), 1e-9), np.full(len(index), np.nan))


def miss_probabilities(index: Index, plan: AnchorPlan, need: np.ndarray) -> np.ndarray:
    """P(X < t), X ~ Hypergeometric(D, need, k): the anchor search misses a pair at the rule threshold.

    Solved once per distinct (D, need, k, t), found with numpy over the items (a Python loop over
    the items took 12.6 s for 4M of them).
    """
    out = np.full(len(index), np.nan)
    items = np.flatnonzero(need > 0)
    if not len(items):
        return out
    d = index.n_shingles[items].astype(np.int64)
    o = np.minimum(need[items], d)
    k, t = np.minimum(plan.usable[items], d), plan.threshold[items].astype(np.int64)
    t = np.where((t > 0) & (t <= k), t, 0)  # outside 1..k the search cannot miss: coded as t = 0
    # (D, need) pairs numbered, then (pair, k, t) coded in one int64: k and t are at most 256 (anchors)
    pairs, pair_of = np.unique(d * (int(d.max()) + 1) + o, return_inverse=True)
    uniq, inverse = np.unique(pair_of.reshape(-1) * 66049 + k * 257 + t, return_inverse=True)
    top = int(d.max()) + 1
    solved = []
    for code in uniq.tolist():
        p, kk, tt = code // 66049, (code % 66049) // 257, code % 257
        dd, oo = int(pairs[p]) // top, int(pairs[p]) % top
        solved.append(1.0 if not 0 < tt <= kk else float(hypergeom_cdf(dd, oo, kk)[tt - 1]))
    out[items] = np.asarray(solved, dtype=np.float64)[inverse.reshape(-1)]
    return out


def check_index(icfg: IndexConfig, rules: VerdictRules) -> None:
    """Outputs audits need word shingles no longer than the shortest span the rules measure."""
    if icfg.unit != "word":
        raise ConfigError(f"outputs audits need a word-shingle index; this one has {icfg.unit} {icfg.ngram}-grams")
    if rules.min_span_tokens < icfg.ngram:
        raise ConfigError(f"min span tokens ({rules.min_span_tokens}) must be >= the index's n-gram size "
                          f"({icfg.ngram}): shorter spans are not measured")
