"""Evaluate batches of target records against a loaded index: candidates, exact verification, evidence.

``Engine.evaluate(batch)`` is a pure function of the batch (given the index and
thresholds): it returns a ``BatchResult`` and mutates nothing, so batches can run
in worker processes (``parse_and_evaluate`` is the worker task, see ``run.workers``) and
be merged in input order. Results are therefore identical for any number of workers.
Every item flag is set here: ``short_item`` per pair, ``frequent_item`` once all pairs
are in (``flag_frequent``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
import pyarrow as pa

from provaudit.config import AuditConfig
from provaudit.index.chunks import hostile
from provaudit.index.format import Index
from provaudit.index.signatures import item_signatures
from provaudit.match.candidates import AnchorPlan, anchor_candidates, lsh_candidates, verify
from provaudit.match.runs import covered_tokens, longest_common_run
from provaudit.match.partitioned import AnchorSearch
from provaudit.match.probability import hypergeom_cdf, lsh_candidate_probability
from provaudit.match.pairs import Spill, SpillRef, rows_batch
from provaudit.match.schema import MATCH_COLUMNS
from provaudit.read.blocks import batches
from provaudit.read.records import ReadStats, Record
from provaudit.text import sets
from provaudit.text.shingle import ShingleBatch, shingle_batch, unique_per_record
from provaudit.text.sketch import band_keys, estimate_jaccard, signatures

T = TypeVar("T")
Parse = Callable[[T], tuple[Iterable[Record], ReadStats]]  # a block of input -> records, what reading them counts


@dataclass
class BatchResult:
    """What one batch of target records produced."""

    records: int = 0
    tokens: int = 0
    records_with_matches: int = 0
    covered_tokens: int = 0
    rows: list[tuple[Any, ...]] = field(default_factory=list)  # in MATCH_COLUMNS order
    pairs: list[pa.RecordBatch | SpillRef] = field(default_factory=list)  # columnar rows (``Engine.columnar``),
    # in memory or, with ``Engine.spill``, written to the run's spill by the worker itself
    candidates: dict[str, int] = field(default_factory=dict)
    rec_tokens: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    rec_covered: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    rec_rows: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    # with ``groups`` (records of several small files, ``match.grouped``): each pair batch's group,
    # and per group the candidate counters and the records with matches
    pair_groups: list[int] = field(default_factory=list)
    by_group: dict[str, np.ndarray] | None = None


PAIR_CHUNK = 1 << 12  # pair rows made columnar at a time


def subbatch(sb: ShingleBatch, recs: np.ndarray) -> ShingleBatch:
    """The records ``recs`` of a batch, as a batch of their own."""
    lo, hi = sb.offsets[recs], sb.offsets[recs + 1]
    offsets = np.zeros(len(recs) + 1, dtype=np.int64)
    np.cumsum(hi - lo, out=offsets[1:])
    parts = [sb.hashes[a:b] for a, b in zip(lo.tolist(), hi.tolist())]
    hashes = np.concatenate(parts) if parts else np.zeros(0, np.uint64)
    return ShingleBatch(hashes, offsets, sb.n_tokens[recs])


class Engine:
    """Candidate search and exact verification for one index and one set of thresholds."""

    def __init__(self, index: Index, config: AuditConfig):
        self.index, self.config, self.icfg = index, config, index.config
        self.columnar = True  # pairs as record batches (training audits); rows for model-output audits
        self.spill: Spill | None = None  # where workers write their pairs' batches (local runs)
        self.plan = AnchorPlan(index, config)
        self.anchors: AnchorSearch | None = None  # None: ``anchor_candidates``; else by key range (``match.partitioned``)
        self.max_ref = int(index.shapes[:, 0].max()) if len(index.shapes) else 0

    def evaluate(self, batch: list[Record]) -> BatchResult:
        """Find, verify and describe every reportable (reference item, record) pair in ``batch``."""
        return self.evaluate_shingled(batch, shingle_batch([r.text for r in batch], self.icfg))

    def evaluate_shingled(self, batch: list[Record], sb: ShingleBatch, groups: np.ndarray | None = None) -> BatchResult:
        """``evaluate`` for a batch already shingled with this index's parameters. ``groups``: the
        group (file) of each record, non-decreasing: pair batches then never span two groups, and
        ``by_group`` holds each group's counters (``match.grouped`` splits the result per file)."""
        icfg, idx, cfg = self.icfg, self.index, self.config
        out = BatchResult(records=len(batch), tokens=int(sb.n_tokens.sum()), rec_tokens=sb.n_tokens.copy(),
                          rec_covered=np.zeros(len(batch), np.int64),
                          rec_rows=np.fromiter((r.row for r in batch), np.int64, len(batch)))
        if len(idx) == 0:
            return out
        seq_len = np.diff(sb.offsets)
        a_rec, a_item = (self.anchors or anchor_candidates)(idx, self.plan, sb)
        # Jaccard >= j needs |T| <= |R| / j. Anchors already cover every such pair
        # (J >= j implies containment >= j); LSH runs only where it is cheap.
        eligible = np.flatnonzero((seq_len > 0) & (seq_len <= self.max_ref / cfg.min_jaccard) & icfg.band_table)
        sig_of: dict[int, np.ndarray] = {}
        l_rec = l_item = np.zeros(0, dtype=np.int64)
        if len(eligible):
            sigs = signatures(subbatch(sb, eligible), icfg.num_perm, icfg.seed)
            sig_of = dict(zip(eligible.tolist(), sigs))
            l_rec, l_item = lsh_candidates(idx, band_keys(sigs, icfg.bands, icfg.rows), eligible)
        if len(idx.removed):  # removed items are never verified nor reported
            a_keep, l_keep = ~idx.is_removed(a_item), ~idx.is_removed(l_item)
            a_rec, a_item, l_rec, l_item = a_rec[a_keep], a_item[a_keep], l_rec[l_keep], l_item[l_keep]
        n = len(idx)
        a_code, l_code = a_rec * n + a_item, l_rec * n + l_item
        codes = sets.union(a_code, l_code)
        out.candidates = {"anchor_pairs": len(a_rec), "lsh_pairs": len(l_rec), "verified_pairs": len(codes)}
        count = _group_counter(groups)
        if count is not None:
            out.by_group = {"anchor_pairs": count(a_rec), "lsh_pairs": count(l_rec), "verified_pairs": count(codes // n),
                            "reported_pairs": count(codes[:0]), "records_with_matches": count(codes[:0])}
        if len(codes) == 0:
            out.candidates["reported_pairs"] = 0
            return out
        recs, items = codes // n, codes % n
        cand_recs, local = np.unique(recs, return_inverse=True)
        distinct = unique_per_record(subbatch(sb, cand_recs))
        overlap = verify(idx, distinct, local, items)
        ref_n = idx.shingles_of(items)
        if len(overlap) and bool((overlap > ref_n).any()):  # more shared shingles than the item has
            raise hostile(idx.path / "n_shingles.u32", "distinct shingles do not match the sequences")
        tgt_n = np.diff(distinct.offsets)[local]
        containment = np.where(ref_n > 0, overlap / np.maximum(ref_n, 1), 0.0)
        union = ref_n + tgt_n - overlap
        jaccard = np.where(union > 0, overlap / np.maximum(union, 1), 0.0)
        keep = (overlap > 0) & ((containment >= cfg.min_containment) | (jaccard >= cfg.min_jaccard))
        by_anchor, by_lsh = sets.isin(codes, a_code), sets.isin(codes, l_code)
        lsh_eligible = np.zeros(len(batch), dtype=bool)
        lsh_eligible[eligible] = True
        matched: dict[int, list[int]] = {}
        kept = np.flatnonzero(keep)
        reported = sets.unique(items[kept])  # their signatures, from their sequences (= the stored ones)
        item_sig = dict(zip(reported.tolist(), item_signatures(idx, reported)))
        item_id = dict(zip(reported.tolist(), idx.ids_of(reported)))
        item_tokens = dict(zip(reported.tolist(), idx.tokens_of(reported).tolist()))
        item_k = dict(zip(reported.tolist(), self.plan.usable_of(reported).tolist()))
        item_t = dict(zip(reported.tolist(), self.plan.threshold_of(reported).tolist()))
        if self.columnar:  # by record, then reference id: the order of matches.parquet
            by_id = sorted(range(len(reported)), key=lambda j: item_id[int(reported[j])])
            rank = np.empty(len(reported), np.int64)
            rank[np.asarray(by_id, np.int64)] = np.arange(len(reported))
            kept = kept[np.lexsort((rank[np.searchsorted(reported, items[kept])], recs[kept]))]
        last = -1
        for p in kept:
            rec, item = int(recs[p]), int(items[p])
            if self.columnar and out.rows and (len(out.rows) >= PAIR_CHUNK and rec != last  # bounded, whole records
                                               or groups is not None and groups[rec] != groups[last]):  # one group
                self._flush(out, groups, last)
            last = rec
            record = batch[rec]
            ref_seq, tgt_seq = idx.sequence(item), sb.record(rec)
            run = longest_common_run(ref_seq, tgt_seq)
            width = min(icfg.ngram, item_tokens[item])
            if rec not in sig_of:
                sig_of[rec] = signatures(subbatch(sb, np.array([rec])), icfg.num_perm, icfg.seed)[0]
            n_tok = int(sb.n_tokens[rec])
            short = int(ref_n[p]) < cfg.min_item_shingles
            prob = self.detection_probability(int(ref_n[p]), item_k[item], item_t[item], int(overlap[p]),
                                              float(jaccard[p]), bool(lsh_eligible[rec]))
            out.rows.append((
                item_id[item], item, record.id, record.source, record.row, float(jaccard[p]),
                float(containment[p]), float(estimate_jaccard(item_sig[item], sig_of[rec])),
                run + width - 1 if run else 0, int(overlap[p]), int(ref_n[p]), int(tgt_n[p]), n_tok,
                covered_tokens(tgt_seq, sets.unique(ref_seq), n_tok, icfg.ngram),
                "+".join(k for k, v in (("anchor", by_anchor[p]), ("lsh", by_lsh[p])) if v),
                prob, "short_item" if short else "",
            ))
            if not short:
                matched.setdefault(rec, []).append(item)
        for rec, its in matched.items():
            union_hashes = sets.unique(np.concatenate([idx.sequence(i) for i in its]))
            cov = covered_tokens(sb.record(rec), union_hashes, int(sb.n_tokens[rec]), icfg.ngram)
            out.rec_covered[rec] = cov
            out.covered_tokens += cov
        if self.columnar and out.rows:
            self._flush(out, groups, last)
        out.candidates["reported_pairs"] = int(keep.sum())
        out.records_with_matches = len(matched)
        if count is not None and out.by_group is not None:
            out.by_group["reported_pairs"] = count(recs[keep])
            out.by_group["records_with_matches"] = count(np.fromiter(matched, np.int64, len(matched)))
        return out

    def _flush(self, out: BatchResult, groups: np.ndarray | None, rec: int) -> None:
        """The pairs gathered so far (of records up to ``rec``) as one batch, spilled when the run spills."""
        chunk = rows_batch(out.rows)
        out.pairs.append(self.spill.write(chunk) if self.spill is not None else chunk)
        out.rows = []
        if groups is not None:
            out.pair_groups.append(int(groups[rec]))


    def detection_probability(self, n: int, k: int, t: int, overlap: int, jaccard: float, lsh_eligible: bool) -> float:
        """Probability that candidate search proposes a pair with this exact overlap, for an item of
        ``n`` distinct shingles, ``k`` usable anchors and anchor threshold ``t``.

        Anchors: P(X >= t), X ~ Hypergeometric(N, overlap, k); bands (when the record was
        eligible): 1 - (1 - J^r)^b; the two are independent draws.
        """
        icfg = self.icfg
        p_anchor = 0.0
        if t > 0 and k > 0:
            p_anchor = 1.0 - (float(hypergeom_cdf(n, overlap, min(k, n))[t - 1]) if t - 1 <= min(k, n) else 1.0)
        p_lsh = lsh_candidate_probability(jaccard, icfg.bands, icfg.rows) if lsh_eligible else 0.0
        return float(min(1.0, max(0.0, 1.0 - (1.0 - p_anchor) * (1.0 - p_lsh))))


def _group_counter(groups: np.ndarray | None) -> Callable[[np.ndarray], np.ndarray] | None:
    """Counts per group of the records an array names (None without groups)."""
    if groups is None:
        return None
    n_groups = int(groups.max()) + 1 if len(groups) else 0
    return lambda recs: np.bincount(groups[np.asarray(recs, np.int64)], minlength=n_groups)


def evaluate_all(engines: list[Engine], batch: list[Record]) -> list[BatchResult]:
    """Evaluate one batch against several indexes built with the same parameters (shingled once)."""
    sb = shingle_batch([r.text for r in batch], engines[0].icfg)
    return [e.evaluate_shingled(batch, sb) for e in engines]


def parse_and_evaluate(engines: list[Engine], parse: Parse[T], raw: T) -> tuple[ReadStats, list[list[BatchResult]]]:
    """Parse raw input into records (``parse``), then ``evaluate_all`` them batch by batch (a worker task)."""
    records, stats = parse(raw)
    return stats, [evaluate_all(engines, b) for b in batches(records)]


def _split(r: BatchResult, groups: np.ndarray) -> dict[int, BatchResult]:
    """A result of records of several groups (files), as one result per group present."""
    out: dict[int, BatchResult] = {}
    bounds = np.flatnonzero(np.diff(groups)) + 1
    pairs: dict[int, list[pa.RecordBatch | SpillRef]] = {}
    for g, p in zip(r.pair_groups, r.pairs):
        pairs.setdefault(g, []).append(p)
    for lo, hi in zip([0, *bounds.tolist()], [*bounds.tolist(), len(groups)]):
        g = int(groups[lo])
        by = {k: int(v[g]) for k, v in r.by_group.items()} if r.by_group is not None else {}
        found = by.pop("records_with_matches", 0)
        out[g] = BatchResult(records=hi - lo, tokens=int(r.rec_tokens[lo:hi].sum()), records_with_matches=found,
                             covered_tokens=int(r.rec_covered[lo:hi].sum()), pairs=pairs.get(g, []), candidates=by,
                             rec_tokens=r.rec_tokens[lo:hi], rec_covered=r.rec_covered[lo:hi],
                             rec_rows=r.rec_rows[lo:hi])
    return out


def evaluate_grouped(engines: list[Engine], tasks: list[tuple[Parse[Any], Any]],
                     ) -> list[tuple[ReadStats, list[list[BatchResult]]]]:
    """``parse_and_evaluate`` of each of many small files' blocks (``run.small.SmallFiles``), with their
    records evaluated together, batch by batch, and the results split back per block: a one-line file
    does not pay a batch's fixed cost (about 1.7 ms). Pairs, counts and candidate counters are each
    file's own (records are evaluated one by one: the same as file by file)."""
    counted: list[ReadStats] = []
    records: list[Record] = []
    owner: list[int] = []
    for t, (parse, raw) in enumerate(tasks):
        recs, stats = parse(raw)
        before = len(records)
        records.extend(recs)
        owner.extend([t] * (len(records) - before))
        counted.append(stats)
    outputs: list[list[list[BatchResult]]] = [[] for _ in tasks]
    at = 0
    for batch in batches(records):
        groups = np.asarray(owner[at : at + len(batch)], np.int64)
        at += len(batch)
        sb = shingle_batch([r.text for r in batch], engines[0].icfg)
        split = [_split(e.evaluate_shingled(batch, sb, groups), groups) for e in engines]
        for g in split[0]:
            outputs[g].append([s[g] for s in split])
    return list(zip(counted, outputs))


parse_and_evaluate.bundled = evaluate_grouped  # type: ignore[attr-defined]  # run.small.SmallFiles runs files with it


def frequent_limit(config: AuditConfig, target_records: int) -> int:
    """Target records above which a reference item is flagged as boilerplate suspect."""
    return config.frequent_item_records or max(50, math.ceil(0.01 * target_records))


def flag_frequent(matches: dict[str, list[Any]], limit: int) -> None:
    """Set ``item_flag`` to ``frequent_item`` on the unflagged pairs of items matched in more than
    ``limit`` target records (the engine sets ``short_item`` per pair; this needs every pair)."""
    records: dict[str, set[tuple[str, int]]] = {}
    flags = matches["item_flag"]
    for rid, src, row, flag in zip(matches["reference_id"], matches["target_source"], matches["target_row"], flags):
        if not flag:
            records.setdefault(rid, set()).add((src, row))
    frequent = {rid for rid, recs in records.items() if len(recs) > limit}
    matches["item_flag"] = ["frequent_item" if (not f and rid in frequent) else f
                            for rid, f in zip(matches["reference_id"], flags)]
