"""Property tests (hypothesis): the normalizer, the shingler and the readers on arbitrary text and bytes."""

from __future__ import annotations

import csv
import gzip
import io
import json
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from provaudit.config import IndexConfig
from provaudit.errors import InputError
from provaudit.read.records import ReadStats, Source
from provaudit.read.sources import expand_sources, read_source
from provaudit.read.blocks import iter_spans
from provaudit.read.lines import block_lines, iter_blocks
from provaudit.read.rows import RowReader
from provaudit.read.json_array import _JsonArray
from provaudit.text.shingle import normalize, shingle_batch, shingle_batch_py, tokens

FAST = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# Characters where normalization is subtle: case folding, compatibility forms, combining marks,
# format characters (soft hyphen, zero-width space/joiner, BOM), apostrophes, punctuation, spaces.
TRICKY = "aeiAEIßſK\u212a\u00e9\u0301\u0308\u0345\u1e9e\ufb03\u00ad\u200b\u200d\ufeff'\u2019.,;!-_\t\n \u3000\u00a0"
TEXT = st.text(st.sampled_from(TRICKY) | st.characters(), max_size=40)
WORDS = st.lists(st.text(st.sampled_from("abcdefgh\u00e9\u0301K\u212a"), min_size=1, max_size=6), min_size=3, max_size=12)


# --- normalizer ---------------------------------------------------------------------------------------
@FAST
@example("e\u00ad\u0301")
@given(TEXT)
def test_normalize_is_idempotent(text: str) -> None:
    assert normalize(normalize(text)) == normalize(text)


@FAST
@given(TEXT)
def test_tokens_are_nonempty_and_free_of_whitespace(text: str) -> None:
    toks = tokens(text)
    assert all(t and not any(c.isspace() for c in t) for t in toks)
    assert all(c == " " or not c.isspace() for c in tokens(text, "char"))


# --- shingler -----------------------------------------------------------------------------------------
def _records(texts: list[str], cfg: IndexConfig) -> list[set[int]]:
    sb = shingle_batch(texts, cfg)
    return [set(sb.record(i).tolist()) for i in range(len(texts))]


@FAST
@given(st.lists(TEXT, max_size=5), st.sampled_from(["word", "char"]), st.integers(1, 5))
def test_compiled_shingler_equals_the_reference_on_any_text(texts: list[str], unit: str, n: int) -> None:
    cfg = IndexConfig(ngram=n, unit=unit)
    fast, ref = shingle_batch(texts, cfg), shingle_batch_py(texts, cfg)
    assert np.array_equal(fast.offsets, ref.offsets) and np.array_equal(fast.n_tokens, ref.n_tokens)
    assert np.array_equal(fast.hashes, ref.hashes)
    for i, t in enumerate(texts):  # a record with k >= 1 tokens has max(k - n + 1, 1) shingles
        k = len(tokens(t, unit))
        assert len(fast.record(i)) == (max(k - n + 1, 1) if k else 0)


@FAST
@given(st.lists(WORDS, min_size=2, max_size=2), st.sampled_from(["\n", " ", "\t. "]), st.integers(1, 4))
def test_shingles_of_a_concatenation_contain_those_of_each_part(parts: list[list[str]], sep: str, n: int) -> None:
    """Where expected: a part shorter than n tokens is one short shingle, which a longer text does not hold."""
    a, b = (" ".join(p) for p in parts)
    for unit in ("word", "char"):
        cfg = IndexConfig(ngram=n, unit=unit)
        whole, first, second = _records([a + sep + b, a, b], cfg)
        for part, shingles in ((a, first), (b, second)):
            if len(tokens(part, unit)) >= n:
                assert shingles <= whole


@FAST
@given(st.text(st.sampled_from("ab cd\u00ad\u200b'\u2019.,"), max_size=30))
def test_format_characters_apostrophes_and_case_do_not_change_shingles(text: str) -> None:
    noisy = "".join(c.upper() + "\u00ad" if c.isalpha() else c for c in text)
    cfg = IndexConfig()
    assert _records([text], cfg) == _records([noisy], cfg)


# --- readers ------------------------------------------------------------------------------------------
@contextmanager
def _file(name: str, data: bytes) -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / name
        p.write_bytes(data)
        yield p


def _read_all(path: Path, on_error: str, **kw: Any) -> tuple[list[Any], ReadStats]:
    stats = ReadStats()
    (src,) = expand_sources([str(path)])
    return list(read_source(src, on_error=on_error, stats=stats, **kw)), stats


def _valid(records: list[Any], cap: int) -> None:
    for r in records:
        assert isinstance(r.text, str) and r.text.strip() and len(r.text) <= cap
        r.text.encode("utf-8")  # no lone surrogates: always encodable
        r.id.encode("utf-8")
    if records:
        shingle_batch([r.text for r in records], IndexConfig())


NAMES = ["x.jsonl", "x.json", "x.csv", "x.txt", "x.jsonl.gz", "x.parquet"]


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(NAMES), st.binary(max_size=300), st.booleans())
@example("x.jsonl", b'{"text": "\\ud800 a"}\n', False)
@example("x.json", b'[{"text": "a"}, {"text": "b"', False)
@example("x.csv", b'text\n"unclosed\n', False)
def test_readers_never_crash_on_arbitrary_bytes(name: str, data: bytes, compress: bool) -> None:
    if compress or name.endswith(".gz"):
        data = gzip.compress(data, mtime=0)[: len(data) + 10]  # sometimes truncated
    with _file(name, data) as p:
        recs, stats = _read_all(p, "skip", max_record_chars=50)
        _valid(recs, 50)
        assert stats.rows == len(recs)
        try:
            again, _ = _read_all(p, "fail", max_record_chars=50)
        except InputError as e:
            assert str(e).startswith(str(p))
        else:
            assert again == recs


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | TEXT,
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(["text", "id", "x"]),
                                                                                 inner, max_size=3),
                    max_leaves=8)


def _fixed(text: str) -> str:
    """What a reader yields for a text: lone surrogates replaced (JSON can carry them as escapes)."""
    return "".join("\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in text)


@FAST
@given(st.lists(JSON, max_size=6))
@example([{"text": "\ud83d half an emoji", "id": 1.5}, [1], {"text": "  "}, {"id": None, "text": "x"}])
def test_json_lines_yield_exactly_the_objects_with_text(values: list[Any]) -> None:
    data = "".join(json.dumps(v) + "\n" for v in values).encode()
    with _file("x.jsonl", data) as p:
        recs, _ = _read_all(p, "skip")
        expected = [(_fixed(str(v["id"])) if v.get("id") is not None else f"{p}#{i}", _fixed(v["text"]))
                    for i, v in enumerate(values)
                    if isinstance(v, dict) and isinstance(v.get("text"), str) and v["text"].strip()]
        assert [(r.id, r.text) for r in recs] == expected


@settings(max_examples=60, deadline=None)
@given(st.lists(st.fixed_dictionaries({"id": st.text(max_size=5), "text": TEXT}), max_size=8),
       st.integers(1, 16), st.sampled_from([None, 1, "\t"]))
def test_json_arrays_stream_the_same_records_for_any_window(rows: list[dict[str, str]], chunk: int,
                                                            indent: int | str | None) -> None:
    data = json.dumps(rows, indent=indent).encode()
    old = _JsonArray.CHUNK
    _JsonArray.CHUNK = chunk  # a tiny window: every element straddles buffer boundaries
    try:
        with _file("x.json", data) as p:
            if not rows:
                with pytest.raises(InputError, match="no records"):
                    _read_all(p, "fail")
                return
            recs, stats = _read_all(p, "fail") if any(r["text"].strip() for r in rows) else _read_all(p, "skip")
    finally:
        _JsonArray.CHUNK = old
    assert [(r.id, r.text) for r in recs] == [(_fixed(d["id"]), _fixed(d["text"])) for d in rows if d["text"].strip()]


@FAST
@given(st.lists(st.tuples(st.text(st.characters(blacklist_categories=["Cs"]), max_size=6),
                          st.text(st.characters(blacklist_categories=["Cs"]) | st.sampled_from('",\n\r'),
                                  min_size=1, max_size=20)), min_size=1, max_size=6))
def test_csv_written_by_the_csv_module_reads_back(rows: list[tuple[str, str]]) -> None:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["id", "text"])
    w.writerows(rows)
    with _file("x.csv", buf.getvalue().encode("utf-8")) as p:
        recs, stats = _read_all(p, "skip")
    assert [(r.id, r.text) for r in recs] == [(i, t) for i, t in rows if t.strip()]
    assert stats.skipped.get("bad CSV row", 0) == stats.skipped.get("bad CSV quoting", 0) == 0


@FAST
@given(st.lists(st.one_of(st.none(), st.text(st.characters(blacklist_categories=["Cs"]), max_size=20)),
                min_size=1, max_size=10), st.integers(1, 4))
def test_parquet_rows_read_back_in_order_across_row_groups(texts: list[str | None], group: int) -> None:
    sink = io.BytesIO()
    pq.write_table(pa.table({"text": pa.array(texts, pa.string())}), sink, row_group_size=group)
    with _file("x.parquet", sink.getvalue()) as p:
        recs, stats = _read_all(p, "skip")
    assert [(r.row, r.text) for r in recs] == [(i, t) for i, t in enumerate(texts) if t and t.strip()]
    assert stats.rows + sum(stats.skipped.values()) == len(texts)



def _readline_lines(data: bytes, limit: int) -> list[tuple[bytes, bool]]:
    """Lines as ``readline(limit + 1)`` gives them, over-long ones cut to ``limit`` bytes (the reference)."""
    f, out = io.BytesIO(data), []
    while line := f.readline(limit + 1):
        complete = len(line) <= limit or line.endswith(b"\n")
        if not complete:
            line = line[:limit]
            while (rest := f.readline(limit + 1)) and not rest.endswith(b"\n"):
                pass
        out.append((line, complete))
    return out


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"")), max_size=12),
       st.booleans(), st.integers(1, 50), st.integers(1, 60), st.booleans())
def test_blocks_split_into_the_lines_readline_gives(parts: list[bytes], final_newline: bool, limit: int,
                                                     block: int, compress: bool) -> None:
    data = b"\n".join(parts) + (b"\n" if final_newline and parts else b"")
    name = "x.jsonl.gz" if compress else "x.jsonl"
    with _file(name, gzip.compress(data, mtime=0) if compress else data) as p:
        reader = RowReader(Source(str(p), "jsonl"), "text", "id", "skip", ReadStats(), None, None, 1)
        reader.max_line_bytes = limit
        rows, lines = [], []
        for first, chunk in iter_blocks(reader, block):
            for row, line, complete in block_lines(limit, first, chunk):
                rows.append(row)
                lines.append((line, complete))
        if not compress:  # the same lines from file ranges (how parallel audits cut plain files)
            span_lines = [(row, line, complete) for first, span in iter_spans(reader, block)
                          for row, line, complete in block_lines(limit, first, data[span.offset:][: span.length])]
            assert span_lines == [(r, *lc) for r, lc in zip(rows, lines)]
    assert lines == _readline_lines(data, limit)
    assert rows == list(range(len(lines)))
