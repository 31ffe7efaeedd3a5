"""Compose the stages: ``build_index()`` and ``audit()``.

Example:
    >>> from provaudit import api
    >>> api.build_index(["fixtures/reference/posts.jsonl"], Path("ref.idx"), force=True)  # doctest: +SKIP
    >>> result = api.audit(Path("ref.idx"), ["fixtures/shards"])                         # doctest: +SKIP
    >>> api.write_audit(result, Path("audit-out"), force=True)                             # doctest: +SKIP
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from provaudit import __version__
from provaudit.config import AuditConfig, IndexConfig
from provaudit.errors import InputError
from provaudit.index import Index, IndexWriter, load_index
from provaudit.match import (
    AnchorPlan, anchor_candidates, covered_tokens, longest_common_run, lsh_candidates, plan_anchors, verify,
)
from provaudit.records import ReadStats, Record, Source, expand_sources, read_source
from provaudit.shingle import ShingleBatch, shingle_batch, unique_per_record
from provaudit.sketch import band_keys, estimate_jaccard, signatures

log = logging.getLogger(__name__)
Progress = Callable[[str, int], None]  # (stage/source description, records done so far)

BATCH_RECORDS = 2048
BATCH_CHARS = 4_000_000


def _versions() -> dict[str, str]:
    import datasketch

    return {"provaudit": __version__, "datasketch": getattr(datasketch, "__version__", "unknown")}


def batches(records: Iterable[Record]) -> Iterator[list[Record]]:
    """Group records into batches bounded by count and by total characters."""
    batch: list[Record] = []
    chars = 0
    for r in records:
        batch.append(r)
        chars += len(r.text)
        if len(batch) >= BATCH_RECORDS or chars >= BATCH_CHARS:
            yield batch
            batch, chars = [], 0
    if batch:
        yield batch


@dataclass
class InputSummary:
    """What was read from one input."""

    source: str
    kind: str
    sha256: str | None
    stats: ReadStats = field(default_factory=ReadStats)
    tokens: int = 0
    records_with_matches: int = 0
    covered_tokens: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "kind": self.kind,
            "sha256": self.sha256,
            "rows_read": self.stats.rows,
            "rows_skipped": dict(sorted(self.stats.skipped.items())),
            "tokens": self.tokens,
            "records_with_matches": self.records_with_matches,
            "covered_tokens": self.covered_tokens,
        }


def build_index(
    sources: list[str] | tuple[str, ...],
    dest: Path,
    config: IndexConfig | None = None,
    *,
    text_field: str = "text",
    id_field: str | None = "id",
    on_error: str = "fail",
    force: bool = False,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Read a reference corpus and write an index directory atomically.

    Returns:
        The manifest written to ``dest/manifest.json``.

    Raises:
        InputError: on unreadable input or duplicate reference ids (nothing is written).
        OutputExistsError: if ``dest`` exists and ``force`` is false.
    """
    config = (config or IndexConfig()).resolved()
    srcs = expand_sources(sources)
    writer = IndexWriter(dest, config, force=force)
    inputs: list[InputSummary] = []
    seen: dict[str, tuple[str, int]] = {}
    done = 0
    try:
        for src in srcs:
            summary = InputSummary(src.name, src.kind, src.sha256())
            inputs.append(summary)
            recs = read_source(src, text_field=text_field, id_field=id_field, on_error=on_error, stats=summary.stats)
            for batch in batches(recs):
                for r in batch:
                    if r.id in seen:
                        first = seen[r.id]
                        raise InputError(
                            f"{r.source} row {r.row + 1}: duplicate reference id {r.id!r} "
                            f"(first at {first[0]} row {first[1] + 1}); ids must be unique (or use --id-field)"
                        )
                    seen[r.id] = (r.source, r.row)
                sb = shingle_batch([r.text for r in batch], config)
                ub = unique_per_record(sb)
                sigs = signatures(sb, config.num_perm, config.seed)
                writer.add(
                    [r.id for r in batch], [r.source for r in batch], [r.row for r in batch], sb, ub, sigs,
                    band_keys(sigs, config.bands, config.rows), [r.text for r in batch] if config.keep_text else None,
                )
                summary.tokens += int(sb.n_tokens.sum())
                done += len(batch)
                if progress:
                    progress(src.name, done)
        manifest = {
            "versions": _versions(),
            "fields": {"text": text_field, "id": id_field},
            "inputs": [
                {k: v for k, v in s.to_dict().items() if k not in ("records_with_matches", "covered_tokens")}
                for s in inputs
            ],
        }
        return writer.finish(manifest)
    except BaseException:
        writer.abort()
        raise


@dataclass
class AuditResult:
    """Everything an audit found, ready for reports."""

    index: Index
    config: AuditConfig
    inputs: list[InputSummary]
    matches: dict[str, list[Any]]
    plan: AnchorPlan
    candidates: dict[str, int]
    target_records: int = 0
    records_with_matches: int = 0
    fields: dict[str, str | None] = field(default_factory=dict)


MATCH_COLUMNS = (
    "reference_id", "target_id", "target_source", "target_row", "jaccard", "containment",
    "estimated_jaccard", "verbatim_tokens", "overlap_shingles", "reference_shingles", "target_shingles",
    "target_tokens", "covered_tokens", "candidate_by",
)


class _Auditor:
    def __init__(self, index: Index, config: AuditConfig):
        self.index, self.config = index, config
        self.icfg = index.config
        self.plan = plan_anchors(index, config)
        self.max_ref = int(index.n_shingles.max()) if len(index) else 0
        self.matches: dict[str, list[Any]] = {c: [] for c in MATCH_COLUMNS}
        self.candidates = {"anchor_pairs": 0, "lsh_pairs": 0, "verified_pairs": 0, "reported_pairs": 0}
        self.found_items = np.zeros(len(index), dtype=bool)

    def run_batch(self, batch: list[Record], summary: InputSummary) -> int:
        icfg, idx = self.icfg, self.index
        sb = shingle_batch([r.text for r in batch], icfg)
        summary.tokens += int(sb.n_tokens.sum())
        if len(idx) == 0:
            return 0
        seq_len = np.diff(sb.offsets)
        a_rec, a_item = anchor_candidates(idx, self.plan, sb)
        # Jaccard >= j needs |T| <= |R| / j; anchors already cover every such pair
        # (J >= j implies containment >= j), so LSH only runs where it is cheap and useful.
        eligible = np.flatnonzero((seq_len > 0) & (seq_len <= self.max_ref / self.config.min_jaccard))
        sig_of: dict[int, np.ndarray] = {}
        l_rec = l_item = np.zeros(0, dtype=np.int64)
        if len(eligible):
            sigs = signatures(_subbatch(sb, eligible), icfg.num_perm, icfg.seed)
            sig_of = dict(zip(eligible.tolist(), sigs))
            l_rec, l_item = lsh_candidates(idx, band_keys(sigs, icfg.bands, icfg.rows), eligible)
        self.candidates["anchor_pairs"] += len(a_rec)
        self.candidates["lsh_pairs"] += len(l_rec)
        n = len(idx)
        a_code, l_code = a_rec * n + a_item, l_rec * n + l_item
        codes = np.union1d(a_code, l_code)
        if len(codes) == 0:
            return 0
        recs, items = codes // n, codes % n
        cand_recs, local = np.unique(recs, return_inverse=True)
        sets = unique_per_record(_subbatch(sb, cand_recs))
        overlap = verify(idx, sets, local, items)
        self.candidates["verified_pairs"] += len(codes)
        ref_n = idx.n_shingles[items]
        tgt_n = np.diff(sets.offsets)[local]
        containment = np.where(ref_n > 0, overlap / np.maximum(ref_n, 1), 0.0)
        union = ref_n + tgt_n - overlap
        jaccard = np.where(union > 0, overlap / np.maximum(union, 1), 0.0)
        keep = (overlap > 0) & ((containment >= self.config.min_containment) | (jaccard >= self.config.min_jaccard))
        by_anchor, by_lsh = np.isin(codes, a_code), np.isin(codes, l_code)
        matched: dict[int, list[int]] = {}
        m = self.matches
        for p in np.flatnonzero(keep):
            rec, item = int(recs[p]), int(items[p])
            record = batch[rec]
            ref_seq, tgt_seq = idx.sequence(item), sb.record(rec)
            run = longest_common_run(ref_seq, tgt_seq)
            width = min(icfg.ngram, int(idx.n_tokens[item]))
            if rec not in sig_of:
                sig_of[rec] = signatures(_subbatch(sb, np.array([rec])), icfg.num_perm, icfg.seed)[0]
            m["reference_id"].append(idx.ids[item].as_py())
            m["target_id"].append(record.id)
            m["target_source"].append(record.source)
            m["target_row"].append(record.row)
            m["jaccard"].append(float(jaccard[p]))
            m["containment"].append(float(containment[p]))
            m["estimated_jaccard"].append(float(estimate_jaccard(idx.signatures[item], sig_of[rec])))
            m["verbatim_tokens"].append(run + width - 1 if run else 0)
            m["overlap_shingles"].append(int(overlap[p]))
            m["reference_shingles"].append(int(ref_n[p]))
            m["target_shingles"].append(int(tgt_n[p]))
            m["target_tokens"].append(int(sb.n_tokens[rec]))
            m["covered_tokens"].append(covered_tokens(tgt_seq, np.unique(ref_seq), int(sb.n_tokens[rec]), icfg.ngram))
            m["candidate_by"].append("+".join(k for k, v in (("anchor", by_anchor[p]), ("lsh", by_lsh[p])) if v))
            self.found_items[item] = True
            matched.setdefault(rec, []).append(item)
        for rec, its in matched.items():
            union_hashes = np.unique(np.concatenate([idx.sequence(i) for i in its]))
            summary.covered_tokens += covered_tokens(sb.record(rec), union_hashes, int(sb.n_tokens[rec]), icfg.ngram)
        self.candidates["reported_pairs"] += int(keep.sum())
        summary.records_with_matches += len(matched)
        return len(matched)


def _subbatch(sb: ShingleBatch, recs: np.ndarray) -> ShingleBatch:
    lo, hi = sb.offsets[recs], sb.offsets[recs + 1]
    parts = [sb.hashes[a:b] for a, b in zip(lo.tolist(), hi.tolist())]
    offsets = np.zeros(len(recs) + 1, dtype=np.int64)
    np.cumsum(hi - lo, out=offsets[1:])
    hashes = np.concatenate(parts) if parts else np.zeros(0, np.uint64)
    return ShingleBatch(hashes, offsets, sb.n_tokens[recs])


def audit(
    index_dir: Path,
    targets: list[str] | tuple[str, ...],
    config: AuditConfig | None = None,
    *,
    text_field: str = "text",
    id_field: str | None = "id",
    on_error: str = "fail",
    progress: Progress | None = None,
) -> AuditResult:
    """Stream target records against an index and verify every candidate exactly.

    Raises:
        IndexFormatError: if the index is incomplete or fails its integrity check.
        InputError: naming file and line/row on unreadable targets.
    """
    config = config or AuditConfig()
    index = load_index(index_dir)
    sources: list[Source] = expand_sources(targets)
    auditor = _Auditor(index, config)
    inputs: list[InputSummary] = []
    total = with_matches = 0
    for src in sources:
        summary = InputSummary(src.name, src.kind, src.sha256())
        inputs.append(summary)
        recs = read_source(src, text_field=text_field, id_field=id_field, on_error=on_error, stats=summary.stats)
        for batch in batches(recs):
            with_matches += auditor.run_batch(batch, summary)
            total += len(batch)
            if progress:
                progress(src.name, total)
    return AuditResult(
        index=index, config=config, inputs=inputs, matches=auditor.matches, plan=auditor.plan,
        candidates=auditor.candidates, target_records=total, records_with_matches=with_matches,
        fields={"text": text_field, "id": id_field},
    )
