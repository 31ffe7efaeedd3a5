"""Audit results -> ``matches.parquet``, ``report.json`` and ``report.md`` (written atomically).

Reports are deterministic: sorted keys, no timestamps, paths as the user gave them.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from provaudit.index import commit_output_dir, prepare_output_dir
from provaudit.records import sha256_file

if TYPE_CHECKING:
    from provaudit.api import AuditResult

FORMAT = "provaudit-report"
FORMAT_VERSION = 1

MATCH_SCHEMA = pa.schema([
    pa.field("reference_id", pa.string()),
    pa.field("target_id", pa.string()),
    pa.field("target_source", pa.string()),
    pa.field("target_row", pa.int64()),
    pa.field("jaccard", pa.float64()),
    pa.field("containment", pa.float64()),
    pa.field("estimated_jaccard", pa.float64()),
    pa.field("verbatim_tokens", pa.int64()),
    pa.field("overlap_shingles", pa.int64()),
    pa.field("reference_shingles", pa.int64()),
    pa.field("target_shingles", pa.int64()),
    pa.field("target_tokens", pa.int64()),
    pa.field("covered_tokens", pa.int64()),
    pa.field("candidate_by", pa.string()),
])


def matches_table(result: AuditResult) -> pa.Table:
    """One row per verified pair, sorted by target (source, row) then reference id."""
    table = pa.Table.from_pydict({f.name: result.matches[f.name] for f in MATCH_SCHEMA}, schema=MATCH_SCHEMA)
    return table.sort_by([("target_source", "ascending"), ("target_row", "ascending"), ("reference_id", "ascending")])


def _lsh_probability(s: float, bands: int, rows: int) -> float:
    return 1.0 - (1.0 - s**rows) ** bands


def _r(x: float) -> float:
    return float(f"{x:.6g}") if math.isfinite(x) else x


def build_report(result: AuditResult, table: pa.Table) -> dict[str, Any]:
    """The versioned summary written as report.json."""
    idx, cfg = result.index, result.config
    icfg = idx.config
    plan = result.plan
    searchable = plan.threshold > 0
    found = set(table.column("reference_id").to_pylist())
    n_found = len(found)
    rows = table.to_pylist()
    rows.sort(key=lambda r: (-r["containment"], -r["jaccard"], -r["verbatim_tokens"], r["reference_id"], r["target_source"], r["target_row"]))
    target_tokens = sum(s.tokens for s in result.inputs)
    covered = sum(s.covered_tokens for s in result.inputs)
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "kind": "training",
        "versions": idx.manifest.get("versions", {}),
        "index": {
            "path": str(idx.path),
            "fingerprint": idx.manifest["fingerprint"],
            "manifest_sha256": sha256_file(idx.path / "manifest.json"),
            "config": idx.manifest["config"],
            "items": len(idx),
            "inputs": idx.manifest.get("inputs", []),
        },
        "parameters": {**cfg.to_dict(), "text_field": result.fields.get("text"), "id_field": result.fields.get("id")},
        "inputs": [s.to_dict() for s in result.inputs],
        "counts": {
            "reference_items": len(idx),
            "reference_items_found": n_found,
            "target_records": result.target_records,
            "target_records_with_matches": result.records_with_matches,
            "target_tokens": target_tokens,
            "covered_target_tokens": covered,
            "pairs": table.num_rows,
            "skipped_records": sum(sum(s.stats.skipped.values()) for s in result.inputs),
        },
        "shares": {
            "reference_found": _r(n_found / len(idx)) if len(idx) else None,
            "target_records_with_matches": _r(result.records_with_matches / result.target_records) if result.target_records else None,
            "target_tokens_covered": _r(covered / target_tokens) if target_tokens else None,
        },
        "candidates": dict(sorted(result.candidates.items())),
        "miss_probability": {
            "anchor_max_at_threshold": _r(float(plan.miss[searchable].max())) if searchable.any() else None,
            "anchor_mean_at_threshold": _r(float(plan.miss[searchable].mean())) if searchable.any() else None,
            "items_not_searchable_by_anchors": int((~searchable).sum()),
            "lsh_at_min_jaccard": _r(1.0 - _lsh_probability(cfg.min_jaccard, icfg.bands, icfg.rows)),
            "note": (
                "anchor: P(a pair at exactly the containment threshold is never a candidate), per item, "
                "hypergeometric; lsh: P(a pair at exactly min_jaccard shares no band) = (1 - s^r)^b. "
                "Pairs found by either are verified exactly."
            ),
        },
        "top_evidence": [
            {k: r[k] for k in ("reference_id", "target_id", "target_source", "target_row", "containment", "jaccard", "verbatim_tokens")}
            for r in rows[: cfg.top_evidence]
        ],
    }


def _md(text: object) -> str:
    """Escape untrusted text for a Markdown table cell."""
    s = str(text).replace("\r", " ").replace("\n", " ")
    for ch in "\\`*_{}[]()<>#+!|~&":
        s = s.replace(ch, "\\" + ch)
    return s


def render_markdown(report: dict[str, Any]) -> str:
    """A short human-readable report (all corpus-derived strings escaped)."""
    c, sh, mp = report["counts"], report["shares"], report["miss_probability"]
    lines = [
        "# provaudit audit report",
        "",
        f"Index `{_md(report['index']['fingerprint'])}` with {c['reference_items']} reference items.",
        f"Thresholds: containment >= {report['parameters']['min_containment']} or Jaccard >= "
        f"{report['parameters']['min_jaccard']} (exact, on shingle sets).",
        "",
        "| figure | value |",
        "| --- | --- |",
        f"| reference items found | {c['reference_items_found']} of {c['reference_items']} ({sh['reference_found']}) |",
        f"| target records with reference material | {c['target_records_with_matches']} of {c['target_records']} ({sh['target_records_with_matches']}) |",
        f"| target tokens covered | {c['covered_target_tokens']} of {c['target_tokens']} ({sh['target_tokens_covered']}) |",
        f"| verified pairs | {c['pairs']} |",
        f"| skipped target records | {c['skipped_records']} |",
        f"| max anchor miss probability at threshold | {mp['anchor_max_at_threshold']} |",
        "",
        "## Strongest evidence",
        "",
        "| reference | target | source:row | containment | Jaccard | verbatim tokens |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for e in report["top_evidence"]:
        lines.append(
            f"| {_md(e['reference_id'])} | {_md(e['target_id'])} | {_md(e['target_source'])}:{e['target_row']} "
            f"| {e['containment']:.3f} | {e['jaccard']:.3f} | {e['verbatim_tokens']} |"
        )
    lines += ["", "## Inputs", "", "| source | sha256 | rows read | rows skipped |", "| --- | --- | --- | --- |"]
    for i in report["inputs"]:
        skipped = ", ".join(f"{_md(k)}: {v}" for k, v in i["rows_skipped"].items()) or "0"
        lines.append(f"| {_md(i['source'])} | `{i['sha256'] or '-'}` | {i['rows_read']} | {skipped} |")
    return "\n".join(lines) + "\n"


def write_audit(result: AuditResult, out_dir: Path, *, force: bool = False) -> dict[str, Any]:
    """Write matches.parquet, report.json and report.md into ``out_dir`` atomically."""
    tmp = prepare_output_dir(out_dir, force, "report.json")
    try:
        table = matches_table(result)
        pq.write_table(table, tmp / "matches.parquet", compression="zstd", write_statistics=False)
        report = build_report(result, table)
        (tmp / "report.json").write_text(json.dumps(report, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
        (tmp / "report.md").write_text(render_markdown(report), encoding="utf-8")
        commit_output_dir(tmp, out_dir)
    except BaseException:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return report
