"""The gate's verdict as GitHub Actions workflow commands: an annotation per record holding evidence
that counts (errors when the gate fails, warnings when within limits), up to a cap, then a summary.

GitHub shows at most 10 error and 10 warning annotations per step, so the default cap leaves
room for the summary. ``line=`` is given for line-per-record files (``.jsonl``, ``.ndjson``,
``.txt``), whose rows are their lines; other formats name the row in the message.
Untrusted text goes through ``terminal_safe`` and then GitHub's own escaping (``%``, CR, LF,
and ``:``/``,`` in properties), so no id can end a command or start another.
"""

from __future__ import annotations

import os

from provaudit.gate.escape import terminal_safe, workflow_data, workflow_property
from provaudit.gate.verdict import ANNOTATION_PAIRS as ITEMS_PER_ANNOTATION
from provaudit.gate.verdict import RecordEvidence, Verdict

DEFAULT_MAX_ANNOTATIONS = 9
LINE_SUFFIXES = (".jsonl", ".ndjson", ".txt")


def command(kind: str, message: str, **props: str) -> str:
    """One workflow command line, e.g. ``::error file=a.jsonl,line=3,title=T::message``."""
    # property values are file names from the corpus too: no control or bidi character reaches the log raw
    head = ",".join(f"{k}={workflow_property(terminal_safe(v))}" for k, v in props.items())
    return f"::{kind}{' ' + head if head else ''}::{workflow_data(message)}"


def workspace_path(source: str, workspace: str | None) -> str:
    """``source`` relative to the repository root (``$GITHUB_WORKSPACE``), which annotations need
    when provaudit runs in a subdirectory or is given absolute paths; as given otherwise."""
    if not workspace or source.startswith("hf:"):
        return source
    rel = os.path.relpath(os.path.abspath(source), os.path.abspath(workspace))
    return source if rel.startswith("..") else rel


def _record_annotation(kind: str, record: RecordEvidence, workspace: str | None) -> str:
    pairs = record.pairs
    first = pairs[0]
    props = {"file": workspace_path(first.target_source, workspace)}
    row = f"row {first.target_row}"
    if first.target_source.endswith(LINE_SUFFIXES):
        props["line"] = str(first.target_row + 1)
        row = f"line {first.target_row + 1}"
    props["title"] = "provaudit: reference material"
    items = ", ".join(f"{terminal_safe(p.reference_id)} (containment {p.containment:.3f}, Jaccard {p.jaccard:.3f}, "
                      f"{p.verbatim_tokens} verbatim tokens)" for p in pairs[:ITEMS_PER_ANNOTATION])
    extra = record.count - ITEMS_PER_ANNOTATION
    more = f" and {extra} more items" if extra > 0 else ""
    return command(kind, f"Record {terminal_safe(first.target_id)} ({row}) contains {items}{more}", **props)


def render_github(v: Verdict, verdict_line: str, *, max_annotations: int = DEFAULT_MAX_ANNOTATIONS,
                  workspace: str | None = None) -> list[str]:
    """Annotation lines for the records with counted evidence, strongest first, then the summary.

    Args:
        verdict_line: The final verdict line (as the terminal shows it).
        max_annotations: Most record annotations; the summary says how many were left out.
        workspace: The repository root (``$GITHUB_WORKSPACE``): file paths are made relative to it.
    """
    records = v.evidence_records  # in order of their strongest pair
    kind = "notice" if v.passed else "error"
    lines = [_record_annotation("warning" if v.passed else "error", record, workspace)
             for record in records[:max_annotations]]
    summary = verdict_line
    if len(records) > max_annotations:
        summary += f" ({len(records) - max_annotations} more records not annotated)"
    return lines + [command(kind, summary, title="provaudit check")]
