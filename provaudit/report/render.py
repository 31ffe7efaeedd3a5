"""The readable reports: report.md and report.html of an audit, and one report of several saved audits.

``write_readable`` is called inside an audit's atomic output directory, after report.json and
matches.parquet; ``render_saved`` re-renders from saved output directories without rerunning
anything (``provaudit report``). Both go through the same code, so a re-rendered report equals
the one the audit wrote while the audited files are unchanged.

Example:
    >>> text = render_saved([Path("audit-out"), Path("outputs-out")], "html")  # doctest: +SKIP
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa

from provaudit.fs import arrow
from provaudit.fs.integrity import load_report
from provaudit.report import html, markdown
from provaudit.read.records import Extract
from provaudit.report.evidence import attach_texts, top_pairs

DEFAULT_HTML_PAIRS = 300  # evidence pairs embedded in report.html; the full list stays in matches.parquet
FORMATS = ("html", "md")


def _pairs(report: dict[str, Any], table: arrow.Batches, html_pairs: int, extract: Extract | None,
           reference_sources: Iterable[str]) -> list[Any]:
    limit = max(html_pairs, int(report["parameters"]["top_evidence"]))
    pairs = top_pairs(report, table, limit)
    attach_texts(pairs, report, extract=extract, reference_sources=reference_sources)
    return pairs


def write_readable(out: Path, report: dict[str, Any], table: arrow.Batches, *, html_pairs: int = DEFAULT_HTML_PAIRS,
                   extract: Extract | None = None, reference_sources: Iterable[str] = ()) -> None:
    """Write report.md and report.html of one audit into ``out``.

    Args:
        report: The report.json content.
        table: The audit's matches table.
        html_pairs: Strongest pairs embedded in report.html (report.md lists ``--top`` of them).
        extract: For model-output audits: the audited text of a record (completion, assistant turns).
        reference_sources: Where to read reference text when the index holds none.
    """
    pairs = _pairs(report, table, html_pairs, extract, reference_sources)
    top = int(report["parameters"]["top_evidence"])
    (out / "report.md").write_text(markdown.render([(report, pairs[:top])]), encoding="utf-8")
    (out / "report.html").write_text(html.render([(report, table, pairs[:html_pairs])]), encoding="utf-8")


def load_saved(out_dir: Path) -> tuple[dict[str, Any], pa.Table]:
    """report.json and matches.parquet of a saved audit output, after checking every file's sha256.

    Raises:
        OutputFormatError: if a file of the output is missing, changed or unexpected.
    """
    report = load_report(out_dir)
    return report, arrow.read_table(out_dir / "matches.parquet")


def render_saved(out_dirs: Sequence[Path], fmt: str = "html", *, html_pairs: int = DEFAULT_HTML_PAIRS,
                 extract: Callable[[str], Extract] | None = None, reference_sources: Iterable[str] = ()) -> str:
    """One report (``"html"`` or ``"md"``) of one or several saved audits, training audits first.

    Args:
        extract: Given an outputs audit's text field, the function giving a record's audited text.

    Raises:
        OutputFormatError: if an output directory fails its checks.
    """
    saved = [load_saved(d) for d in out_dirs]
    saved.sort(key=lambda s: s[0]["kind"] == "outputs")
    sources = list(reference_sources)
    audits = []
    for r, t in saved:
        ex = extract(r["parameters"].get("text_field") or "text") if extract and r["kind"] == "outputs" else None
        audits.append((r, t, _pairs(r, t, html_pairs, ex, sources)))
    if fmt == "md":
        return markdown.render([(r, p[: int(r["parameters"]["top_evidence"])]) for r, _, p in audits])
    return html.render([(r, t, p[:html_pairs]) for r, t, p in audits])


def dump_json(report: dict[str, Any]) -> str:
    """report.json text: sorted keys, UTF-8, no NaN."""
    return json.dumps(report, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n"
