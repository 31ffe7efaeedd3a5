"""What every report shares: the versioned header, escaping of untrusted text, numbers for people, plain words.

Corpus text, ids and file names are untrusted. ``visible`` shows control, bidi and other
invisible formatting characters as ``<U+202E>``-style marks (a right-to-left override must not
reorder what a reader sees); ``html`` escapes for element content and attribute values;
``md`` for Markdown table cells and running text. Full precision stays in report.json; these
functions only decide how a person sees a number.

Example:
    >>> html('<script>alert(1)</script>')
    '&lt;script&gt;alert(1)&lt;/script&gt;'
    >>> pct(0.1338333333), pct(0.000094), pct(0.0)
    ('13.4%', '0.0094%', '0%')
"""

from __future__ import annotations

import html as _html
import math
import unicodedata
from typing import Any

from provaudit.fs.hashing import sha256_file
from provaudit.index.format import Index

FORMAT = "provaudit-report"
FORMAT_VERSION = 1
MARKER = ("report.json", FORMAT)  # what marks an audit output directory (fs.atomic.check_output)


def round6(x: float) -> float:
    return float(f"{x:.6g}") if math.isfinite(x) else x


INDEX_INPUTS_LISTED = 1000  # an index built from more files is named by its manifest's sha256, not copied


def report_header(kind: str, idx: Index) -> dict[str, Any]:
    """The fields every report shares: format, kind, versions, and the index audited against (its inputs
    listed up to ``INDEX_INPUTS_LISTED``; more are counted: the index's manifest.json, pinned by
    ``manifest_sha256``, lists them; 100,000 of them made a 1-record audit's report.json 35 MB)."""
    inputs = idx.manifest.get("inputs", [])
    header = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "kind": kind,
        "versions": idx.manifest.get("versions", {}),
        "index": {
            "path": idx.location,
            "fingerprint": idx.manifest["fingerprint"],
            "manifest_sha256": sha256_file(idx.path / "manifest.json"),
            "config": idx.manifest["config"],
            "items": idx.live_items,
            "inputs": inputs,
        },
    }
    if len(inputs) > INDEX_INPUTS_LISTED:
        del header["index"]["inputs"]
        header["index"]["inputs_count"] = len(inputs)
    return header


# Characters that change how text around them is displayed without being seen themselves.
_BIDI = set("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_INVISIBLE = set("\u200b\u200c\u200d\u2060\ufeff\u2028\u2029")


def _hidden(ch: str) -> bool:
    cp = ord(ch)
    if ch in "\n\t":
        return False
    return cp < 32 or 127 <= cp < 160 or ch in _BIDI or ch in _INVISIBLE or unicodedata.category(ch) in ("Cs", "Co")


def visible(text: object, *, newlines: bool = True) -> str:
    """``text`` with control, bidi and invisible characters shown as ``‹U+XXXX›`` marks.

    Args:
        newlines: Keep newlines and tabs as they are (False: show them as marks too).
    """
    s = str(text)
    if s.isprintable() and (newlines or ("\n" not in s and "\t" not in s)):
        return s
    return "".join(f"\u2039U+{ord(ch):04X}\u203a" if _hidden(ch) or (not newlines and ch in "\n\t") else ch for ch in s)


def html(text: object) -> str:
    """Escape untrusted text for HTML element content or a quoted attribute value."""
    return _html.escape(visible(text), quote=True)


def md(text: object) -> str:
    """Escape untrusted text for Markdown, safe in a table cell (no pipe, newline or markup survives)."""
    s = visible(str(text).replace("\t", " "), newlines=False)
    out = []
    for ch in s:
        if ch in "\\`*_{}[]<>#+!|~&":
            out.append("\\" + ch)
        else:
            out.append(ch)
    return "".join(out)


def md_code(text: object) -> str:
    """Untrusted text as an inline Markdown code span (backticks inside are replaced)."""
    return "`" + visible(text, newlines=False).replace("`", "'") + "`"


def missing(x: Any) -> bool:
    return x is None or (isinstance(x, float) and not math.isfinite(x))


def pct(x: Any) -> str:
    """A share as a percentage with digits a person needs: 13.4%, 2.73%, 0.0094%, 0%, 100%."""
    if missing(x):
        return "n/a"
    v = 100.0 * float(x)
    if v == 0.0 or v == 100.0:
        return f"{v:.0f}%"
    if abs(v) >= 10:
        text = f"{v:.1f}"
    elif abs(v) >= 1:
        text = f"{v:.2f}"
    else:
        digits = max(2, 1 - math.floor(math.log10(abs(v))))
        text = f"{v:.{digits}f}"
    if float(text) >= 100.0:  # never round to a value that reads as exact
        return ">99.9%"
    if abs(v) < 0.0001:
        return "<0.0001%"
    return text + "%"


def num(x: Any) -> str:
    """An integer with thousands separators; a float with three significant digits."""
    if missing(x):
        return "n/a"
    if isinstance(x, int):
        return f"{x:,}"
    return f"{float(x):.3g}"


def ratio(x: Any) -> str:
    """A similarity in [0, 1] with two decimals (1.00 only when exactly 1)."""
    if missing(x):
        return "n/a"
    v = float(x)
    text = f"{v:.2f}"
    return "0.99" if text == "1.00" and v < 1.0 else text


def is_exact(e: dict[str, Any]) -> bool:
    """True when an estimate is a count over everything (no interval to give)."""
    return bool(e.get("ci_low") == e.get("ci_high") == e.get("value")) or str(e.get("method", "")).startswith("exact")


def interval(e: dict[str, Any]) -> str:
    """``"11.4% to 14.0%"``, or an empty string for an exact count."""
    if is_exact(e) or missing(e.get("ci_low")):
        return ""
    return f"{pct(e['ci_low'])} to {pct(e['ci_high'])}"


# How each estimator named in report.json reads to a person (prefix match, first wins).
_METHODS = (
    ("exact", "counted exactly: every record was read"),
    ("wilson (finite population)", "sample estimate; Wilson interval, corrected for the finite number of records"),
    ("wilson", "sample estimate; Wilson interval"),
    ("ratio", "sample estimate of a ratio of sums (tokens covered / tokens read); normal interval"),
    ("observed lower bound", "lower bound: items found in a sample; the true share can be higher"),
    ("newcombe", "difference of two shares; Newcombe interval"),
    ("cluster", "sample of whole files; interval allows for files differing from each other"),
)


def method(name: object) -> str:
    """A plain-language description of an estimator name from report.json."""
    s = str(name)
    for prefix, text in _METHODS:
        if s.startswith(prefix):
            return text
    return s


GLOSSARY: tuple[tuple[str, str], ...] = (
    ("Reference item", "One document of the corpus you indexed (a post, an article, a test question)."),
    ("Target record", "One document of the data audited: a row of a training shard, or one model output."),
    ("Shingle", "A run of consecutive words (or characters) of fixed length, e.g. 3 words. Texts are compared on "
                "their sets of shingles, after lower-casing and removing punctuation."),
    ("Containment", "Share of a reference item's shingles found in the target record. 1.00 means every phrase of "
                    "the item appears in the record, even if the record is much longer (a quote inside a page)."),
    ("Jaccard", "Shared shingles divided by all distinct shingles of both texts. Near 1.00 only when the two "
                "texts are near-copies of each other."),
    ("Verbatim span", "The longest run of words the two texts share in the same order."),
    ("Verified", "Every pair shown was checked on the full shingle sets, not on a sketch: the figures are exact "
                 "for the pairs found."),
    ("Interval", "When only a sample was read, the true share lies in the interval with the stated confidence "
                 "(95%: in 95 of 100 such audits the interval contains it). A full scan counts exactly: no "
                 "interval."),
    ("Miss probability", "The search proposes candidate pairs before verifying them. This is the largest chance "
                         "that a pair right at the reporting threshold is never proposed; pairs copied more "
                         "completely are even less likely to be missed. It covers the search only: verified "
                         "figures are exact."),
    ("Negative control", "Text of the same kind that cannot be in the target, audited the same way. Matches on it "
                         "measure chance overlap (common phrases); the excess of the reference over the control "
                         "is the evidence."),
    ("Flagged item", "Items too short to be evidence, or matched in very many records (boilerplate); listed in "
                     "matches.parquet but not counted."),
)

OUTPUT_GLOSSARY: tuple[tuple[str, str], ...] = (
    ("Verbatim", "The output reproduces a long run of an item's words in order (at least the verbatim-span "
                 "length, or the whole item if shorter)."),
    ("Partial", "The output reproduces a run covering a large share of the item."),
    ("Near-verbatim", "Most of the item's phrases appear in the output, though not as one run."),
    ("Evidence tokens", "Words of the longest shared run that the prompt did not already contain: a model "
                        "repeating its prompt is not evidence."),
)
