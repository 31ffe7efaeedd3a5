"""The gate's verdict as JUnit XML: one test case per target source, what every CI system reads.

A source's test case fails when the gate fails and the source holds evidence pairs that count;
the failure carries that source's strongest pairs. The suite's properties record the limits,
the index and what was accepted. No timestamps or durations: the same audit gives the same file.

Every untrusted string (paths, ids, error messages) goes through ``escape.xml_text``: characters
XML 1.0 cannot carry are written as visible escapes, so the file always parses.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from provaudit.gate.escape import xml_text
from provaudit.gate.terminal import accepted_summary, shown, source_summary, verdict_line
from provaudit.gate.verdict import SourceVerdict, Verdict

SUITE = "provaudit check"
CLASSNAME = "provaudit.check"
FAILURE_TYPE = "provaudit.evidence"
ERROR_TYPE = "provaudit.error"


def _failure_text(sv: SourceVerdict, show: int) -> str:
    lines = [f"row {p.target_row} (id {xml_text(p.target_id)}) contains {xml_text(p.reference_id)}: containment "
             f"{p.containment:.3f}, Jaccard {p.jaccard:.3f}, {p.verbatim_tokens} verbatim tokens"
             for p in sv.top[:show]]
    if sv.counted > show:
        lines.append(f"... and {sv.counted - show} more pairs")
    return "\n".join(lines) + "\n"


def _properties(v: Verdict) -> list[tuple[str, str]]:
    props = [(r.name, str(r.limit)) for r in v.limits]
    index = v.audit.get("index", {})
    if index:
        props += [("index", xml_text(index["path"])), ("index_fingerprint", xml_text(index["fingerprint"]))]
    if v.baseline is not None:
        props.append(("baseline", xml_text(v.baseline.path)))
    if v.allow is not None:
        props.append(("allow", xml_text(v.allow.path)))
    accepted = accepted_summary(v)
    if accepted:
        props.append(("accepted", accepted))
    return props


def _serialize(root: ET.Element) -> bytes:
    ET.indent(root)
    data: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return data + b"\n"


def render_junit_error(message: str) -> bytes:
    """JUnit XML for a check that could not decide (exit 1: unreadable input, bad index, baseline or
    allow-list): one test case in error, with the message, so the CI's test report says why."""
    counts = {"tests": "1", "failures": "0", "errors": "1", "skipped": "0"}
    root = ET.Element("testsuites", {"name": SUITE, **counts})
    suite = ET.SubElement(root, "testsuite", {"name": SUITE, **counts})
    case = ET.SubElement(suite, "testcase", {"classname": CLASSNAME, "name": "provaudit check"})
    ET.SubElement(case, "error", {"message": xml_text(message), "type": ERROR_TYPE}).text = xml_text(message) + "\n"
    return _serialize(root)


def render_junit(v: Verdict, *, show: int | None = None) -> bytes:
    """JUnit XML (UTF-8, with declaration) for a verdict.

    Args:
        show: Strongest pairs listed in each failing test case (at most, and by default, ``v.show``).
    """
    show = shown(v, show)
    failures = sum(1 for sv in v.sources if sv.failed)
    counts = {"tests": str(len(v.sources)), "failures": str(failures), "errors": "0", "skipped": "0"}
    root = ET.Element("testsuites", {"name": SUITE, **counts})
    suite = ET.SubElement(root, "testsuite", {"name": SUITE, **counts})
    props = ET.SubElement(suite, "properties")
    for name, value in _properties(v):
        ET.SubElement(props, "property", {"name": name, "value": value})
    for sv in v.sources:
        name = xml_text(sv.source)
        case = ET.SubElement(suite, "testcase", {"classname": CLASSNAME, "name": name, "file": name})
        summary = xml_text(source_summary(sv))
        if sv.failed:
            over = "; ".join(r.describe() for r in v.failed_limits)
            failure = ET.SubElement(case, "failure", {"message": f"{summary}; gate over limits: {over}",
                                                      "type": FAILURE_TYPE})
            failure.text = _failure_text(sv, show)
        ET.SubElement(case, "system-out").text = summary + "\n"
    ET.SubElement(suite, "system-out").text = xml_text(verdict_line(v)) + "\n"
    return _serialize(root)
