from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from provaudit.read import lines
from provaudit.errors import InputError
from provaudit.read.blocks import BlockReading
from provaudit.read.records import ReadStats
from provaudit.read.sources import expand_sources, read_source

ROWS = [{"id": "a", "text": "first text"}, {"id": "b", "text": "second text"}, {"id": "c", "text": "third"}]


def _read(spec: str, **kw) -> list:
    out = []
    for s in expand_sources([spec]):
        out += list(read_source(s, **kw))
    return out


def _write_all(d: Path) -> dict[str, Path]:
    d.mkdir(parents=True, exist_ok=True)
    paths = {}
    p = d / "x.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    paths["jsonl"] = p
    p = d / "x.jsonl.gz"
    with gzip.open(p, "wt") as f:
        f.write("".join(json.dumps(r) + "\n" for r in ROWS))
    paths["gz"] = p
    p = d / "x.json"
    p.write_text(json.dumps(ROWS))
    paths["json"] = p
    p = d / "x.parquet"
    pq.write_table(pa.Table.from_pylist(ROWS), p)
    paths["parquet"] = p
    p = d / "x.csv"
    p.write_text("id,text\na,first text\nb,second text\nc,third\n")
    paths["csv"] = p
    return paths


@pytest.mark.parametrize("fmt", ["jsonl", "gz", "json", "parquet", "csv"])
def test_formats_read_the_same_records(tmp_path, fmt) -> None:
    p = _write_all(tmp_path)[fmt]
    recs = _read(str(p))
    assert [(r.id, r.text, r.row) for r in recs] == [("a", "first text", 0), ("b", "second text", 1), ("c", "third", 2)]
    assert all(r.source == str(p) for r in recs)


def test_txt_is_a_record_per_line_with_positional_ids(tmp_path) -> None:
    p = tmp_path / "x.txt"
    p.write_text("first\n\nthird\n")
    recs = _read(str(p))
    assert [(r.id, r.text) for r in recs] == [(f"{p}#0", "first"), (f"{p}#2", "third")]


def test_directories_and_globs_expand_sorted(tmp_path) -> None:
    _write_all(tmp_path / "d")
    (tmp_path / "d" / "notes.md").write_text("ignored")
    names = [Path(s.name).name for s in expand_sources([str(tmp_path / "d")])]
    assert names == ["x.csv", "x.json", "x.jsonl", "x.jsonl.gz", "x.parquet"]
    assert [Path(s.name).name for s in expand_sources([str(tmp_path / "d" / "*.json*")])] == [
        "x.json", "x.jsonl", "x.jsonl.gz"]


def test_saved_dataset_directory(tmp_path) -> None:
    datasets = pytest.importorskip("datasets")
    datasets.Dataset.from_list(ROWS).save_to_disk(str(tmp_path / "ds"))
    recs = _read(str(tmp_path / "ds"))
    assert [(r.id, r.text) for r in recs] == [(r["id"], r["text"]) for r in ROWS]


def test_missing_id_field_falls_back_to_position(tmp_path) -> None:
    p = tmp_path / "x.jsonl"
    p.write_text('{"text": "hello there"}\n')
    assert _read(str(p))[0].id == f"{p}#0"


def test_text_field_option(tmp_path) -> None:
    p = tmp_path / "x.jsonl"
    p.write_text('{"id": 7, "content": "hello there"}\n')
    recs = _read(str(p), text_field="content")
    assert (recs[0].id, recs[0].text) == ("7", "hello there")
    with pytest.raises(InputError, match=r"x.jsonl line 1: no field 'text' \(fields: content, id\); use --text-field"):
        _read(str(p))


def test_skip_mode_counts_by_reason(tmp_path) -> None:
    p = tmp_path / "x.jsonl"
    p.write_text('{"id": 1, "text": "ok one"}\n{bad\n{"id": 2, "text": null}\n{"id": 3, "text": ""}\n'
                 '{"id": 4, "text": 12}\n[1]\n{"id": 5}\n\ufeff{"id": 6, "text": "ok two"}\n')
    stats = ReadStats()
    recs = list(read_source(expand_sources([str(p)])[0], on_error="skip", stats=stats))
    assert [r.id for r in recs] == ["1", "6"]
    assert stats.rows == 2
    assert dict(stats.skipped) == {"malformed JSON": 1, "null text": 1, "empty text": 1, "non-string text": 1,
                                   "not an object": 1, "missing text field": 1}


@pytest.mark.parametrize(
    "name,content,message",
    [
        ("x.jsonl", b'{"text": "a"}\n{"text": "b"\n', r"x.jsonl line 2: malformed JSON"),
        ("x.jsonl", b'{"text": "a"}\n{"text": "\xff"}\n', r"x.jsonl line 2: invalid UTF-8"),
        ("x.jsonl.gz", gzip.compress(b'{"text": "a"}\n' * 100)[:40], r"x.jsonl.gz line 101: truncated gzip file"),
        ("x.parquet", b"PAR1 not really", r"x.parquet: not a readable Parquet file"),
        ("x.xml", b"<a/>", r"x.xml: unsupported file type"),
    ],
)
def test_bad_input_names_file_and_line(tmp_path, name, content, message) -> None:
    p = tmp_path / name
    p.write_bytes(content)
    with pytest.raises(InputError, match=message):
        _read(str(p))


def test_nonexistent_and_empty_matches(tmp_path) -> None:
    with pytest.raises(InputError, match="no such file or directory"):
        expand_sources([str(tmp_path / "nope.jsonl")])
    with pytest.raises(InputError, match="pattern matches no supported files"):
        expand_sources([str(tmp_path / "*.jsonl")])


def _dirty_lines() -> bytes:
    lines = [b'{"id": 1, "text": "ok one"}', b"{bad", b"", b"   ", b'{"id": 2, "text": null}',
             b'{"id": 3, "text": "\\ud800 lone surrogate"}', b'{"id": 4, "text": "\xff"}',
             b'{"id": 5, "text": "' + b"long " * 20_000 + b'"}', b'{"id": 6, "text": "' + b"x" * 1500 + b'"}',
             b"\xef\xbb\xbf" + b'{"id": 7, "text": "after a BOM"}', b"[1]", b"{worse", b"{and worse", b"{and worst",
             b'{"id": 8, "text": "crlf line"}\r']
    body = b"\n".join(lines * 3)
    return body + b'\n{"id": 9, "text": "the last line has no newline"}'


def _read_in_blocks(src: Any, on_error: str, spans: bool = False) -> tuple[list[Any], ReadStats]:
    reading = BlockReading(src, on_error=on_error, max_record_chars=1000)
    recs: list[Any] = []
    for block in reading.blocks(spans=spans):
        got, counted = reading.parse(block)
        recs += got
        reading.stats.merge(counted)
    reading.finish()
    return recs, reading.stats


@pytest.mark.parametrize("spans", [False, True])
@pytest.mark.parametrize("name", ["x.jsonl", "x.jsonl.gz", "x.txt", "cut.jsonl.gz"])
@pytest.mark.parametrize("block", [64, 5000, 1 << 20])
def test_blocks_parsed_apart_give_what_read_source_gives(tmp_path, monkeypatch, name, block, spans) -> None:
    """Audit workers parse blocks of lines on their own; records, counts, examples and errors are unchanged."""
    monkeypatch.setattr(lines, "BLOCK_BYTES", block)
    data = _dirty_lines()
    if name.endswith(".gz"):
        data = gzip.compress(data, mtime=0)
        if name.startswith("cut"):
            data = data[: len(data) * 2 // 3]  # a truncated download: the rest of the file cannot be read
    p = tmp_path / name
    p.write_bytes(data)
    (src,) = expand_sources([str(p)])
    stats = ReadStats()
    expected = list(read_source(src, on_error="skip", stats=stats, max_record_chars=1000))
    got, got_stats = _read_in_blocks(src, "skip", spans)
    assert got == expected and len(expected) > 5
    assert got_stats.to_dict() == stats.to_dict()
    assert (stats.error is not None) == name.startswith("cut")
    if name.startswith("x.jsonl"):
        assert stats.skipped["malformed JSON"] == 12 and stats.skipped["record too large"] == 3
    with pytest.raises(InputError) as want:
        list(read_source(src, on_error="fail", max_record_chars=1000))
    with pytest.raises(InputError) as have:
        _read_in_blocks(src, "fail", spans)
    assert str(have.value) == str(want.value)


def test_block_reading_reports_a_source_without_records(tmp_path) -> None:
    p = tmp_path / "x.jsonl"
    p.write_text('{"text": null}\n\n')
    (src,) = expand_sources([str(p)])
    with pytest.raises(InputError, match=r"x.jsonl: no record has text \(null text: 1\); check --text-field"):
        _read_in_blocks(src, "fail")
    recs, stats = _read_in_blocks(src, "skip")
    assert recs == [] and stats.error == f"{p}: no record has text (null text: 1); check --text-field"


def test_parquet_row_groups_parsed_apart_give_what_read_source_gives(tmp_path) -> None:
    rows = [{"id": i, "text": None if i % 7 == 0 else ("" if i % 11 == 0 else f"record {i} text")}
            for i in range(1000)]
    p = tmp_path / "x.parquet"
    pq.write_table(pa.Table.from_pylist(rows), p, row_group_size=128)
    (src,) = expand_sources([str(p)])
    stats = ReadStats()
    expected = list(read_source(src, on_error="skip", stats=stats))
    got, got_stats = _read_in_blocks(src, "skip")
    assert got == expected and len(got) == sum(1 for r in rows if r["text"])
    assert got_stats.to_dict() == stats.to_dict()
    assert [r.row for r in got][:3] == [1, 2, 3]
    pq.write_table(pa.Table.from_pylist([{"id": 1, "body": "x"}]), tmp_path / "y.parquet")
    (bad,) = expand_sources([str(tmp_path / "y.parquet")])
    with pytest.raises(InputError, match=r"y.parquet: no column 'text' \(columns: id, body\)"):
        _read_in_blocks(bad, "fail")
