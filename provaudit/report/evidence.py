"""Evidence pairs a person can read: the strongest pairs, their texts, and the spans the texts share.

Target text is read back from the audited files by location (source, row); a file whose
sha256 differs from the one the audit recorded is not read (its text could be anything
now), and the report says so. Reference text comes from the index when it was built with
``--keep-text``, else from the reference sources its manifest records (checked by sha256),
else from sources the user gives (``provaudit report --reference-text``; matched by id, and
marked as not verified unless their sha256 equals the manifest's). Without text, pairs are
shown by position only.

Shared spans are found on word n-grams of the displayed text (the index's n-gram size):
every word inside an n-gram that the other text also contains is highlighted. This is
for display; the figures of a pair come from the audit's exact verification.
"""

from __future__ import annotations

import heapq
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from provaudit.config import DEFAULT_MAX_RECORD_CHARS
from provaudit.errors import ProvauditError
from provaudit.fs import arrow
from provaudit.fs.hashing import sha256_file
from provaudit.read.records import Extract, ReadStats
from provaudit.read.sources import expand_sources, read_source
from provaudit.text.shingle import normalize

EXCERPT_CHARS = 2400  # characters of each side shown around the shared spans
SCAN_CHARS = 200_000  # longer texts are searched for shared spans in their first SCAN_CHARS only
REFERENCE_READ_BYTES = 256 << 20  # reference files read back for a report's excerpts: at most this many bytes in all
RANK = {"verbatim": 3, "partial": 2, "near_verbatim": 1, "none": 0}
_WORD = re.compile(r"\S+")


@dataclass
class Side:
    """One text of a pair as shown: an excerpt with marked spans, or why there is no text."""

    text: str | None = None
    marks: list[tuple[int, int]] = field(default_factory=list)  # [start, end) in ``text``
    start: int = 0  # offset of the excerpt in the full text
    length: int = 0  # characters of the full text
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "marks": [list(m) for m in self.marks], "start": self.start,
                "length": self.length, "note": self.note}


@dataclass
class Pair:
    """One evidence pair in the shape every renderer uses (training and model-output audits alike)."""

    reference_id: str
    reference_item: int | None  # its number in the audited index (None in outputs written before it was recorded)
    target_id: str
    source: str
    row: int
    containment: float
    jaccard: float | None
    span_tokens: int
    label: str  # near-copy / contained, or the output verdict
    reference: Side = field(default_factory=Side)
    target: Side = field(default_factory=Side)


def top_pairs(report: dict[str, Any], table: arrow.Batches, limit: int) -> list[Pair]:
    """The ``limit`` strongest unflagged pairs of an audit's matches.parquet, strongest first (read a
    batch at a time: the memory follows ``limit``, not the pairs)."""
    best: list[dict[str, Any]] = []
    if report["kind"] == "outputs":
        def key(r: dict[str, Any]) -> tuple[Any, ...]:
            return (-RANK[r["verdict"]], -r["evidence_tokens"], -r["containment"], r["reference_id"],
                    r["sample_source"], r["sample_row"])

        for b in arrow.iter_batches(table):
            best = heapq.nsmallest(limit, best + [r for r in b.to_pylist() if r["verdict"] != "none"], key=key)
        return [Pair(r["reference_id"], r.get("reference_item"), r["sample_id"], r["sample_source"], r["sample_row"],
                     r["containment"], None, r["evidence_tokens"], r["verdict"]) for r in best]
    min_j = report["parameters"]["min_jaccard"]

    def strength(r: dict[str, Any]) -> tuple[Any, ...]:
        return (-r["containment"], -r["jaccard"], -r["verbatim_tokens"], r["reference_id"], r["target_source"],
                r["target_row"])

    for b in arrow.iter_batches(table):
        best = heapq.nsmallest(limit, best + [r for r in b.to_pylist() if not r["item_flag"]], key=strength)
    return [Pair(r["reference_id"], r.get("reference_item"), r["target_id"], r["target_source"], r["target_row"],
                 r["containment"], r["jaccard"], r["verbatim_tokens"],
                 "near-copy" if r["jaccard"] >= min_j else "contained")
            for r in best]


def read_rows(source: str, rows: set[int], sha256: str | None, *, text_field: str, id_field: str | None,
              extract: Extract | None = None, max_record_chars: int | None = None) -> tuple[dict[int, str], str]:
    """The texts of ``rows`` of one source, if the file is unchanged; else no texts and the reason."""
    try:
        (src,) = expand_sources([source])
    except (ProvauditError, OSError, ValueError):
        return {}, f"{source} was not found where the audit read it"
    if src.kind == "hub":
        return {}, f"{source} is a hub dataset: not read again"
    if sha256 is None or src.sha256() != sha256:
        return {}, f"{source} changed since the audit (sha256 differs): its text is not shown"
    texts: dict[int, str] = {}
    try:
        for rec in read_source(src, text_field=text_field, id_field=id_field, on_error="skip", stats=ReadStats(),
                               keep=rows.__contains__, extract=extract,
                               max_record_chars=max_record_chars or DEFAULT_MAX_RECORD_CHARS):
            texts[rec.row] = rec.text
    except (ProvauditError, OSError) as e:
        return texts, f"{source} could not be read again ({e})"
    return texts, ""


def _open_index(index: dict[str, Any]) -> tuple[Any, str]:
    """The audited index, opened (manifest and checksum list verified, nothing else read), or why not."""
    from provaudit.index.format import load_index

    path = Path(index["path"])
    try:
        if sha256_file(path / "manifest.json") != index["manifest_sha256"]:
            return None, f"the index at {index['path']} changed since the audit"
    except OSError:
        return None, f"the index {index['path']} was not found where the audit read it"
    try:
        return load_index(path), ""
    except (ProvauditError, OSError) as e:
        return None, f"the index {index['path']} could not be read ({e})"


def _items_of(idx: Any, items: dict[str, int | None]) -> dict[str, int]:
    """Item numbers of the pairs' reference ids, checked against the index's ids.

    Pairs carry their item number (``reference_item``), so only those items' row groups of
    ``items.parquet`` are read; an output written before that column existed costs a scan of
    every id.
    """
    known = {rid: i for rid, i in items.items() if i is not None and 0 <= i < len(idx)}
    if len(known) < len(items):
        wanted = set(items) - set(known)
        for i, rid in enumerate(idx.ids.to_pylist()):
            if rid in wanted:
                known[rid] = i
    order = sorted(known)
    nums = np.array([known[r] for r in order], dtype=np.int64)
    return {rid: int(i) for rid, i, got in zip(order, nums, idx.ids_of(nums)) if got == rid}


def _source_bytes(sources: Iterable[str]) -> int:
    total = 0
    for src in sources:
        try:
            total += os.stat(src).st_size
        except OSError:
            pass
    return total


def reference_texts(index: dict[str, Any], items: dict[str, int | None], given: Iterable[str] = (), *,
                    read_limit: int = REFERENCE_READ_BYTES) -> tuple[dict[str, str], dict[str, str]]:
    """Texts of reference items (id -> item number): from the index (--keep-text), its recorded sources, or ``given``.

    The cost follows the pairs shown, not the index: ids, sources and rows are read for these
    items only, and the recorded reference files are read back only while they total at most
    ``read_limit`` bytes (a corpus of billions of posts is not re-read for a report's excerpts).

    Returns:
        ``(texts by id, notes by id for items without text)``.
    """
    idx, why = _open_index(index)
    texts: dict[str, str] = {}
    notes: dict[str, str] = {}
    ids = set(items)
    if idx is not None:
        found = _items_of(idx, items)
        order = sorted(found)
        nums = np.array([found[r] for r in order], dtype=np.int64)
        if idx.config.keep_text:
            texts = {rid: t for rid, t in zip(order, idx.column_of("text", nums)) if t is not None}
        else:
            manifest = idx.manifest
            shas = {i["source"]: i.get("sha256") for i in manifest.get("inputs", [])}
            fields = manifest.get("fields", {})
            by_source: dict[str, dict[int, str]] = {}
            for rid, src, row in zip(order, idx.column_of("source", nums), idx.column_of("row", nums)):
                by_source.setdefault(str(src), {})[int(row)] = rid
            size = _source_bytes(by_source)
            if size > read_limit:
                note = (f"the index holds no text (built without --keep-text) and the reference files holding these "
                        f"items total {size / 1e9:.2f} GB, more than a report reads back; build the index with "
                        "--keep-text or give the reference files with --reference-text")
                notes.update({rid: note for want in by_source.values() for rid in want.values()})
                by_source = {}
            for src, want in sorted(by_source.items()):
                got, note = read_rows(src, set(want), shas.get(src), text_field=fields.get("text", "text"),
                                      id_field=fields.get("id"))
                texts.update({want[row]: t for row, t in got.items()})
                reason = (f"the index holds no text (built without --keep-text) and {note}; give the reference "
                          "files with --reference-text")
                notes.update({rid: reason for rid in want.values() if rid not in texts and note})
        for rid in ids - set(found):
            notes.setdefault(rid, f"{rid} is not an item of the index at {index['path']}")
    for spec in given:
        rest = ids - set(texts)
        if rest:
            for given_src in expand_sources([spec]):
                for rec in read_source(given_src, on_error="skip", stats=ReadStats()):
                    if rec.id in rest:
                        texts[rec.id] = rec.text
                        notes[rec.id] = f"from {spec} (given with --reference-text, not verified by sha256)"
    for rid in ids - set(texts):
        notes.setdefault(rid, why or "the index holds no text (built without --keep-text) and its sources were not "
                                     "found; use --reference-text")
    return texts, notes


def _tokens(text: str) -> tuple[list[str], list[tuple[int, int]]]:
    """Normalized word tokens of ``text`` with the character range of the chunk each came from."""
    toks: list[str] = []
    spans: list[tuple[int, int]] = []
    for m in _WORD.finditer(text[:SCAN_CHARS]):
        for t in normalize(m.group()).split():
            toks.append(t)
            spans.append((m.start(), m.end()))
    return toks, spans


def _grams(toks: list[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(toks[i : i + n]) for i in range(len(toks) - n + 1)]


def _marks(toks: list[str], spans: list[tuple[int, int]], other: set[tuple[str, ...]], n: int) -> list[tuple[int, int]]:
    covered = [False] * len(toks)
    for i, g in enumerate(_grams(toks, n)):
        if g in other:
            for k in range(i, i + n):
                covered[k] = True
    marks: list[tuple[int, int]] = []
    for i, c in enumerate(covered):
        if not c:
            continue
        s, e = spans[i]
        if marks and covered[i - 1]:
            marks[-1] = (marks[-1][0], max(marks[-1][1], e))
        else:
            marks.append((s, e))
    return marks


def shared_marks(a: str, b: str, ngram: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """Character ranges of ``a`` and of ``b`` covered by word n-grams the two texts share.

    Example:
        >>> shared_marks("x the quick brown fox y", "The quick, brown fox!", 3)
        ([(2, 21)], [(0, 21)])
    """
    ta, sa = _tokens(a)
    tb, sb = _tokens(b)
    n = max(1, min(ngram, len(ta), len(tb)))
    return _marks(ta, sa, set(_grams(tb, n)), n), _marks(tb, sb, set(_grams(ta, n)), n)


def excerpt(text: str, marks: list[tuple[int, int]], limit: int = EXCERPT_CHARS) -> Side:
    """``text`` cut to ``limit`` characters starting a little before its first mark."""
    if len(text) <= limit:
        return Side(text, marks, 0, len(text))
    first = marks[0][0] if marks else 0
    start = max(0, min(first - limit // 6, len(text) - limit))
    end = start + limit
    kept = [(max(s, start) - start, min(e, end) - start) for s, e in marks if e > start and s < end]
    return Side(text[start:end], kept, start, len(text))


def attach_texts(pairs: list[Pair], report: dict[str, Any], *, extract: Extract | None = None,
                 reference_sources: Iterable[str] = ()) -> None:
    """Fill each pair's ``reference`` and ``target`` sides with excerpts and shared spans, or notes."""
    if not pairs:
        return
    fields = report["parameters"]
    shas = {i["source"]: i.get("sha256") for i in report["inputs"]}
    wanted: dict[str, set[int]] = {}
    for p in pairs:
        wanted.setdefault(p.source, set()).add(p.row)
    targets: dict[tuple[str, int], str] = {}
    notes: dict[str, str] = {}
    for src, rows in sorted(wanted.items()):
        got, notes[src] = read_rows(src, rows, shas.get(src), text_field=fields.get("text_field") or "text",
                                    id_field=fields.get("id_field"), extract=extract,
                                    max_record_chars=report.get("input_problems", {}).get("max_record_chars"))
        targets.update({(src, r): t for r, t in got.items()})
    refs, ref_notes = reference_texts(report["index"], {p.reference_id: p.reference_item for p in pairs},
                                      reference_sources)
    ngram = int(report["index"]["config"]["ngram"]) if report["index"]["config"].get("unit") == "word" else 3
    for p in pairs:
        target, ref = targets.get((p.source, p.row)), refs.get(p.reference_id)
        if target is not None and ref is not None:
            mt, mr = shared_marks(target, ref, ngram)
            p.target, p.reference = excerpt(target, mt), excerpt(ref, mr)
        else:
            p.target = excerpt(target, []) if target is not None else Side(note=notes.get(p.source) or "no text")
            p.reference = excerpt(ref, []) if ref is not None else Side(note=ref_notes.get(p.reference_id, "no text"))
        if p.reference.text is not None and p.reference_id in ref_notes:
            p.reference.note = ref_notes[p.reference_id]
