"""read/tables.py on hostile tables: footers that lie about row counts, ambiguous columns, values
Python cannot hold (issue 15 items 6 and 7). Each case failed (silent loss or a traceback) before."""

from __future__ import annotations

import io
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from provaudit.errors import InputError
from provaudit.read.sources import expand_sources, read_source
from provaudit.read.tables import footer_problem

TEXTS = ["the quick brown fox jumps over the lazy dog", "pack my box with five dozen liquor jugs",
         "how vexingly quick daft zebras jump"]


def _read(path: Path, on_error: str = "fail") -> tuple[list, object]:
    from provaudit.read.records import ReadStats

    stats = ReadStats()
    src = expand_sources([str(path)])[0]
    return list(read_source(src, on_error=on_error, stats=stats)), stats


def _patched(data: bytes, old: bytes, new: bytes, nth: int) -> bytes:
    """``data`` with the ``nth`` occurrence of ``old`` inside the Parquet footer replaced by ``new``."""
    start = len(data) - 8 - int.from_bytes(data[-8:-4], "little")
    at = start - 1
    for _ in range(nth + 1):
        at = data.index(old, at + 1)
    return data[:at] + new + data[at + len(old):]


def _two_groups() -> bytes:
    sink = io.BytesIO()
    pq.write_table(pa.table({"id": [f"r{i}" for i in range(6)], "text": TEXTS * 2}), sink,
                   row_group_size=3, compression="none")
    return sink.getvalue()


def _lies(data: bytes) -> list[bytes]:
    """Every single rewrite of a footer count 3 -> 1 (zigzag varint 0x06 -> 0x02 after an i64 field header)
    and 6 -> 4 (0x0c -> 0x08) that still parses: some change a row group's rows, some a column chunk's values."""
    out = []
    for old, new in ((b"\x16\x06", b"\x16\x02"), (b"\x16\x0c", b"\x16\x08")):
        nth = 0
        while True:
            try:
                lie = _patched(data, old, new, nth)
            except ValueError:
                break
            nth += 1
            try:
                if _values(lie) == _values(data):
                    continue  # the bytes were some other field: no count changed
            except Exception:  # noqa: BLE001 - not a count: the footer no longer parses
                continue
            out.append(lie)
    # the row group's count and the file's total rewritten together: only the column chunks tell
    group = next(x for x in out if _counts(x) == ((1, 3), 6))
    total = next(x for x in out if _counts(x) == ((3, 3), 4))
    at = next(i for i in range(len(data)) if total[i] != data[i])
    both = group[:at] + total[at:at + 2] + group[at + 2:]
    assert _counts(both) == ((1, 3), 4)
    return out + [both]


def _values(data: bytes) -> tuple[object, ...]:
    m = pq.ParquetFile(io.BytesIO(data)).metadata
    chunks = [m.row_group(g).column(c).num_values for g in range(m.num_row_groups) for c in range(m.num_columns)]
    return _counts(data), tuple(chunks)


def _counts(data: bytes) -> tuple[tuple[int, ...], int]:
    m = pq.ParquetFile(io.BytesIO(data)).metadata
    return tuple(m.row_group(g).num_rows for g in range(m.num_row_groups)), m.num_rows


def test_a_footer_whose_counts_disagree_is_refused_never_read_short(tmp_path: Path) -> None:
    data = _two_groups()
    meta = pq.ParquetFile(io.BytesIO(data)).metadata
    assert footer_problem(meta, pq.ParquetFile(io.BytesIO(data)).schema) == ""
    lies = _lies(data)
    # both lies the issue names: a row group under-counted alone, and with the file's total rewritten to match
    kinds = {_counts(lie) for lie in lies}
    assert ((1, 3), 6) in kinds and ((1, 3), 4) in kinds and ((3, 3), 6) in kinds  # the last: a column chunk's count
    for k, lie in enumerate(lies):
        path = tmp_path / f"lie{k}.parquet"
        path.write_bytes(lie)
        pf = pq.ParquetFile(path)
        problem = footer_problem(pf.metadata, pf.schema)
        assert problem, f"lie {k} passed the footer check"
        with pytest.raises(InputError, match=r"inconsistent Parquet footer .*the file is corrupt"):
            _read(path)
        records, stats = _read(path, on_error="skip")
        assert records == [] and "inconsistent Parquet footer" in stats.error  # not 4 of 6 rows as if complete


def test_duplicate_text_or_id_columns_are_named_not_tracebacks(tmp_path: Path) -> None:
    for name, names in (("text", ["id", "text", "text"]), ("id", ["id", "text", "id"])):
        path = tmp_path / f"dup-{name}.parquet"
        table = pa.table([pa.array(["a", "b", "c"]), pa.array(TEXTS), pa.array(["x", "y", "z"])], names=names)
        pq.write_table(table, path)
        with pytest.raises(InputError, match=rf"column '{name}' appears 2 times: the file is ambiguous; rename"):
            _read(path)
        records, stats = _read(path, on_error="skip")
        assert records == [] and stats.skipped == {f"ambiguous {name} column": 3}
        arrow = tmp_path / f"dup-{name}.arrow"
        with pa.OSFile(str(arrow), "wb") as f, pa.ipc.new_file(f, table.schema) as w:
            w.write_table(table)
        with pytest.raises(InputError, match=rf"column '{name}' appears 2 times"):
            _read(arrow)


def test_timestamps_beyond_year_9999_are_read_as_their_stored_integer(tmp_path: Path) -> None:
    table = pa.table({"id": pa.array([0, 1 << 60, 2000], pa.timestamp("ms")), "text": TEXTS})
    pq.write_table(table, tmp_path / "ts.parquet")
    with pa.OSFile(str(tmp_path / "ts.arrow"), "wb") as f, pa.ipc.new_file(f, table.schema) as w:
        w.write_table(table)
    for name in ("ts.parquet", "ts.arrow"):
        records, stats = _read(tmp_path / name)
        assert [r.id for r in records] == ["1970-01-01 00:00:00", str(1 << 60), "1970-01-01 00:00:02"]
        assert [r.text for r in records] == TEXTS and stats.skipped == {}
