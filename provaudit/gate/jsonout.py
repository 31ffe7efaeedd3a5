"""The gate's verdict as JSON (``provaudit check --json``): verdict, limits, counts, sources, and every
evidence pair with its status (``counted``, ``baseline`` or ``allowed``).

The file is deterministic (sorted keys, no timestamps) and can itself be a baseline
(``--baseline check.json``): a small text file a repository can keep and review.
"""

from __future__ import annotations

import json
from typing import Any

from provaudit.gate.acceptance import CHECK_FORMAT
from provaudit.gate.verdict import ALLOWED, BASELINE, LimitResult, Verdict

FORMAT_VERSION = 1


def _limit(r: LimitResult) -> dict[str, Any]:
    return {"name": r.name, "limit": r.limit, "value": r.value, "count": r.count, "total": r.total, "passed": r.passed}


def verdict_json(v: Verdict, exit_code: int) -> dict[str, Any]:
    """The JSON document as a dict (see the module docstring)."""
    counted = v.counted
    index = v.audit.get("index", {})
    return {
        "format": CHECK_FORMAT,
        "format_version": FORMAT_VERSION,
        "verdict": "pass" if v.passed else "fail",
        "exit_code": exit_code,
        "failed_limits": [r.name for r in v.failed_limits],
        "limits": [_limit(r) for r in v.limits],
        "index": {k: index[k] for k in ("path", "fingerprint", "manifest_sha256") if k in index},
        "parameters": v.audit.get("parameters", {}),
        "counts": {
            "target_records": v.target_records,
            "reference_items_evidence": v.reference_items,
            "evidence_pairs": len(v.pairs),
            "counted_pairs": len(counted),
            "target_records_with_counted_pairs": len({(p.target_source, p.target_row) for p in counted}),
            "reference_items_counted": len({p.reference_id for p in counted}),
            "accepted_by_baseline": v.accepted(BASELINE),
            "accepted_by_allow": v.accepted(ALLOWED),
        },
        "baseline": None if v.baseline is None else {
            "path": v.baseline.path, "read_from": v.baseline.source, "pairs": len(v.baseline.pairs),
            "accepted": v.accepted(BASELINE)},
        "allow": None if v.allow is None else {
            "path": v.allow.path, "reference_ids": len(v.allow.reference_ids), "pairs": len(v.allow.pairs),
            "accepted": v.accepted(ALLOWED)},
        "sources": [{"source": sv.source, "records": sv.records, "counted_pairs": len(sv.pairs),
                     "records_with_counted_pairs": sv.records_with_evidence, "reference_items": sv.reference_items,
                     "accepted_pairs": sv.accepted, "error": sv.error, "failed": sv.failed} for sv in v.sources],
        "pairs": [{"reference_id": p.reference_id, "target_id": p.target_id, "target_source": p.target_source,
                   "target_row": p.target_row, "containment": p.containment, "jaccard": p.jaccard,
                   "verbatim_tokens": p.verbatim_tokens, "status": status} for p, status in v.pairs],
    }


def render_json(v: Verdict, exit_code: int) -> str:
    """``verdict_json`` serialized: sorted keys, two-space indent, a final newline; non-ASCII escaped."""
    return json.dumps(verdict_json(v, exit_code), indent=2, sort_keys=True, ensure_ascii=True) + "\n"


def render_json_error(message: str) -> str:
    """The JSON of a check that could not decide (exit 1): ``verdict`` is ``"error"``, with the message."""
    doc = {"format": CHECK_FORMAT, "format_version": FORMAT_VERSION, "verdict": "error", "exit_code": 1,
           "error": message}
    return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=True) + "\n"
