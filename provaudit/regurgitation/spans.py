"""Evidence of regurgitation in output samples: located verbatim spans, per pair and per sample.

``token_offsets`` produces exactly the tokens of ``text.shingle.tokens`` (word
unit) together with the ``[start, end)`` character offsets of each token in the
*original* text, so that evidence found on normalized shingles can be shown in the
text a reader sees. ``match.runs.shared_runs`` lists all maximal diagonals of equal elements
between two hash sequences (``match.runs.longest_common_run`` gives only the longest
length); a run of ``r`` equal shingles of width ``w`` is a verbatim span of
``r + w - 1`` tokens. ``describe_batch`` turns the engine's verified pairs for a batch
of output samples into located, prompt-aware evidence with a verdict.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, TypeVar

import numpy as np
import pyarrow as pa

from provaudit.config import VerdictRules
from provaudit.fs import arrow
from provaudit.index.format import Index
from provaudit.match.runs import shared_runs
from provaudit.match.engine import BatchResult, Engine
from provaudit.match.schema import MATCH_COLUMNS
from provaudit.read.blocks import batches
from provaudit.read.records import ReadStats, Record
from provaudit.regurgitation.shapes import DEFAULT_TEXT_FIELD
from provaudit.regurgitation.verdicts import item_needs
from provaudit.results import strength
from provaudit.text import sets
from provaudit.text.shingle import ShingleBatch, normalize, shingle_batch, unique_per_record

T = TypeVar("T")


@lru_cache(maxsize=65536)
def _norm_char(ch: str) -> str:
    return normalize(ch)


def _segments(text: str) -> list[tuple[int, int]]:
    """Split ``text`` into pieces whose separate normalizations concatenate to ``normalize(text)``.

    A piece is a starter character with its combining marks; neighbours whose
    normalization interacts (NFKC composition of Hangul jamo and the like) are merged.
    """
    cuts = [i for i, ch in enumerate(text) if i == 0 or unicodedata.combining(ch) == 0]
    cuts.append(len(text))
    segs: list[tuple[int, int]] = []
    for a, b in zip(cuts[:-1], cuts[1:]):
        if segs:
            pa, pb = segs[-1]
            prev, cur = text[pa:pb], text[a:b]
            if not (prev.isascii() and cur.isascii()) and normalize(prev + cur) != normalize(prev) + normalize(cur):
                segs[-1] = (pa, b)
                continue
        segs.append((a, b))
    return segs


@lru_cache(maxsize=1)
def _ascii_token() -> re.Pattern[str]:
    """An ASCII token: a kept character, then kept or deleted ones, ending on a kept one (from the normalizer)."""
    kept = "".join(re.escape(chr(c)) for c in range(128) if normalize(chr(c)).strip())
    gone = "".join(re.escape(chr(c)) for c in range(128) if normalize(chr(c)) == "")
    return re.compile(f"[{kept}](?:[{gone}]*[{kept}])*" if gone else f"[{kept}]+")


def token_offsets(text: str) -> tuple[list[str], np.ndarray, np.ndarray] | None:
    """Word tokens of ``text`` and their character offsets in ``text``.

    Args:
        text: Raw text, as read from the input.

    Returns:
        ``(tokens, starts, ends)``: ``tokens == shingle.tokens(text)`` and token ``i``
        comes from ``text[starts[i]:ends[i]]`` (deleted characters such as zero-width
        spaces or apostrophes inside a token are inside its range). None in the rare
        case where the text cannot be cut into independently normalizable pieces.
        Characters whose normalization yields several tokens ("½" gives "1 2") give
        those tokens the same range.

    Example:
        >>> toks, s, e = token_offsets("Don’t  STOP—ｍｅ!")
        >>> toks, s.tolist(), e.tolist()
        (['dont', 'stop', 'me'], [0, 7, 12], [5, 11, 14])
    """
    if text.isascii():
        found = list(_ascii_token().finditer(text))
        toks = [normalize(m.group()) for m in found]
        if toks != normalize(text).split():
            return None
        return (toks, np.fromiter((m.start() for m in found), np.int64, len(found)),
                np.fromiter((m.end() for m in found), np.int64, len(found)))
    toks = []
    starts: list[int] = []
    ends: list[int] = []
    cur: list[str] = []
    parts: list[str] = []
    for a, b in _segments(text):
        piece = text[a:b]
        out = _norm_char(piece) if b - a == 1 else normalize(piece)
        parts.append(out)
        for ch in out:
            if ch.isspace():
                if cur:
                    toks.append("".join(cur))
                    cur = []
            else:
                if not cur:
                    starts.append(a)
                    ends.append(b)
                cur.append(ch)
                ends[-1] = b
    if cur:
        toks.append("".join(cur))
    if "".join(parts) != normalize(text):
        return None
    return toks, np.asarray(starts, dtype=np.int64), np.asarray(ends, dtype=np.int64)


def _cover(hit: np.ndarray, width: int, n_tokens: int) -> np.ndarray:
    """Per token, True when some shingle position flagged in ``hit`` (of ``width`` tokens) covers it."""
    d = np.zeros(n_tokens + 1, dtype=np.int64)
    pos = np.flatnonzero(hit)
    np.add.at(d, pos, 1)
    np.add.at(d, np.minimum(pos + width, n_tokens), -1)
    return np.asarray(np.cumsum(d[:-1]) > 0)


def _char_range(offsets: tuple[list[str], np.ndarray, np.ndarray] | None, n_tokens: int, start: int,
                 end: int) -> tuple[int | None, int | None]:
    if offsets is None or len(offsets[0]) != n_tokens or end <= start:
        return None, None
    return int(offsets[1][start]), int(offsets[2][end - 1])


def _pairs_by_row(rows: list[dict[str, Any]]) -> dict[int, list[dict[str, Any]]]:
    """The engine's pairs grouped by sample row."""
    by_row: dict[int, list[dict[str, Any]]] = {}
    for r in rows:
        by_row.setdefault(int(r["target_row"]), []).append(r)
    return by_row


def describe_batch(index: Index, rules: VerdictRules, min_containment: float, min_item_shingles: int,
                   batch: list[Record], metas: list[tuple[str, str]], rows: list[dict[str, Any]],
                   sb: ShingleBatch) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Evidence for a batch of output samples from the engine's verified pairs.

    Args:
        index: The loaded index.
        rules: Verdict rules.
        min_containment: The near-verbatim containment threshold.
        min_item_shingles: Shorter items are never evidence (``AuditConfig.min_item_shingles``).
        batch: The audited samples (their text is the audited text).
        metas: Per sample, (audited field, given context text).
        rows: The engine's pairs for the batch (dicts keyed by ``match.schema.MATCH_COLUMNS``).
        sb: The batch's shingles (as the engine computed them).

    Returns:
        (pairs with a positive verdict, one summary per sample), in input order.
    """
    icfg = index.config
    gb = unique_per_record(shingle_batch([m[1] for m in metas], icfg))
    by_row = _pairs_by_row(rows)
    # per matched item only: nothing here reads or computes over the whole index
    matched = np.array(sorted({int(r["reference_item"]) for r in rows}), dtype=np.int64)
    tok, sh, m = index.tokens_of(matched), index.shingles_of(matched), matched.tolist()
    n_tokens, n_shingles = dict(zip(m, tok.tolist())), dict(zip(m, sh.tolist()))
    need = dict(zip(m, item_needs(index, matched, tok, sh, rules, min_containment, min_item_shingles).tolist()))
    texts = dict(zip(matched.tolist(), index.column_of("text", matched))) if index.config.keep_text else None
    pairs: list[dict[str, Any]] = []
    samples: list[dict[str, Any]] = []
    for k, rec in enumerate(batch):
        seq, given = sb.record(k), gb.record(k)
        n_tok = int(sb.n_tokens[k])
        width = min(icfg.ngram, n_tok)
        given_pos = sets.isin(seq, given) if len(given) else np.zeros(len(seq), dtype=bool)
        cum = np.r_[0, np.cumsum(_cover(given_pos, width, n_tok))]
        offsets = None
        mine: list[dict[str, Any]] = []
        for r in sorted(by_row.get(rec.row, []), key=lambda r: str(r["reference_id"])):
            item = int(r["reference_item"])
            ref = index.sequence(item)
            n_ref, d_ref = int(n_tokens[item]), int(n_shingles[item])
            ref_set = sets.unique(ref)
            overlap = len(sets.intersect(ref_set, seq[~given_pos]))
            containment = overlap / d_ref if d_ref else 0.0
            runs = shared_runs(ref, seq)
            if len(runs) == 0:
                continue
            span = runs.length + min(icfg.ngram, n_ref) - 1
            evidence = span - (cum[runs.b_start + span] - cum[runs.b_start])
            j = int(np.argmax(evidence * (int(span.max()) + 1) + span))
            ev = int(evidence[j])
            verdict = "none" if need[item] == 0 else rules.verdict(ev, containment, overlap, n_ref, min_containment,
                                                                   icfg.ngram)
            if verdict == "none":
                continue
            if offsets is None:
                offsets = token_offsets(rec.text)
            tb, ta, ln = int(runs.b_start[j]), int(runs.a_start[j]), int(span[j])
            cs, ce = _char_range(offsets, n_tok, tb, tb + ln)
            rs = re_ = None
            if texts is not None:
                rs, re_ = _char_range(token_offsets(texts[item] or ""), n_ref, ta, ta + ln)
            mine.append({
                "sample_id": rec.id, "sample_source": rec.source, "sample_row": rec.row, "field": metas[k][0],
                "reference_id": str(r["reference_id"]), "reference_item": item, "verdict": verdict, "containment": containment,
                "overlap_shingles": overlap,
                "prompt_shingles": len(sets.intersect(sets.intersect(ref_set, seq), given)),
                "reference_shingles": d_ref, "reference_tokens": n_ref, "verbatim_tokens": int(span.max()),
                "evidence_tokens": ev, "verbatim_chars": None if cs is None or ce is None else ce - cs,
                "sample_token_start": tb, "sample_token_end": tb + ln, "sample_char_start": cs, "sample_char_end": ce,
                "reference_token_start": ta, "reference_token_end": ta + ln,
                "reference_char_start": rs, "reference_char_end": re_,
                "sample_span": None if cs is None else rec.text[cs:ce], "candidate_by": str(r["candidate_by"]),
            })
        samples.append(_sample_summary(index, rec, metas[k][0], seq, given_pos, width, n_tok, mine))
        pairs += mine
    return pairs, samples


def _sample_summary(index: Index, rec: Record, fld: str, seq: np.ndarray, given_pos: np.ndarray, width: int,
                    n_tok: int, mine: list[dict[str, Any]]) -> dict[str, Any]:
    best = max(mine, key=strength, default=None)  # the first of equals: pairs come sorted by reference id
    hit = np.zeros(len(seq), dtype=bool)
    if mine:
        union = sets.unique(np.concatenate([index.sequence(p["reference_item"]) for p in mine]))
        hit = sets.isin(seq, union, b_unique=True) & ~given_pos
    return {
        "sample_id": rec.id, "source": rec.source, "row": rec.row, "field": fld,
        "verdict": best["verdict"] if best else "none", "reference_id": best["reference_id"] if best else None,
        "items_reproduced": len(mine), "evidence_tokens": best["evidence_tokens"] if best else 0,
        "verbatim_tokens": best["verbatim_tokens"] if best else 0,
        "containment": best["containment"] if best else 0.0,
        "sample_tokens": n_tok, "sample_shingles": len(seq), "prompt_shingles": int(given_pos.sum()),
        "reference_ngram_share": float(hit.sum() / len(seq)) if len(seq) else 0.0,
        "covered_tokens": int(_cover(hit, width, n_tok).sum()),
    }


@dataclass(frozen=True)
class SampleCheck:
    """What an outputs audit's worker needs: the engine (searching at the rules' thresholds), the
    rules, the near-verbatim containment threshold and the shortest item that can be evidence."""

    engine: Engine
    rules: VerdictRules
    min_containment: float
    min_item_shingles: int


SampleBatch = tuple[BatchResult, list[dict[str, Any]], list[dict[str, Any]]]  # engine result, pairs, samples


def describe_parsed(check: SampleCheck, parse: Callable[[T], tuple[Iterable[Record], ReadStats]], raw: T,
                    ) -> tuple[ReadStats, list[SampleBatch]]:
    """Parse a block of samples, then search, verify and describe them batch by batch (a worker task;
    each batch is shingled once, for the engine and for the spans)."""
    records, stats = parse(raw)
    out: list[SampleBatch] = []
    idx = check.engine.index
    for batch in batches(records):
        sb = shingle_batch([r.text for r in batch], idx.config)
        res = check.engine.evaluate_shingled(batch, sb)
        metas = [r.meta if r.meta is not None else (DEFAULT_TEXT_FIELD, "") for r in batch]
        rows = [dict(zip(MATCH_COLUMNS, r)) for r in res.rows]
        pairs, samples = describe_batch(idx, check.rules, check.min_containment, check.min_item_shingles, batch, metas, rows, sb)
        out.append((res, pairs, samples))
    return stats, out
