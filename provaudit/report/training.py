"""Audit results -> ``matches.parquet``, ``report.json``, ``report.md`` and ``report.html`` (written atomically).

Reports are deterministic: sorted keys, paths as the user gave them; the one timestamp is
``reproduce.date`` (``SOURCE_DATE_EPOCH`` fixes it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from provaudit.estimate.section import build_estimates, control_excess
from provaudit.fs import arrow
from provaudit.fs.atomic import atomic_output_dir
from provaudit.match.probability import lsh_candidate_probability
from provaudit.match.schema import MATCH_SCHEMA
from provaudit.read.records import NO_TEXT
from provaudit.report.bundle import write_bundle
from provaudit.report.common import MARKER, report_header, round6
from provaudit.report.render import DEFAULT_HTML_PAIRS, dump_json, write_readable
from provaudit.results import AuditResult

def matches_table(result: AuditResult) -> pa.Table:
    """One row per verified pair, sorted by target (source, row) then reference id.

    ``item_flag`` is ``short_item`` or ``frequent_item`` (set by ``match.engine``), or empty (headline evidence).
    """
    m = result.matches
    # Python's str order is code point order, which is UTF-8 byte order: the order Arrow sorts in
    # (pyarrow.compute, whose import alone takes 0.06 s, is not needed for it)
    src, row, rid = m["target_source"], m["target_row"], m["reference_id"]
    order = sorted(range(len(rid)), key=lambda i: (src[i], row[i], rid[i]))
    return arrow.table({name: [m[name][i] for i in order] for name in MATCH_SCHEMA.names}, MATCH_SCHEMA)


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


def _flags(result: AuditResult, rows: list[dict[str, Any]], eligible_items: int) -> dict[str, Any]:
    """The ``flags`` section: pairs of items too short to be evidence, or matched too often."""
    frequent: dict[str, set[tuple[str, int]]] = {}
    for r in rows:
        if r["item_flag"] == "frequent_item":
            frequent.setdefault(r["reference_id"], set()).add((r["target_source"], r["target_row"]))
    return {
        "short_item": {
            "min_item_shingles": result.config.min_item_shingles,
            "items_in_index": len(result.index) - eligible_items,
            "pairs": sum(1 for r in rows if r["item_flag"] == "short_item"),
        },
        "frequent_item": {
            "max_target_records": result.frequent_limit,
            "items": [{"reference_id": k, "target_records": len(v)} for k, v in sorted(frequent.items())],
            "pairs": sum(1 for r in rows if r["item_flag"] == "frequent_item"),
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


def build_report(result: AuditResult, table: pa.Table) -> dict[str, Any]:
    """The versioned summary written as report.json."""
    idx, cfg = result.index, result.config
    rows = table.to_pylist()
    headline = [r for r in rows if not r["item_flag"]]
    found = {r["reference_id"] for r in headline}
    hit_records = {(r["target_source"], r["target_row"]) for r in headline}
    eligible_items = idx.items_with_shingles(cfg.min_item_shingles)
    headline.sort(key=lambda r: (-r["containment"], -r["jaccard"], -r["verbatim_tokens"], r["reference_id"],
                                 r["target_source"], r["target_row"]))
    mode = _mode(result)
    inputs = [{**s.to_dict(), "records_with_matches": len({rec for rec in hit_records if rec[0] == s.source}),
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
            "reference_items": len(idx),
            "reference_items_evidence": eligible_items,
            "reference_items_found": len(found),
            "target_records": result.target_records,
            "target_records_with_matches": len(hit_records),
            "target_tokens": sum(s.tokens for s in result.inputs),
            "covered_target_tokens": sum(s.covered_tokens for s in result.inputs),
            "pairs": table.num_rows,
            "evidence_pairs": len(headline),
            "skipped_records": sum(sum(s.stats.skipped.values()) for s in result.inputs),
            "altered_records": sum(sum(s.stats.altered.values()) for s in result.inputs),
            "inputs_with_errors": sum(1 for s in result.inputs if s.stats.error),
        },
        "input_problems": input_problems(result),
        "estimates": build_estimates(result.inputs, headline, eligible_items, mode, cfg.confidence, cfg.min_jaccard,
                                     records_sampled=result.sample.records is not None),
        "flags": _flags(result, rows, eligible_items),
        "candidates": dict(sorted(result.candidates.items())),
        "miss_probability": _miss_probability(result),
        "top_evidence": [
            {k: r[k] for k in ("reference_id", "target_id", "target_source", "target_row", "containment", "jaccard",
                               "verbatim_tokens")}
            for r in headline[: cfg.top_evidence]
        ],
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
        table = matches_table(result)
        pq.write_table(table, tmp / "matches.parquet", compression="zstd", write_statistics=False)
        if result.sample.active:
            pq.write_table(sample_table(result), tmp / "sample.parquet", compression="zstd", write_statistics=False)
        report = build_report(result, table)
        if provenance is not None:
            report["reproduce"] = provenance
        (tmp / "report.json").write_text(dump_json(report), encoding="utf-8")
        write_readable(tmp, report, table, html_pairs=html_pairs, reference_sources=reference_sources)
        write_bundle(tmp, report)
    return report
