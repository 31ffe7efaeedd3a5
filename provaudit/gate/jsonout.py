"""The gate's verdict as JSON (``provaudit check --json``): verdict, limits, counts, sources, and every
evidence pair with its status (``counted``, ``baseline`` or ``allowed``).

The file is deterministic (sorted keys, two-space indent, no timestamps) and can itself be a
baseline (``--baseline check.json``): a small text file a repository can keep and review.
It is written as a stream (``write_json``): the pairs are read again from the audit's spill
(``Verdict.pairs()``) and written one at a time, so memory does not grow with them.

Format version 2 lists ``pairs`` in the audit's order (target source by name, target row,
reference id: as matches.parquet); version 1 listed them strongest first, which needs every
pair in memory at once. The strongest pairs are in the terminal output and the JUnit file.
"""

from __future__ import annotations

import json
import math
from json.encoder import encode_basestring_ascii as _string
from typing import Any, TextIO

from provaudit.gate.acceptance import CHECK_FORMAT
from provaudit.gate.verdict import ALLOWED, BASELINE, EvidencePair, LimitResult, Verdict

FORMAT_VERSION = 2
_PAIRS_SLOT = '\n  "pairs": [],\n'  # where the pairs go in the document dumped without them (keys sorted)
_PAIR = ('    {{\n      "containment": {},\n      "jaccard": {},\n      "reference_id": {},\n'
         '      "status": {},\n      "target_id": {},\n      "target_row": {},\n      "target_source": {},\n'
         '      "verbatim_tokens": {}\n    }}')


def _limit(r: LimitResult) -> dict[str, Any]:
    return {"name": r.name, "limit": r.limit, "value": r.value, "count": r.count, "total": r.total, "passed": r.passed}


def verdict_head(v: Verdict, exit_code: int) -> dict[str, Any]:
    """The JSON document as a dict, with ``pairs`` left empty (``write_json`` streams them)."""
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
            "evidence_pairs": v.evidence_pairs,
            "counted_pairs": v.counted_pairs,
            "target_records_with_counted_pairs": v.records_with_evidence,
            "reference_items_counted": v.items_with_evidence,
            "accepted_by_baseline": v.accepted(BASELINE),
            "accepted_by_allow": v.accepted(ALLOWED),
        },
        "baseline": None if v.baseline is None else {
            "path": v.baseline.path, "read_from": v.baseline.source, "pairs": len(v.baseline.pairs),
            "accepted": v.accepted(BASELINE)},
        "allow": None if v.allow is None else {
            "path": v.allow.path, "reference_ids": len(v.allow.reference_ids), "pairs": len(v.allow.pairs),
            "accepted": v.accepted(ALLOWED)},
        "sources": [{"source": sv.source, "records": sv.records, "counted_pairs": sv.counted,
                     "records_with_counted_pairs": sv.records_with_evidence, "reference_items": sv.reference_items,
                     "accepted_pairs": sv.accepted, "error": sv.error, "failed": sv.failed} for sv in v.sources],
        "pairs": [],
    }


def _number(x: float | int) -> str:
    """As ``json.dumps`` writes a number (``float.__repr__`` for finite floats), without its call per number."""
    return repr(x) if type(x) in (float, int) and math.isfinite(x) else json.dumps(x)


def pair_json(p: EvidencePair, status: str) -> str:
    """One entry of ``pairs`` as ``json.dumps(..., indent=2, sort_keys=True)`` writes it inside the document."""
    return _PAIR.format(_number(p.containment), _number(p.jaccard), _string(p.reference_id), _string(status),
                        _string(p.target_id), int(p.target_row), _string(p.target_source), int(p.verbatim_tokens))


def write_json(v: Verdict, exit_code: int, out: TextIO) -> None:
    """Write the document to ``out``: sorted keys, two-space indent, a final newline; non-ASCII
    escaped. The pairs come from ``v.pairs()``: read again and written one at a time."""
    head = json.dumps(verdict_head(v, exit_code), indent=2, sort_keys=True, ensure_ascii=True)
    before, after = head.split(_PAIRS_SLOT)  # top-level keys are unique: the slot occurs once
    out.write(before + '\n  "pairs": [')
    sep = "\n"
    for p, status in v.pairs():
        out.write(sep + pair_json(p, status))
        sep = ",\n"
    out.write(("]" if sep == "\n" else "\n  ]") + ",\n" + after + "\n")


def render_json_error(message: str) -> str:
    """The JSON of a check that could not decide (exit 1): ``verdict`` is ``"error"``, with the message."""
    doc = {"format": CHECK_FORMAT, "format_version": FORMAT_VERSION, "verdict": "error", "exit_code": 1,
           "error": message}
    return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=True) + "\n"
