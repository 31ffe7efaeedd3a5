"""The ``estimates`` section of a report: overlap shares with intervals (pure, no I/O).

Which estimator is used depends on how targets were read (see docs/statistics.md):

* full scan: exact values, zero-width intervals (apart from candidate-search misses,
  reported separately under ``candidate_miss``);
* record sampling (``--sample``): Wilson intervals with the finite population
  correction for record shares, a linearization ratio interval for token shares;
* shard sampling (``--sample-shards``): every figure as a ratio with a
  cluster-robust interval, shards as clusters.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

import numpy as np

from provaudit.estimate.stats import Estimate, difference, proportion, ratio


class Tally(Protocol):
    """What the estimates need of each input read (``results.SourceResult`` is one)."""

    source: str
    population_rows: int  # rows of the input (read + sampled out), the fpc population
    records: int
    tokens: int
    covered_tokens: int
    rows: list[np.ndarray]  # per record, when only a sample was read: row, tokens, covered tokens
    rec_tokens: list[np.ndarray]
    rec_covered: list[np.ndarray]


def _lower_bound(x: int, n: int, confidence: float, why: str) -> Estimate:
    v = x / n if n else float("nan")
    return Estimate(v, v if n else 0.0, 1.0, confidence, f"observed lower bound ({why})", n)


def _cat(xs: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(xs) if xs else np.zeros(0, np.int64)


def _arrays(t: Tally) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return _cat(t.rows), _cat(t.rec_tokens), _cat(t.rec_covered)


def _figures(tallies: Sequence[Tally], flagged_rows: dict[str, dict[str, set[int]]], mode: str,
             confidence: float) -> dict[str, dict[str, Any]]:
    """target_contamination (overall and per kind) and target_token_share over ``tallies``."""
    n = sum(t.records for t in tallies)
    out: dict[str, dict[str, Any]] = {}
    kinds = ("any", "near_duplicate", "contained")
    if mode == "full":
        for kind in kinds:
            x = sum(len(flagged_rows[kind].get(t.source, ())) for t in tallies)
            out[kind] = proportion(x, n, confidence=confidence, population=n).to_dict()
        cov, tok = sum(t.covered_tokens for t in tallies), sum(t.tokens for t in tallies)
        v = cov / tok if tok else float("nan")
        out["tokens"] = Estimate(v, v, v, confidence, "exact (full scan)" if tok else "no tokens", n).to_dict()
        return out
    rows, toks, covs, clusters = [], [], [], []
    for ci, t in enumerate(tallies):
        r, tk, cv = _arrays(t)
        rows.append((t.source, r))
        toks.append(tk)
        covs.append(cv)
        clusters.append(np.full(len(r), ci))
    tok_all = np.concatenate(toks) if toks else np.zeros(0)
    cov_all = np.concatenate(covs) if covs else np.zeros(0)
    cl_all = np.concatenate(clusters) if clusters else np.zeros(0)
    population = sum(t.population_rows for t in tallies)
    for kind in kinds:
        flags = np.concatenate([np.isin(r, list(flagged_rows[kind].get(src, ()))) for src, r in rows]) if rows \
            else np.zeros(0, bool)
        if mode == "records":
            out[kind] = proportion(int(flags.sum()), n, confidence=confidence, population=max(population, n)).to_dict()
        else:
            out[kind] = ratio(flags.astype(float), np.ones(len(flags)), clusters=cl_all, confidence=confidence).to_dict()
    if len(tok_all) and tok_all.sum() > 0:
        if mode == "records":
            out["tokens"] = ratio(cov_all, tok_all, confidence=confidence, population=max(population, n)).to_dict()
        else:
            out["tokens"] = ratio(cov_all, tok_all, clusters=cl_all, confidence=confidence).to_dict()
    else:
        out["tokens"] = Estimate(float("nan"), 0.0, 1.0, confidence, "no tokens", 0).to_dict()
    return out


class PairTally:
    """What the estimates need of the headline (unflagged) pairs, added one pair at a time: the
    target rows with evidence per source and kind, the items found, and the candidate-miss sums.
    Its memory follows records and items with evidence, not pairs.
    """

    def __init__(self, min_jaccard: float):
        self.min_jaccard = min_jaccard
        self.flagged: dict[str, dict[str, set[int]]] = {k: defaultdict(set)
                                                        for k in ("any", "near_duplicate", "contained")}
        self.found: set[str] = set()
        self.pairs = 0
        self._missed: list[float] = []  # partial sums of (1 - p) / p, exact (math.fsum's method)
        self.not_found: dict[str, float] = {}  # per item: prod(1 - p) over its pairs, in pair order

    def add(self, reference_id: str, source: str, row: int, jaccard: float, probability: float) -> None:
        kind = "near_duplicate" if jaccard >= self.min_jaccard else "contained"
        self.flagged["any"][source].add(row)
        self.flagged[kind][source].add(row)
        self.found.add(reference_id)
        self.pairs += 1
        p = min(max(float(probability), 1e-12), 1.0)
        _exact_add(self._missed, (1.0 - p) / p)
        self.not_found[reference_id] = self.not_found.get(reference_id, 1.0) * (1.0 - p)

    @property
    def missed_pairs(self) -> float:
        return math.fsum(self._missed)

    @classmethod
    def of(cls, pairs: Iterable[dict[str, Any]], min_jaccard: float) -> PairTally:
        """A tally of pair dicts (``reference_id``, ``target_source``, ``target_row``, ``jaccard``,
        ``candidate_probability``)."""
        t = cls(min_jaccard)
        for p in pairs:
            t.add(p["reference_id"], p["target_source"], p["target_row"], p["jaccard"], p["candidate_probability"])
        return t


def _exact_add(partials: list[float], x: float) -> None:
    """Add ``x`` to a sum kept as non-overlapping partials (Shewchuk; ``math.fsum`` of them is exact)."""
    i = 0
    for y in partials:
        if abs(x) < abs(y):
            x, y = y, x
        hi = x + y
        lo = y - (hi - x)
        if lo:
            partials[i] = lo
            i += 1
        x = hi
    partials[i:] = [x]


def build_estimates(
    tallies: Sequence[Tally],
    pairs: PairTally,
    n_items: int,
    mode: str,
    confidence: float,
    records_sampled: bool = False,
) -> dict[str, Any]:
    """All estimates from the per-source tallies and the headline (unflagged) pairs.

    Args:
        tallies: One per input read.
        pairs: The headline pairs, tallied (flagged items already left out).
        n_items: Reference items that can count as evidence (not too short).
        mode: ``"full"``, ``"records"`` or ``"shards"``.
        records_sampled: Records were sampled within each input (per-input figures are then estimates).
        confidence: Interval confidence level.
    """
    flagged = pairs.flagged
    overall = _figures(tallies, flagged, mode, confidence)
    found = pairs.found
    if mode == "full":
        coverage = proportion(len(found), n_items, confidence=confidence, population=n_items).to_dict() if n_items \
            else Estimate(float("nan"), 0.0, 1.0, confidence, "no reference items", 0).to_dict()
    else:
        coverage = _lower_bound(len(found), n_items, confidence, "targets were sampled: no unbiased estimator").to_dict()
    per_source = {}
    for t in tallies:
        f = _figures([t], flagged, "records" if records_sampled else "full", confidence)
        per_source[t.source] = {"target_contamination": f["any"], "target_token_share": f["tokens"]}
    return {
        "target_contamination": overall["any"],
        "target_token_share": overall["tokens"],
        "reference_coverage": coverage,
        "by_kind": {
            "near_duplicate": {"target_contamination": overall["near_duplicate"]},
            "contained": {"target_contamination": overall["contained"]},
        },
        "by_source": per_source,
        "candidate_miss": candidate_miss(pairs),
    }


def candidate_miss(pairs: PairTally) -> dict[str, Any]:
    """Horvitz-Thompson correction for pairs (and items) candidate search may have missed.

    Each found pair was proposed with a known probability p (its exact overlap gives the
    anchor hit distribution; its exact Jaccard the band collision probability), so it
    stands for 1/p pairs; an item found through pairs with probabilities p_i was found
    with probability q = 1 - prod(1 - p_i). Sums are exact (order-independent).
    """
    missed_pairs = pairs.missed_pairs
    q = np.clip(1.0 - np.array(list(pairs.not_found.values()), dtype=np.float64), 1e-12, 1.0)
    missed_items = math.fsum(((1.0 - q) / q).tolist())
    n_items = len(pairs.not_found)
    return {
        "observed_pairs": pairs.pairs,
        "expected_missed_pairs": round(missed_pairs, 6),
        "corrected_pairs": round(pairs.pairs + missed_pairs, 6),
        "observed_items": n_items,
        "expected_missed_items": round(missed_items, 6),
        "corrected_items": round(n_items + missed_items, 6),
        "method": "Horvitz-Thompson: each found pair weighted by 1/P(candidate | its exact overlap)",
    }


def control_excess(ref_found: int, ref_items: int, ctrl_found: int, ctrl_items: int,
                   confidence: float) -> dict[str, Any]:
    """Reference minus negative-control item match rates, with Newcombe's interval."""
    return {
        "reference_found_share": proportion(ref_found, ref_items, confidence=confidence).to_dict(),
        "control_found_share": proportion(ctrl_found, ctrl_items, confidence=confidence).to_dict(),
        "excess": difference(ref_found, ref_items, ctrl_found, ctrl_items, confidence=confidence).to_dict(),
    }
