"""report.md: the headline, figures rounded for people, top evidence with excerpts, how to read and reproduce.

Every string from a corpus, an id or a file name goes through ``common.md`` (or ``md_code``):
no Markdown table breaker, link, HTML tag or control character survives. One or several
audits (a training audit and a model-output audit) render into one document.
"""

from __future__ import annotations

from typing import Any

from provaudit.report import content
from provaudit.report.common import GLOSSARY, OUTPUT_GLOSSARY, md, md_code, num, ratio
from provaudit.report.evidence import Pair, Side

EXCERPT_PAIRS = 5  # pairs shown with their text
EXCERPT_CHARS = 700


def _quote(side: Side, label: str) -> list[str]:
    """A side of a pair as a blockquote, shared spans in bold (each line escaped on its own)."""
    if side.text is None:
        return [f"*{label}: no text ({md(side.note)}).*", ""]
    text, marks = side.text[:EXCERPT_CHARS], side.marks
    where = "" if side.start == 0 and len(text) == side.length else \
        f" (characters {side.start:,} to {side.start + len(text):,} of {side.length:,})"
    out, pos = [], 0
    for s, e in [(s, min(e, len(text))) for s, e in marks if s < len(text)] + [(len(text), len(text))]:
        out.append(_lines(text[pos:s], False))
        if e > s:
            out.append(_lines(text[s:e], True))
        pos = e
    body = "".join(out) + ("…" if len(text) < len(side.text) or side.start + len(side.text) < side.length else "")
    note = f" {md(side.note)}" if side.note else ""
    return [f"*{label}*{where}:{note}", "", *("> " + line for line in body.split("\n")), ""]


def _lines(text: str, bold: bool) -> str:
    parts = [md(line) for line in text.split("\n")]
    if bold:
        parts = [f"**{p.strip()}**" if p.strip() else p for p in parts]
    return "\n".join(parts)


def _evidence(report: dict[str, Any], pairs: list[Pair], h: str) -> list[str]:
    outputs = report["kind"] == "outputs"
    lines = [f"{h} Strongest evidence", ""]
    if not pairs:
        return lines + ["No evidence pairs.", ""]
    head = "| # | reference item | " + ("output | verdict" if outputs else "target record | kind") + \
        " | where (file:row) | containment | " + ("" if outputs else "Jaccard | ") + "shared run (words) |"
    lines += [head, "|" + " --- |" * (head.count("|") - 1)]
    for i, p in enumerate(pairs, 1):
        jac = "" if outputs else f"{ratio(p.jaccard)} | "
        lines.append(f"| {i} | {md(p.reference_id)} | {md(p.target_id)} | {p.label.replace('_', '-')} | "
                     f"{md(p.source)}:{p.row} | {ratio(p.containment)} | {jac}{p.span_tokens} |")
    lines.append("")
    for i, p in enumerate(pairs[:EXCERPT_PAIRS], 1):
        lines += [f"**{i}. {md(p.reference_id)} in {md(p.target_id)}** ({md(p.source)}, row {p.row}); shared "
                  "spans in bold.", ""]
        lines += _quote(p.reference, "Reference item") + _quote(p.target, "Output" if outputs else "Target record")
    return lines


def _figures(report: dict[str, Any]) -> list[str]:
    conf = f"{100 * report['parameters']['confidence']:g}%"
    lines = [f"| figure | value | {conf} interval | how it was measured |", "| --- | --- | --- | --- |"]
    lines += [f"| {md(name)} | {md(value)} | {md(iv)} | {md(how)} |" for name, value, iv, how in content.figures(report)]
    return lines + [""]


def _counts(report: dict[str, Any]) -> str:
    c = report["counts"]
    if report["kind"] == "outputs":
        return (f"Counts: {num(c['samples'])} outputs read ({num(c['skipped_records'])} skipped); "
                f"{num(c['pairs'])} output/item pairs verified.")
    return (f"Counts: {num(c['reference_items_found'])} reference items found in "
            f"{num(c['target_records_with_matches'])} of {num(c['target_records'])} records; "
            f"{num(c['evidence_pairs'])} evidence pairs (of {num(c['pairs'])} verified pairs).")


def _outputs_extra(report: dict[str, Any], h: str) -> list[str]:
    s, rules = report["summary"], report["verdict_rules"]
    sp = s["evidence_span_tokens"]
    lines = [f"{h} Verdicts", "", "| verbatim | partial | near-verbatim | none |", "| --- | --- | --- | --- |",
             "| " + " | ".join(num(s["verdicts"][k]) for k in ("verbatim", "partial", "near_verbatim", "none")) + " |",
             "", f"Evidence runs (words not in the prompt): shortest {sp['min']}, median {sp['median']}, "
                 f"longest {sp['max']}.", "", "Rules:", ""]
    lines += [f"- {k.replace('_', '-')}: {md(rules[k])}" for k in
              ("evidence_tokens", "span_floor", "verbatim", "partial", "near_verbatim", "none")]
    lines += ["", f"{h} Most reproduced reference items", "",
              "| reference item | outputs | verbatim | longest evidence run | highest containment |",
              "| --- | --- | --- | --- | --- |"]
    lines += [f"| {md(i['reference_id'])} | {i['samples']} | {i['verbatim_samples']} | {i['max_evidence_tokens']} | "
              f"{ratio(i['max_containment'])} |" for i in s["most_reproduced"]]
    return lines + [""]


def _reproduce(report: dict[str, Any], h: str) -> list[str]:
    r = content.reproduce(report)
    lines = [f"{h} How to reproduce", "",
             f"- Command: {md_code(r['command'])}", f"- Date: {md(r['date'])}", f"- Versions: {md(r['versions'])}",
             f"- Index: {md(r['index'])}", f"- Parameters: {md(r['parameters'])}", "",
             "| input | sha256 | records read | records skipped |", "| --- | --- | --- | --- |"]
    for i in report["inputs"]:
        skipped = sum(i["rows_skipped"].values())
        lines.append(f"| {md(i['source'])} | {md_code(i['sha256'] or 'none (hub dataset)')} | {num(i['rows_read'])} "
                     f"| {num(skipped)} |")
    lines += ["", "`provaudit verify OUT` checks every file of this output against its manifest; "
                  "`provaudit verify OUT --rerun` runs the command again and compares the figures.", ""]
    return lines


def audit_section(report: dict[str, Any], pairs: list[Pair], level: int = 1) -> list[str]:
    """One audit: headline, figures, problems, evidence, how sure, how to reproduce."""
    h, h2 = "#" * level, "#" * (level + 1)
    lines = [f"{h} {content.title(report)}", "", f"**{md(content.headline(report))}**", "", f"{h2} Main figures", "",
             *_figures(report), _counts(report), ""]
    probs, complete = content.problems(report), content.all_read(report)
    lines += [f"{h2} Input problems", ""]
    if complete:
        lines += ["None: every record with text was read in full.", ""]
    else:
        lines += [f"**{content.NOT_ALL_READ}**", ""]
    lines += [*(f"- {md(p)}" for p in probs), ""] if probs else []
    if report["kind"] == "outputs":
        lines += _outputs_extra(report, h2)
    lines += _evidence(report, pairs, h2)
    lines += [f"{h2} How sure", "", *(f"- {md(s)}" for s in content.how_sure(report)), ""]
    lines += _reproduce(report, h2)
    return lines


def glossary(kinds: set[str], level: int = 2) -> list[str]:
    terms = GLOSSARY + (OUTPUT_GLOSSARY if "outputs" in kinds else ())
    return ["#" * level + " How to read this", "", *(f"- **{t}**: {md(d)}" for t, d in terms), ""]


def render(audits: list[tuple[dict[str, Any], list[Pair]]]) -> str:
    """report.md for one audit, or one document for several (e.g. a training and a model-output audit)."""
    kinds = {r["kind"] for r, _ in audits}
    if len(audits) == 1:
        lines = audit_section(*audits[0]) + glossary(kinds)
    else:
        lines = ["# provaudit evidence report", "", *(f"- **{content.title(r)}**: {md(content.headline(r))}"
                                                    for r, _ in audits), ""]
        for report, pairs in audits:
            lines += audit_section(report, pairs, 2)
        lines += glossary(kinds)
    return "\n".join(lines).rstrip("\n") + "\n"

