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
    text = (f"{sv.counted} pairs in {sv.records_with_evidence} of {sv.records:,} records, "
            f"{sv.reference_items} reference items" if sv.counted else f"no evidence in {sv.records:,} records")
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
    parts = [f"{v.counted_pairs} evidence pairs in {v.records_with_evidence} of {v.target_records:,} target records, "
             f"{v.items_with_evidence} of {v.reference_items:,} reference items"]
    accepted = accepted_summary(v)
    if accepted:
        parts.append(accepted)
    if v.passed:
        parts.append("within limits: " + ", ".join(r.describe() for r in v.limits))
    else:
        parts.append("over limits: " + ", ".join(r.describe() for r in v.failed_limits))
    return f"{'PASS' if v.passed else 'FAIL'}: " + "; ".join(parts)


def shown(v: Verdict, show: int | None) -> int:
    """``show``, or the verdict's when None; a verdict keeps only ``v.show`` pairs to list.

    Raises:
        ValueError: ``show`` is over ``v.show`` (give ``evaluate``/``api.check`` that ``show``).
    """
    if show is None:
        return v.show
    if show > v.show:
        raise ValueError(f"the verdict kept the {v.show} strongest pairs, not {show}: evaluate with show={show}")
    return show


def render_text(v: Verdict, *, show: int | None = None, quiet: bool = False, more_hint: str = "") -> list[str]:
    """The lines ``provaudit check`` prints.

    Args:
        show: Strongest counted pairs listed when the gate fails (at most, and by default, ``v.show``).
        quiet: Only the verdict line.
        more_hint: Appended to the "... and N more" line (where the full list is).
    """
    if quiet:
        return [verdict_line(v)]
    lines = [f"{'FAIL' if sv.failed else 'ok  '} {terminal_safe(sv.source)}: {source_summary(sv)}" for sv in v.sources]
    if not v.passed:
        show = shown(v, show)
        lines += [f"  {pair_line(p)}" for p in v.top[:show]]
        if v.counted_pairs > show:
            lines.append(f"  ... and {v.counted_pairs - show} more{more_hint}")
    return lines + [verdict_line(v)]
