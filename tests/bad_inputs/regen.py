"""Regenerate the bad-input fixtures in this directory (deterministic; review the diff like code).

Run: ``python tests/bad_inputs/regen.py``. ``cases.json`` (written by hand) says, for each file,
what ``provaudit index`` (``--on-error fail`` by default) and ``provaudit audit`` (``--on-error
skip`` by default) must do with it; ``tests/test_bad_inputs.py`` checks every case.
"""

from __future__ import annotations

import gzip
import io
import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent
GOOD = [{"id": "a", "text": "the quick brown fox jumps over the lazy dog"},
        {"id": "b", "text": "pack my box with five dozen liquor jugs today"},
        {"id": "c", "text": "how vexingly quick daft zebras jump over fences"}]


def jl(*objs: object) -> bytes:
    return b"".join(json.dumps(o).encode() + b"\n" for o in objs)


def gz(data: bytes) -> bytes:
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as f:
        f.write(data)
    return buf.getvalue()


def parquet(table: pa.Table, **kw: object) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="none", **kw)
    return sink.getvalue()


def zst(data: bytes) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.CompressedOutputStream(sink, "zstd") as f:
        f.write(data)
    return bytes(sink.getvalue().to_pybytes())


def arrow_stream(table: pa.Table, batch_rows: int) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as w:
        w.write_table(table, max_chunksize=batch_rows)
    return bytes(sink.getvalue().to_pybytes())


def corrupt_row_group() -> bytes:
    """Two row groups; the page header of row group 1's text column is overwritten."""
    data = bytearray(parquet(pa.Table.from_pylist(GOOD * 2), row_group_size=3))
    meta = pq.ParquetFile(io.BytesIO(bytes(data))).metadata
    col = meta.row_group(1).column(1)
    start = col.dictionary_page_offset or col.data_page_offset
    data[start : start + 12] = b"\xff" * 12
    return bytes(data)


def lying_footer() -> bytes:
    """Two row groups of 3 rows; the footer's row count of row group 0 is rewritten to 1 (its column
    chunks still say 3 values): readers that trust the footer lose 2 rows and shift the later rows."""
    data = parquet(pa.Table.from_pylist(GOOD * 2), row_group_size=3)
    size = int.from_bytes(data[-8:-4], "little")
    start = len(data) - 8 - size
    # Thrift compact protocol: RowGroup.num_rows is field 3, an i64 right after field 2 (header 0x16),
    # zigzag varint 6 for 3 rows; try each such spot and keep the one that changes only row group 0's count.
    for i in range(start, len(data) - 9):
        if data[i : i + 2] == b"\x16\x06":
            lie = data[:i] + b"\x16\x02" + data[i + 2 :]
            try:
                meta = pq.ParquetFile(io.BytesIO(lie)).metadata
            except Exception:  # noqa: BLE001 - a spot that breaks the footer is not the one
                continue
            if [meta.row_group(g).num_rows for g in range(meta.num_row_groups)] == [1, 3] and meta.num_rows == 6:
                return lie
    raise AssertionError("no row-group count found to rewrite")


def files() -> dict[str, bytes]:
    a, b, c = GOOD
    many = b"".join(json.dumps({"id": f"g{i}", "text": f"line {i} of a long shard"}).encode() + b"\n"
                    for i in range(400))
    more = b"".join(json.dumps({"id": f"z{i}", "text": f"line {i} of a longer shard"}).encode() + b"\n"
                    for i in range(4000))
    return {
        "good.jsonl": jl(a, b, c),
        "malformed_json.jsonl": jl(a) + b'{"id": "b", "text": "pack my box with\n' + jl(c),
        "invalid_utf8.jsonl": jl(a) + b'{"id": "b", "text": "caf\xe9 latin-1 bytes"}\n' + jl(c),
        "invalid_utf8.txt": b"first line of text\nsecond caf\xe9 line\nthird line\n",
        "bom.jsonl": b"\xef\xbb\xbf" + jl(a, b, c),
        "bom.csv": b"\xef\xbb\xbfid,text\na,the quick brown fox\nb,pack my box\n",
        "missing_field.jsonl": jl(a, {"id": "b", "body": b["text"]}, c),
        "null_text.jsonl": jl(a, {"id": "b", "text": None}, c),
        "non_string_text.jsonl": jl(a, {"id": "b", "text": 42}, c),
        "empty_text.jsonl": jl(a, {"id": "b", "text": "   "}, c),
        "not_object.jsonl": jl(a, [1, 2], c),
        "lone_surrogate.jsonl": jl(a) + b'{"id": "b", "text": "broken \\ud83d emoji pair"}\n' + jl(c),
        "deep_nesting.jsonl": jl(a) + b"[" * 5_000 + b"]" * 5_000 + b"\n" + jl(c),
        "huge_record.jsonl": jl(a, {"id": "b", "text": "many words " * 500}, c),
        "too_large_line.jsonl": jl(a, {"id": "b", "text": "x" * 70_000}, c),
        "empty.jsonl": b"",
        "blank_lines.txt": b"\n  \n\n",
        "truncated.jsonl.gz": gz(many)[:900],
        "not_gzip.jsonl.gz": jl(a, b),
        "gzip_without_suffix.jsonl": gz(jl(a, b)),
        "parquet_named.jsonl": parquet(pa.Table.from_pylist(GOOD)),
        "truncated.parquet": parquet(pa.Table.from_pylist(GOOD))[:-40],
        "corrupt_row_group.parquet": corrupt_row_group(),
        "wrong_type.parquet": parquet(pa.table({"id": ["a", "b", "c"], "text": [1, 2, 3]})),
        "bad_quoting.csv": b'id,text\na,the quick brown fox\nb,"pack my" box\nc,how vexingly quick\n',
        "extra_field.csv": b"id,text\na,the quick brown fox\nb,pack my box, with a comma\nc,how vexingly quick\n",
        "unclosed_quote.csv": b'id,text\na,the quick brown fox\nb,"pack my box\nc,how vexingly quick\n',
        "too_large_field.csv": b'id,text\na,the quick brown fox\nb,"' + b"many, words " * 7_000 + b'\nmore, with a comma\n'
                               b'end of it"\nc,how vexingly quick\nd,' + b"w " * 40_000 + b"\ne,pack my box\n",
        "malformed_array.json": b'[\n {"id": "a", "text": "the quick brown fox"},\n {"id": "b" "text": "pack my box"},\n'
                                b' {"id": "c", "text": "how vexingly quick"}\n]\n',
        "duplicate_ids.jsonl": jl(a, b, {"id": "a", "text": c["text"]}),
        "truncated.jsonl.zst": zst(more)[:-300],  # over one 128 KiB zstd block: the first block's lines are kept
        "not_zstd.jsonl.zst": jl(a, b),
        "zstd_without_suffix.jsonl": zst(jl(a, b)),
        "truncated.json.zst": zst(b"[" + b",\n".join(json.dumps({"id": f"e{i}", "text": f"element {i} of an array"})
                                                    .encode() for i in range(4000)) + b"]\n")[:-300],
        "nested_missing.jsonl": jl({"id": "a", "doc": {"body": a["text"]}}, {"id": "b", "doc": {"title": "x"}},
                                   {"id": "c", "doc": {"body": c["text"]}}),
        "nested_not_object.jsonl": jl({"id": "a", "doc": {"body": a["text"]}}, {"id": "b", "doc": "plain text"},
                                      {"id": "c", "doc": {"body": c["text"]}}),
        "nested_missing.parquet": parquet(pa.Table.from_pylist([{"id": o["id"], "doc": {"title": o["text"]}}
                                                                for o in GOOD])),
        "lying_footer.parquet": lying_footer(),
        "duplicate_columns.parquet": parquet(pa.table([pa.array([o["id"] for o in GOOD]),
                                                       pa.array([o["text"] for o in GOOD]),
                                                       pa.array(["a second text column"] * 3)],
                                                      names=["id", "text", "text"])),
        "out_of_range_ids.parquet": parquet(pa.table({"id": pa.array([0, 1 << 60, 2], pa.timestamp("ms")),
                                                      "text": [o["text"] for o in GOOD]})),
        "wrong_text_field.jsonl": jl(*({"id": o["id"], "body": o["text"]} for o in GOOD)),
        "truncated.arrow": arrow_stream(pa.Table.from_pylist(GOOD * 100), 50)[:-300],
        "not_arrow.arrow": jl(a, b),
        "unsupported.xml": b"<posts><post id='a'>the quick brown fox</post></posts>\n",
        "stray_dir/good.jsonl": jl(a, b),
        "stray_dir/notes.md": b"# notes about the shards\n",
        "stray_dir/part-0001.avro": b"Obj\x01\x00\x00",
        "stray_dir/.hidden.jsonl": jl(c),
    }


def main() -> None:
    shutil.rmtree(HERE / "stray_dir", ignore_errors=True)
    for name, data in files().items():
        path = HERE / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


if __name__ == "__main__":
    main()
