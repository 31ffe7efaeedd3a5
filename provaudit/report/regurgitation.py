"""Outputs-audit results -> matches.parquet, samples.parquet, report.json/md/html (written atomically).

``report.json`` uses the versioned report model of ``provaudit.report.training`` (same ``format``
and ``format_version``, ``"kind": "outputs"``; shared ``index``, ``parameters``,
``inputs``, ``counts``, ``estimates``, ``candidates``, ``miss_probability`` and
``top_evidence`` blocks), so data-side and model-side reports join on the index
fingerprint and reference ids. Reports are deterministic: sorted keys, no
timestamps, paths as the user gave them.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from provaudit.estimate.stats import proportion
from provaudit.fs import arrow
from provaudit.fs.atomic import atomic_output_dir
from provaudit.read.records import Extract
from provaudit.report.bundle import write_bundle
from provaudit.report.common import MARKER, report_header, round6
from provaudit.report.render import DEFAULT_HTML_PAIRS, dump_json, write_readable
from provaudit.results import VERDICT_ORDER, OutputsResult, strength

_S, _I, _F = pa.string(), pa.int64(), pa.float64()
PAIR_SCHEMA = pa.schema([(n, t) for n, t in (
    ("sample_id", _S), ("sample_source", _S), ("sample_row", _I), ("field", _S), ("reference_id", _S),
    ("reference_item", _I), ("verdict", _S), ("containment", _F), ("overlap_shingles", _I), ("prompt_shingles", _I),
    ("reference_shingles", _I), ("reference_tokens", _I), ("verbatim_tokens", _I), ("evidence_tokens", _I),
    ("verbatim_chars", _I), ("sample_token_start", _I), ("sample_token_end", _I), ("sample_char_start", _I),
    ("sample_char_end", _I), ("reference_token_start", _I), ("reference_token_end", _I),
    ("reference_char_start", _I), ("reference_char_end", _I), ("sample_span", _S), ("candidate_by", _S),
)])
SAMPLE_SCHEMA = pa.schema([(n, t) for n, t in (
    ("sample_id", _S), ("source", _S), ("row", _I), ("field", _S), ("verdict", _S), ("reference_id", _S),
    ("items_reproduced", _I), ("evidence_tokens", _I), ("verbatim_tokens", _I), ("containment", _F),
    ("sample_tokens", _I), ("sample_shingles", _I), ("prompt_shingles", _I), ("reference_ngram_share", _F),
    ("covered_tokens", _I),
)])
NGRAM_SHARE_NOTE = (
    "reference_ngram_share: share of the sample's n-gram positions (audited text, in order, repeats counted) "
    "whose n-gram occurs in a reference item the sample reproduces (any positive verdict) and not in the "
    "prompt; 0 for samples with no positive verdict. It is not the share found anywhere in the corpus."
)


def _table(rows: list[dict[str, Any]], schema: pa.Schema) -> pa.Table:
    return arrow.table_of_rows(rows, schema)


def _quantiles(values: list[int]) -> dict[str, Any]:
    if not values:
        return {"min": None, "p25": None, "median": None, "p75": None, "p90": None, "max": None}
    v = np.sort(np.asarray(values))
    q = {k: int(v[min(len(v) - 1, int(np.ceil(p * len(v))) - 1)]) for k, p in
         (("p25", 0.25), ("median", 0.5), ("p75", 0.75), ("p90", 0.9))}
    return {"min": int(v[0]), **q, "max": int(v[-1])}


def _histogram(values: list[int], lowest: int, verbatim: int) -> list[dict[str, Any]]:
    edges = sorted({lowest, verbatim, 50, 100, 200} - {e for e in (50, 100, 200) if e <= max(lowest, verbatim)})
    out = []
    for lo, hi in zip(edges, [*edges[1:], None]):
        n = sum(1 for x in values if x >= lo and (hi is None or x < hi))
        out.append({"from": lo, "to": None if hi is None else hi - 1, "samples": n})
    return out


def _items(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per reproduced reference item: samples, verbatim samples, strongest evidence."""
    items: dict[str, dict[str, Any]] = {}
    for p in rows:
        e = items.setdefault(p["reference_id"], {"reference_id": p["reference_id"], "samples": 0,
                                                 "verbatim_samples": 0, "max_evidence_tokens": 0, "max_containment": 0.0})
        e["samples"] += 1
        e["verbatim_samples"] += p["verdict"] == "verbatim"
        e["max_evidence_tokens"] = max(e["max_evidence_tokens"], p["evidence_tokens"])
        e["max_containment"] = max(e["max_containment"], p["containment"])
    return items


def _verdict_rules(result: OutputsResult) -> dict[str, str]:
    rules, cfg = result.rules, result.config
    return {
        "evidence_tokens": "tokens of the longest verbatim span shared by the item and the audited text, "
                           "minus the span's tokens that the prompt (or non-assistant turns) also holds",
        "verbatim": f"evidence_tokens >= min({rules.min_verbatim_tokens}, item tokens)",
        "partial": f"evidence_tokens >= {rules.min_span_share} x item tokens",
        "span_floor": f"verbatim and partial need evidence_tokens >= {rules.min_span_tokens}",
        "near_verbatim": f"containment (prompt n-grams excluded) >= {cfg.min_containment} and at least "
                         f"{rules.min_span_tokens - result.index.config.ngram + 1} shared n-grams",
        "none": f"otherwise; items with fewer than {rules.min_span_tokens} tokens are never evidence",
    }


def _offsets_note(keep_text: bool) -> dict[str, Any]:
    return {
        "reference_char_offsets": keep_text,
        "note": ("Offsets are 0-based, end-exclusive; sample offsets index the audited text (the completion, or "
                 "the assistant turns joined by newlines). " + (
                     "Reference character offsets index the item text stored in the index." if keep_text else
                     "The index holds no text (built without --keep-text): reference spans are given in tokens "
                     "only, reference_char_start/end are null.")),
    }


def _miss_probability(result: OutputsResult) -> dict[str, Any]:
    need = result.need
    return {
        "anchor_max_at_rule_threshold": round6(need.miss_max) if need.miss_max is not None else None,
        "anchor_mean_at_rule_threshold": round6(need.miss_mean) if need.miss_mean is not None else None,
        "items_above_miss_rate": need.above_miss_rate,
        "items_not_searchable_by_anchors": need.not_searchable,
        "search_containment": round6(need.search_containment),
        "note": ("Per evidence item: P(a pair with the fewest shared n-grams that any positive verdict needs is "
                 "never a candidate), hypergeometric over the item's anchors. Candidates are verified exactly."),
    }


def build_report(result: OutputsResult, pairs: pa.Table) -> dict[str, Any]:
    """The versioned summary written as report.json."""
    idx, cfg, rules, need = result.index, result.config, result.rules, result.need
    conf = cfg.confidence
    samples, rows = result.samples, pairs.to_pylist()
    verdicts = Counter(s["verdict"] for s in samples)
    flagged = [s for s in samples if s["verdict"] != "none"]
    n = len(samples)
    items = _items(rows)
    top_items = sorted(items.values(), key=lambda e: (-e["samples"], -e["max_evidence_tokens"], e["reference_id"]))
    rows.sort(key=lambda p: (tuple(-x for x in strength(p)), p["reference_id"], p["sample_source"], p["sample_row"]))
    keep_text = idx.config.keep_text
    spans = [s["evidence_tokens"] for s in flagged]
    tokens = sum(s.tokens for s in result.inputs)
    inputs = [{**s.to_dict(), "shapes": dict(sorted(s.shapes.items())), "rows_sampled_out": s.stats.sampled_out}
              for s in result.inputs]
    return {
        **report_header("outputs", idx),
        "parameters": {**cfg.to_dict(), "text_field": result.fields.get("text"), "id_field": result.fields.get("id"),
                       **{f"verdict_{k}": v for k, v in rules.to_dict().items()}},
        "verdict_rules": _verdict_rules(result),
        "inputs": inputs,
        "counts": {
            "reference_items": idx.live_items,
            "reference_items_evidence": need.evidence_items,
            "reference_items_reproduced": len(items),
            "samples": n,
            "samples_regurgitating": len(flagged),
            "sample_tokens": tokens,
            "covered_sample_tokens": sum(s["covered_tokens"] for s in samples),
            "pairs": len(rows),
            "skipped_records": sum(sum(s.stats.skipped.values()) for s in result.inputs),
        },
        "estimates": {
            "samples_regurgitating": proportion(len(flagged), n, confidence=conf).to_dict(),
            "samples_verbatim": proportion(verdicts["verbatim"], n, confidence=conf).to_dict(),
        },
        "summary": {
            "verdicts": {v: verdicts[v] for v in VERDICT_ORDER},
            "evidence_span_tokens": {**_quantiles(spans), "samples": len(spans),
                                     "histogram": _histogram(spans, rules.min_span_tokens, rules.min_verbatim_tokens)},
            "reference_ngram_share": {
                "mean_all_samples": round6(float(np.mean([s["reference_ngram_share"] for s in samples]))) if n else None,
                "mean_regurgitating_samples":
                    round6(float(np.mean([s["reference_ngram_share"] for s in flagged]))) if flagged else None,
                "definition": NGRAM_SHARE_NOTE,
            },
            "most_reproduced": [{**e, "max_containment": round6(e["max_containment"])} for e in top_items[: cfg.top_evidence]],
        },
        "offsets": _offsets_note(keep_text),
        "candidates": dict(sorted(result.candidates.items())),
        "miss_probability": _miss_probability(result),
        "top_evidence": [
            {k: p[k] for k in ("sample_id", "sample_source", "sample_row", "reference_id", "verdict", "evidence_tokens",
                               "verbatim_tokens", "containment", "sample_char_start", "sample_char_end",
                               "reference_token_start", "reference_token_end", "reference_char_start",
                               "reference_char_end")}
            for p in rows[: cfg.top_evidence]
        ],
        "samples": [
            {k: (round6(s[k]) if isinstance(s[k], float) else s[k]) for k in (
                "sample_id", "source", "row", "field", "verdict", "reference_id", "evidence_tokens", "containment",
                "reference_ngram_share")}
            for s in samples
        ],
    }


def write_outputs(result: OutputsResult, out_dir: Path, *, force: bool = False, provenance: dict[str, Any] | None = None,
                  html_pairs: int = DEFAULT_HTML_PAIRS, extract: Extract | None = None,
                  reference_sources: tuple[str, ...] = ()) -> dict[str, Any]:
    """Write matches.parquet, samples.parquet, report.json/md/html, bundle.json and SHA256SUMS atomically.

    ``extract`` reads the audited text of an output record (report.html shows it);
    ``provenance`` and ``html_pairs`` as for ``training.write_audit``.

    Returns:
        The report dict written to report.json.

    Raises:
        OutputExistsError: if ``out_dir`` exists and ``force`` is false.
    """
    with atomic_output_dir(out_dir, force, MARKER) as tmp:
        pairs = _table(result.pairs, PAIR_SCHEMA).sort_by(
            [("sample_source", "ascending"), ("sample_row", "ascending"), ("reference_id", "ascending")])
        pq.write_table(pairs, tmp / "matches.parquet", compression="zstd", write_statistics=False)
        pq.write_table(_table(result.samples, SAMPLE_SCHEMA), tmp / "samples.parquet", compression="zstd",
                       write_statistics=False)
        report = build_report(result, pairs)
        if provenance is not None:
            report["reproduce"] = provenance
        (tmp / "report.json").write_text(dump_json(report), encoding="utf-8")
        write_readable(tmp, report, pairs, html_pairs=html_pairs, extract=extract, reference_sources=reference_sources)
        write_bundle(tmp, report)
    return report


def summary_line(report: dict[str, Any]) -> str:
    """One line for the terminal: how many samples regurgitate, with the interval."""
    c, v, e = report["counts"], report["summary"]["verdicts"], report["estimates"]["samples_regurgitating"]
    low, high = 100 * e["ci_low"], 100 * e["ci_high"]
    return (f"{c['samples_regurgitating']:,} of {c['samples']:,} output samples reproduce "
            f"reference items ({v['verbatim']:,} verbatim, {v['partial']:,} partial, {v['near_verbatim']:,} "
            f"near-verbatim; {low:.1f}% to {high:.1f}% at {100 * e['confidence']:.0f}%), "
            f"{report['counts']['reference_items_reproduced']:,} items reproduced")
