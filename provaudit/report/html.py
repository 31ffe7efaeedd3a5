"""report.html: one self-contained page (no network) with the headline, plots, evidence and explanations.

Everything from a corpus, an id or a file name is escaped (``common.html``) when the page
is written; the page's only script (``assets/report.js``) sorts, filters and expands rows and
never builds markup from data. A Content-Security-Policy allows that script and the page's
stylesheet by their sha256 and nothing else: no other script, no network, no form, no frame.
"""

from __future__ import annotations

import base64
import hashlib
from functools import lru_cache
from importlib.resources import files
from typing import Any

import numpy as np

from provaudit.fs import arrow

from provaudit.report import content, plots
from provaudit.report.common import GLOSSARY, OUTPUT_GLOSSARY, html, num, ratio
from provaudit.report.evidence import Pair, Side


@lru_cache(maxsize=None)
def asset(name: str) -> str:
    return files("provaudit.report").joinpath("assets", name).read_text(encoding="utf-8")


def _hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii") + "'"


def csp() -> str:
    """The page's Content-Security-Policy: its own script and stylesheet (by hash), inline SVG, nothing else."""
    return (f"default-src 'none'; script-src {_hash(asset('report.js'))}; style-src {_hash(asset('report.css'))}; "
            "img-src data:; base-uri 'none'; form-action 'none'")


def _marked(side: Side) -> str:
    text = side.text or ""
    out, pos = [], 0
    for s, e in side.marks:
        out.append(html(text[pos:s]) + "<mark>" + html(text[s:e]) + "</mark>")
        pos = e
    return "".join(out) + html(text[pos:])


def _side(side: Side, label: str, ident: str, where: str) -> str:
    head = f'<h4>{html(label)}: {html(ident)}</h4><p class="meta">{html(where)}'
    if side.text is None:
        return f'<div class="side">{head}</p><p class="note">No text: {html(side.note)}. Shown by position only.</p></div>'
    cut = "" if side.start == 0 and len(side.text) == side.length else \
        f"; excerpt: characters {side.start:,} to {side.start + len(side.text):,} of {side.length:,}"
    note = f"; {html(side.note)}" if side.note else ""
    return f'<div class="side">{head}{html(cut)}{note}</p><pre>{_marked(side)}</pre></div>'


def _evidence(report: dict[str, Any], pairs: list[Pair], n: int) -> str:
    outputs = report["kind"] == "outputs"
    cols = ["#", "reference item", "output" if outputs else "target record", "verdict" if outputs else "kind",
            "file", "row", "containment"] + ([] if outputs else ["Jaccard"]) + ["shared run (words)"]
    numeric = {"#", "row", "containment", "Jaccard", "shared run (words)"}
    head = "".join(f'<th data-col="{i}" class="{"n" if c in numeric else ""}" title="Sort by {c}">{html(c)}</th>'
                   for i, c in enumerate(cols))
    rows = []
    for i, p in enumerate(pairs, 1):
        cells = [(str(i), str(i)), (p.reference_id, None), (p.target_id, None), (p.label.replace("_", "-"), None),
                 (p.source, None), (str(p.row), str(p.row)), (ratio(p.containment), repr(p.containment))]
        if not outputs:
            cells.append((ratio(p.jaccard), repr(p.jaccard)))
        cells.append((str(p.span_tokens), str(p.span_tokens)))
        tds = []
        for k, (text, v) in enumerate(cells):
            attrs = (f' class="n" data-v="{html(v)}"' if v is not None else "")
            lead = '<button class="toggle" type="button" aria-expanded="false" title="Show the texts">&#9656;</button>' \
                if k == 0 else ""
            tds.append(f"<td{attrs}>{lead}{html(text)}</td>")
        where = f"{p.source}, row {p.row}"
        sides = (_side(p.reference, "Reference item", p.reference_id, "from the reference corpus")
                 + _side(p.target, "Output" if outputs else "Target record", p.target_id, where))
        rows.append(f'<tr class="pair" id="pair-{n}-{i}">{"".join(tds)}</tr><tr class="detail" hidden><td colspan="{len(cols)}">'
                    f'<div class="sides">{sides}</div></td></tr>')
    shown = f"the strongest {len(pairs):,}" if len(pairs) < _total(report) else f"all {len(pairs):,}"
    return (f'<div class="controls"><input type="search" id="filter-{n}" placeholder="Filter by id, file or text" '
            f'aria-label="Filter evidence"><span class="meta"><span id="count-{n}">{len(pairs)}</span> rows shown of '
            f'{shown} evidence pairs ({_total(report):,} in matches.parquet); click a heading to sort, &#9656; to see '
            f'the texts side by side with shared spans highlighted.</span></div>'
            f'<table class="evidence" data-filter="filter-{n}" data-count="count-{n}"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table>')


def _total(report: dict[str, Any]) -> int:
    c = report["counts"]
    return int(c["samples_regurgitating"] if report["kind"] == "outputs" else c["evidence_pairs"])


def _columns(table: arrow.Batches, names: list[str]) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {n: [] for n in names}
    for b in arrow.iter_batches(table, names):
        for n, values in b.to_pydict().items():
            out[n] += values
    return out


def audit_plots(report: dict[str, Any], table: arrow.Batches) -> str:
    """Inline SVG plots of an audit from its matches table (or matches.parquet, read a batch at a time)."""
    if report["kind"] == "outputs":
        cols = _columns(table, ["verdict", "containment", "evidence_tokens"])
        keep = [i for i, v in enumerate(cols["verdict"]) if v != "none"]
        cont = [cols["containment"][i] for i in keep]
        spans = [cols["evidence_tokens"][i] for i in keep]
        per_source = [(i["source"], {"value": i["records_with_matches"] / i["rows_read"] if i["rows_read"] else None})
                      for i in report["inputs"]]
        figs = [plots.histogram("Evidence run length of outputs that reproduce an item", plots.int_bins(spans),
                                "outputs", x_label="words in the longest shared run not in the prompt"),
                plots.histogram("Containment of reproducing pairs", plots.bins_of(cont, _edges(cont)), "pairs",
                                x_label="share of the item found in the output"),
                plots.shares("Share of outputs reproducing an item, per file", per_source)]
        return f'<div class="plots">{"".join(figs)}</div>'
    cont, jac, spans = _evidence_bins(table)
    by_source = report["estimates"]["by_source"]
    figs = [plots.histogram("Containment of evidence pairs", cont, "pairs",
                            x_label="share of the reference item found in the record"),
            plots.histogram("Jaccard of evidence pairs", jac, "pairs",
                            x_label="similarity of the whole texts (1 = same text)"),
            plots.shares("Records containing reference material, per file",
                         [(s, e["target_contamination"]) for s, e in sorted(by_source.items())]),
            plots.histogram("Longest verbatim run of evidence pairs", spans, "pairs",
                            x_label="words shared in order")]
    return f'<div class="plots">{"".join(figs)}</div>'


def _evidence_bins(table: arrow.Batches) -> tuple[list[tuple[str, int]], list[tuple[str, int]],
                                                 list[tuple[str, int]]]:
    """The three histograms of the evidence (unflagged) pairs, in two passes over the matches a batch at
    a time (the bins depend on the smallest containment and the span range): memory does not grow with
    the pairs. The same counts as ``plots.bins_of``/``plots.int_bins`` of every value."""
    names = ["item_flag", "containment", "jaccard", "verbatim_tokens"]
    lo_c, lo_s, hi_s, n = 1.0, 0, 0, 0
    for b in arrow.iter_batches(table, names):
        keep = np.array([not f for f in b.column(0).to_pylist()], dtype=bool)
        if keep.any():
            c, v = arrow.to_numpy(b.column(1), np.float64)[keep], arrow.to_numpy(b.column(3), np.int64)[keep]
            lo_c = min(lo_c, float(c.min())) if n else float(c.min())
            lo_s, hi_s = (min(lo_s, int(v.min())), max(hi_s, int(v.max()))) if n else (int(v.min()), int(v.max()))
            n += int(keep.sum())
    c_edges = _edges([lo_c] if n else [])
    j_edges = [k / 10 for k in range(11)]
    width = max(1, -(-(hi_s - lo_s + 1) // 12))
    c_counts, j_counts = np.zeros(len(c_edges) - 1, np.int64), np.zeros(len(j_edges) - 1, np.int64)
    s_counts = np.zeros((hi_s - lo_s) // width + 1 if n else 0, np.int64)
    for b in arrow.iter_batches(table, names):
        keep = np.array([not f for f in b.column(0).to_pylist()], dtype=bool)
        if not keep.any():
            continue
        c_counts += _binned(arrow.to_numpy(b.column(1), np.float64)[keep], c_edges)
        j_counts += _binned(arrow.to_numpy(b.column(2), np.float64)[keep], j_edges)
        s_counts += np.bincount((arrow.to_numpy(b.column(3), np.int64)[keep] - lo_s) // width,
                                minlength=len(s_counts))
    return ([(f"{c_edges[i]:.2f}", int(k)) for i, k in enumerate(c_counts)],
            [(f"{j_edges[i]:.2f}", int(k)) for i, k in enumerate(j_counts)],
            [(f"{lo_s + i * width}", int(k)) for i, k in enumerate(s_counts)])


def _binned(values: np.ndarray, edges: list[float]) -> np.ndarray:
    """Counts in ``[edges[i], edges[i+1])``, the last bin including its upper edge (``plots.bins_of``)."""
    e = np.asarray(edges, dtype=np.float64)
    i = np.searchsorted(e, values, side="right") - 1
    i = np.where(values == e[-1], len(e) - 2, i)
    ok = (i >= 0) & (i <= len(e) - 2)
    return np.bincount(i[ok], minlength=len(e) - 1)[: len(e) - 1]


def _edges(values: list[float]) -> list[float]:
    lo = min(values, default=0.5)
    start = max(0, int(lo * 20)) / 20
    return [round(start + k * 0.05, 2) for k in range(int(round((1.0 - start) / 0.05)) + 1)] if start < 1 else [0.95, 1.0]


def _table(head: list[str], rows: list[list[str]], numeric: frozenset[int] = frozenset()) -> str:
    th = "".join(f'<th class="{"n" if i in numeric else ""}">{html(h)}</th>' for i, h in enumerate(head))
    body = "".join("<tr>" + "".join(f'<td class="{"n" if i in numeric else ""}">{html(c)}</td>' for i, c in
                                    enumerate(r)) + "</tr>" for r in rows)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def _reproduce(report: dict[str, Any]) -> str:
    r = content.reproduce(report)
    items = "".join(f"<li>{html(k.capitalize())}: <code>{html(r[k])}</code></li>" if k == "command" else
                    f"<li>{html(k.capitalize())}: {html(r[k])}</li>" for k in
                    ("command", "date", "versions", "index", "parameters"))
    inputs = [[i["source"], i["sha256"] or "none (hub dataset)", num(i["rows_read"]), num(sum(i["rows_skipped"].values()))]
              for i in report["inputs"]]
    return (f"<ul>{items}</ul>{_table(['input', 'sha256', 'records read', 'records skipped'], inputs, frozenset({2, 3}))}"
            "<p><code>provaudit verify OUT</code> checks every file of this output against its manifest; "
            "<code>provaudit verify OUT --rerun</code> runs the command again and compares the figures.</p>")


def audit_section(report: dict[str, Any], table: arrow.Batches, pairs: list[Pair], n: int) -> str:
    """One audit's section: headline, figures, plots, problems, evidence, how sure, how to reproduce."""
    out = [f'<section id="audit-{n}"><h2>{html(content.title(report))}</h2>',
           f'<p class="headline" data-headline>{html(content.headline(report))}</p>',
           "<h3>Main figures</h3>",
           _table(["figure", "value", f"{100 * report['parameters']['confidence']:g}% interval", "how it was measured"],
                  [list(f) for f in content.figures(report)], frozenset({1}))]
    probs, complete = content.problems(report), content.all_read(report)
    if probs or not complete:
        lead = "" if complete else f"<strong>{html(content.NOT_ALL_READ)}</strong>"
        out.append(f'<div class="warn">{lead}<ul>' + "".join(f"<li>{html(p)}</li>" for p in probs) + "</ul></div>")
    out += ["<h3>Plots</h3>", audit_plots(report, table), "<h3>Evidence, strongest first</h3>",
            _evidence(report, pairs, n)]
    if report["kind"] == "outputs":
        rules = report["verdict_rules"]
        out.append("<h3>Verdict rules</h3><ul>" + "".join(
            f"<li>{html(k.replace('_', '-'))}: {html(rules[k])}</li>" for k in
            ("evidence_tokens", "span_floor", "verbatim", "partial", "near_verbatim", "none")) + "</ul>")
    out += ["<h3>How sure</h3><ul>" + "".join(f"<li>{html(s)}</li>" for s in content.how_sure(report)) + "</ul>",
            "<h3>How to reproduce</h3>", _reproduce(report), "</section>"]
    return "".join(out)


def render(audits: list[tuple[dict[str, Any], arrow.Batches, list[Pair]]]) -> str:
    """report.html for one audit, or one page for several (a training and a model-output audit)."""
    kinds = {r["kind"] for r, _, _ in audits}
    title = content.title(audits[0][0]) if len(audits) == 1 else "Evidence report"
    terms = GLOSSARY + (OUTPUT_GLOSSARY if "outputs" in kinds else ())
    nav = "".join(f'<a href="#audit-{n}">{html(content.title(r))}</a>' for n, (r, _, _) in enumerate(audits))
    summary = "" if len(audits) == 1 else "<ul>" + "".join(
        f"<li><strong>{html(content.title(r))}</strong>: {html(content.headline(r))}</li>" for r, _, _ in audits) + "</ul>"
    body = "".join(audit_section(r, t, p, n) for n, (r, t, p) in enumerate(audits))
    glossary = "".join(f"<dt>{html(t)}</dt><dd>{html(d)}</dd>" for t, d in terms)
    return ("<!DOCTYPE html>\n"
            f'<html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{html(csp())}">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<meta name="referrer" content="no-referrer"><title>provaudit: {html(title)}</title>'
            f"<style>{asset('report.css')}</style></head><body>"
            f'<header><h1>provaudit: {html(title)}</h1>{summary}<nav>{nav}<a href="#how-to-read">How to read this</a>'
            f"</nav></header>{body}"
            f'<section id="how-to-read"><h2>How to read this</h2><dl class="glossary">{glossary}</dl></section>'
            f"<script>{asset('report.js')}</script></body></html>\n")

