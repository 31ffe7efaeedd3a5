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
    """P(X < t), X ~ Hypergeometric(D, need, k): the anchor search misses a pair at the rule threshold."""
    out = np.full(len(index), np.nan)
    cache: dict[tuple[int, int, int, int], float] = {}
    for item in np.flatnonzero(need > 0).tolist():
        d, o = int(index.n_shingles[item]), int(need[item])
        k, t = min(int(plan.usable[item]), d), int(plan.threshold[item])
        key = (d, min(o, d), k, t)
        if key not in cache:
            cache[key] = 1.0 if not 0 < t <= k else float(hypergeom_cdf(d, key[1], k)[t - 1])
        out[item] = cache[key]
    return out


def check_index(icfg: IndexConfig, rules: VerdictRules) -> None:
    """Outputs audits need word shingles no longer than the shortest span the rules measure."""
    if icfg.unit != "word":
        raise ConfigError(f"outputs audits need a word-shingle index; this one has {icfg.unit} {icfg.ngram}-grams")
    if rules.min_span_tokens < icfg.ngram:
        raise ConfigError(f"min span tokens ({rules.min_span_tokens}) must be >= the index's n-gram size "
                          f"({icfg.ngram}): shorter spans are not measured")
