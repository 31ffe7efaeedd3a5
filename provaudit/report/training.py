"""Audit results -> ``matches.parquet``, ``report.json``, ``report.md`` and ``report.html`` (written atomically).

Reports are deterministic: sorted keys, paths as the user gave them; the one timestamp is
``reproduce.date`` (``SOURCE_DATE_EPOCH`` fixes it).
"""

from __future__ import annotations

import heapq
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from provaudit.estimate.section import PairTally, build_estimates, control_excess
from provaudit.fs import arrow
from provaudit.fs.atomic import atomic_output_dir
from provaudit.match.probability import lsh_candidate_probability
from provaudit.match.pairs import in_groups
from provaudit.match.schema import MATCH_SCHEMA
from provaudit.read.records import NO_TEXT
from provaudit.report.bundle import write_bundle
from provaudit.report.common import MARKER, report_header, round6
from provaudit.report.render import DEFAULT_HTML_PAIRS, dump_json, write_readable
from provaudit.results import AuditResult

MATCH_ROW_GROUP = 1 << 16  # rows per row group of matches.parquet

def matches_table(result: AuditResult) -> pa.Table:
    """Every verified pair as one table, sorted by target (source, row) then reference id (materialized:
    reports stream ``result.pair_batches()`` instead).

    ``item_flag`` is ``short_item`` or ``frequent_item`` (``match.pairs``), or empty (headline evidence).
    """
    return pa.Table.from_batches(list(result.pair_batches()), MATCH_SCHEMA)


_TOP_COLUMNS = ("reference_id", "target_id", "target_source", "target_row", "containment", "jaccard",
                "verbatim_tokens")


def _top_key(r: dict[str, Any]) -> tuple[Any, ...]:
    """Strongest first: containment, Jaccard, verbatim run (descending), then ids and places."""
    return -r["containment"], -r["jaccard"], -r["verbatim_tokens"], r["reference_id"], r["target_source"], \
        r["target_row"]


class _Summary:
    """One pass over an audit's pairs: counts, flags, the strongest ``top`` headline pairs and the
    estimates' tally. Memory follows records and items with evidence, not pairs."""

    def __init__(self, result: AuditResult, top: int):
        self.top, self.pairs, self.short_pairs = top, 0, 0
        self.tally = PairTally(result.config.min_jaccard)
        self.hit_records: dict[str, set[int]] = {}
        self.frequent_records: dict[str, int] = {}
        self.best: list[dict[str, Any]] = []
        cols = list(dict.fromkeys(_TOP_COLUMNS + ("item_flag", "candidate_probability")))
        for batch in result.pair_batches():
            rows = batch.select(cols).to_pylist()
            self.pairs += len(rows)
            headline = []
            for r in rows:
                flag = r["item_flag"]
                if flag == "short_item":
                    self.short_pairs += 1
                elif flag == "frequent_item":
                    self.frequent_records[r["reference_id"]] = self.frequent_records.get(r["reference_id"], 0) + 1
                else:
                    headline.append(r)
                    self.hit_records.setdefault(r["target_source"], set()).add(r["target_row"])
                    self.tally.add(r["reference_id"], r["target_source"], r["target_row"], r["jaccard"],
                                   r["candidate_probability"])
            self.best = heapq.nsmallest(top, self.best + headline, key=_top_key)


def _mode(result: AuditResult) -> str:
    if result.sample.shards is not None:
        return "shards"
    return "records" if result.sample.records is not None else "full"


def input_problems(result: AuditResult) -> dict[str, Any]:
    """What was not read, or not read in full, and why: never a silent loss.

    ``all_records_read`` is false when any record was skipped for a reason other than having
    no text (null or empty), was altered (cut to ``max_record_chars``), or an input could not
    be read to its end; the figures then cover only the records read.
    """
    skipped: dict[str, int] = {}
    altered: dict[str, int] = {}
    examples: dict[str, list[str]] = {}
    for s in result.inputs:
        for counts, total in ((s.stats.skipped, skipped), (s.stats.altered, altered)):
            for k, v in counts.items():
                total[k] = total.get(k, 0) + v
        for k, ex in s.stats.examples.items():
            room = 3 - len(examples.setdefault(k, []))
            examples[k] += ex[: max(room, 0)]
    errors = [{"source": s.source, "error": s.stats.error} for s in result.inputs if s.stats.error]
    lost = sum(v for k, v in skipped.items() if k not in NO_TEXT)
    return {
        "on_error": result.on_error,
        "max_record_chars": result.max_record_chars,
        "all_records_read": not (lost or altered or errors),
        "records_skipped": dict(sorted(skipped.items())),
        "records_altered": dict(sorted(altered.items())),
        "inputs_with_errors": errors,
        "examples": dict(sorted(examples.items())),
        "ignored_files": {"count": len(result.ignored_files), "files": result.ignored_files[:100]},
        "note": "Skipped records were not audited; altered records were audited as altered; an input with an "
                "error was audited up to the error. Ignored files (unsupported types in input directories) were "
                "not read. Figures cover only the records read.",
    }


def _flags(result: AuditResult, summary: _Summary, eligible_items: int) -> dict[str, Any]:
    """The ``flags`` section: pairs of items too short to be evidence, or matched too often."""
    return {
        "short_item": {
            "min_item_shingles": result.config.min_item_shingles,
            "items_in_index": result.index.live_items - eligible_items,
            "pairs": summary.short_pairs,
        },
        "frequent_item": {
            "max_target_records": result.frequent_limit,
            "items": [{"reference_id": k, "target_records": v} for k, v in sorted(summary.frequent_records.items())],
            "pairs": sum(summary.frequent_records.values()),
        },
        "note": "Flagged pairs are listed in matches.parquet (item_flag) but left out of counts of evidence "
                "and of estimates; covered tokens still include frequent items.",
    }


def _miss_probability(result: AuditResult) -> dict[str, Any]:
    """The ``miss_probability`` section: the chance that candidate search misses a pair at the thresholds."""
    cfg, icfg = result.config, result.index.config
    not_searchable, miss_max, miss_mean = result.plan.summary()
    return {
        "anchor_max_at_threshold": round6(miss_max) if miss_max is not None else None,
        "anchor_mean_at_threshold": round6(miss_mean) if miss_mean is not None else None,
        "items_not_searchable_by_anchors": not_searchable,
        "lsh_at_min_jaccard": round6(1.0 - lsh_candidate_probability(cfg.min_jaccard, icfg.bands, icfg.rows))
        if icfg.band_table else None,  # no band table: near-copies are searched by the anchors alone
        "note": (
            "anchor: P(a pair at exactly the containment threshold is never a candidate), per item, "
            "hypergeometric; lsh: P(a pair at exactly min_jaccard shares no band) = (1 - s^r)^b. "
            "Pairs found by either are verified exactly."
        ),
    }


def _control(result: AuditResult, found: int, eligible_items: int) -> dict[str, Any] | None:
    """The ``control`` section: the negative control's match rate and the reference's excess over it."""
    c = result.control
    if c is None:
        return None
    return {
        "fingerprint": c.fingerprint,
        "inputs": c.inputs,
        "items": c.items,
        "items_evidence": c.eligible_items,
        "items_found": len(c.found_items),
        "pairs": c.pairs,
        "target_records_with_matches": c.records_with_matches,
        **control_excess(found, eligible_items, len(c.found_items), c.eligible_items, result.config.confidence),
    }


def build_report(result: AuditResult) -> dict[str, Any]:
    """The versioned summary written as report.json (one pass over the pairs: ``_Summary``)."""
    idx, cfg = result.index, result.config
    summary = _Summary(result, cfg.top_evidence)
    found = summary.tally.found
    eligible_items = idx.items_with_shingles(cfg.min_item_shingles)
    mode = _mode(result)
    inputs = [{**s.to_dict(), "records_with_matches": len(summary.hit_records.get(s.source, ())),
               "rows_sampled_out": s.stats.sampled_out} for s in result.inputs]
    report: dict[str, Any] = {
        **report_header("training", idx),
        "parameters": {**cfg.to_dict(), "text_field": result.fields.get("text"), "id_field": result.fields.get("id")},
        "sample": {
            **result.sample.to_dict(),
            "mode": mode,
            "sampled_shards": result.sampled_shards,
            "rows_file": "sample.parquet" if result.sample.active else None,
        },
        "inputs": inputs,
        "counts": {
            "reference_items": idx.live_items,
            "reference_items_evidence": eligible_items,
            "reference_items_found": len(found),
            "target_records": result.target_records,
            "target_records_with_matches": sum(len(v) for v in summary.hit_records.values()),
            "target_tokens": sum(s.tokens for s in result.inputs),
            "covered_target_tokens": sum(s.covered_tokens for s in result.inputs),
            "pairs": summary.pairs,
            "evidence_pairs": summary.tally.pairs,
            "skipped_records": sum(sum(s.stats.skipped.values()) for s in result.inputs),
            "altered_records": sum(sum(s.stats.altered.values()) for s in result.inputs),
            "inputs_with_errors": sum(1 for s in result.inputs if s.stats.error),
        },
        "input_problems": input_problems(result),
        "estimates": build_estimates(result.inputs, summary.tally, eligible_items, mode, cfg.confidence,
                                     records_sampled=result.sample.records is not None),
        "flags": _flags(result, summary, eligible_items),
        "candidates": dict(sorted(result.candidates.items())),
        "miss_probability": _miss_probability(result),
        "top_evidence": [{k: r[k] for k in _TOP_COLUMNS} for r in summary.best],
    }
    control = _control(result, len(found), eligible_items)
    if control is not None:
        report["control"] = control
    return report


def sample_table(result: AuditResult) -> pa.Table:
    """Exactly which target records a sampled audit read: (source, row), in reading order."""
    sources, rows = [], []
    for t in result.inputs:
        r = [int(x) for a in t.rows for x in a]
        sources += [t.source] * len(r)
        rows += r
    return arrow.table({"source": sources, "row": rows}, pa.schema([("source", pa.string()), ("row", pa.int64())]))


def write_audit(result: AuditResult, out_dir: Path, *, force: bool = False, provenance: dict[str, Any] | None = None,
                html_pairs: int = DEFAULT_HTML_PAIRS, reference_sources: tuple[str, ...] = ()) -> dict[str, Any]:
    """Write matches.parquet, [sample.parquet,] report.json/md/html, bundle.json and SHA256SUMS atomically.

    ``provenance`` (command and date, ``bundle.provenance``) becomes report.json's ``reproduce``
    block; the ``html_pairs`` strongest pairs are embedded in report.html with their texts.

    The files are written in a locked temporary sibling, checksummed (``SHA256SUMS`` last),
    flushed to disk, and the directory is renamed into place; a killed run leaves the
    previous output or none. Stale temporary siblings of killed runs are removed first
    (``atomic.remove_stale_siblings``).

    Raises:
        OutputExistsError: if ``out_dir`` exists and ``force`` is false.
    """
    with atomic_output_dir(out_dir, force, MARKER) as tmp:
        with pq.ParquetWriter(tmp / "matches.parquet", MATCH_SCHEMA, compression="zstd",
                              write_statistics=False) as writer:
            for group in in_groups(result.pair_batches(), MATCH_ROW_GROUP):  # memory does not grow with the pairs
                writer.write_table(group, row_group_size=MATCH_ROW_GROUP)
        if result.sample.active:
            pq.write_table(sample_table(result), tmp / "sample.parquet", compression="zstd", write_statistics=False)
        report = build_report(result)
        if provenance is not None:
            report["reproduce"] = provenance
        (tmp / "report.json").write_text(dump_json(report), encoding="utf-8")
        write_readable(tmp, report, pq.ParquetFile(tmp / "matches.parquet"), html_pairs=html_pairs,
                       reference_sources=reference_sources)
        write_bundle(tmp, report)
    return report
