"""The gate's verdict as terminal lines: one per target source, the strongest pairs when it fails,
and a final verdict line (the only one with ``quiet``). Every untrusted string is escaped.
"""

from __future__ import annotations

from provaudit.gate.escape import terminal_safe
from provaudit.gate.verdict import ALLOWED, BASELINE, EvidencePair, SourceVerdict, Verdict


def pair_line(p: EvidencePair) -> str:
    """``source:row target contains reference (containment, Jaccard, verbatim tokens)``, escaped."""
    return (f"{terminal_safe(p.target_source)}:{p.target_row} {terminal_safe(p.target_id)} contains "
            f"{terminal_safe(p.reference_id)} (containment {p.containment:.3f}, Jaccard {p.jaccard:.3f}, "
            f"{p.verbatim_tokens} verbatim tokens)")


def source_summary(sv: SourceVerdict) -> str:
    """E.g. ``3 pairs in 2 of 500 records, 3 reference items (1 accepted)``."""
    text = (f"{len(sv.pairs)} pairs in {sv.records_with_evidence} of {sv.records:,} records, "
            f"{sv.reference_items} reference items" if sv.pairs else f"no evidence in {sv.records:,} records")
    if sv.accepted:
        text += f" ({sv.accepted} accepted)"
    if sv.error:
        text += f"; not read to its end: {terminal_safe(sv.error)}"
    return text


def accepted_summary(v: Verdict) -> str:
    """``accepted: 3 by baseline, 1 by allow-list`` for what was given, or ``""``."""
    parts = []
    if v.baseline is not None:
        parts.append(f"{v.accepted(BASELINE)} by baseline")
    if v.allow is not None:
        parts.append(f"{v.accepted(ALLOWED)} by allow-list")
    return f"accepted: {', '.join(parts)}" if parts else ""


def verdict_line(v: Verdict) -> str:
    """The final line: PASS or FAIL, the counted figures, what was accepted and each limit."""
    counted = v.counted
    records = len({(p.target_source, p.target_row) for p in counted})
    items = len({p.reference_id for p in counted})
    parts = [f"{len(counted)} evidence pairs in {records} of {v.target_records:,} target records, "
             f"{items} of {v.reference_items:,} reference items"]
    accepted = accepted_summary(v)
    if accepted:
        parts.append(accepted)
    if v.passed:
        parts.append("within limits: " + ", ".join(r.describe() for r in v.limits))
    else:
        parts.append("over limits: " + ", ".join(r.describe() for r in v.failed_limits))
    return f"{'PASS' if v.passed else 'FAIL'}: " + "; ".join(parts)


def render_text(v: Verdict, *, show: int = 10, quiet: bool = False, more_hint: str = "") -> list[str]:
    """The lines ``provaudit check`` prints.

    Args:
        show: Strongest counted pairs listed when the gate fails.
        quiet: Only the verdict line.
        more_hint: Appended to the "... and N more" line (where the full list is).
    """
    if quiet:
        return [verdict_line(v)]
    lines = [f"{'FAIL' if sv.failed else 'ok  '} {terminal_safe(sv.source)}: {source_summary(sv)}" for sv in v.sources]
    if not v.passed:
        counted = v.counted
        lines += [f"  {pair_line(p)}" for p in counted[:show]]
        if len(counted) > show:
            lines.append(f"  ... and {len(counted) - show} more{more_hint}")
    return lines + [verdict_line(v)]
