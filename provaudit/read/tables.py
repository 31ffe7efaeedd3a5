"""Tabular readers behind ``sources.read_source``: CSV, Parquet, and hub datasets.

Problems are reported through ``rows.RowReader`` like the line formats (see there).
"""

from __future__ import annotations

import csv
import io
import os
import zlib
from collections.abc import Iterator
from typing import Any, NamedTuple

from provaudit.errors import InputError
from provaudit.read.records import Record
from provaudit.read.rows import (
    RowReader, SKIP_HINT, SURROGATE, UTF8_HINT, decompress_problem, one_line, open_binary, wrong_format,
)


# --- CSV --------------------------------------------------------------------------------------------
def read_csv(reader: RowReader) -> Iterator[Record]:
    """CSV with a header row; strict quoting, every row checked against the header's width."""
    path = reader.name
    if wrong_format(reader):
        return
    old_limit = csv.field_size_limit(reader.max_line_bytes)
    try:
        try:
            raw = open_binary(path)
        except OSError as e:
            reader.fatal(path, f"cannot read ({e.strerror or e})")
            return
        with io.TextIOWrapper(raw, encoding="utf-8-sig", errors="surrogateescape", newline="") as f:
            rows = csv.reader(f, strict=True)
            row, start = 0, 1
            try:
                header = next(rows, None)
                if header is None:
                    return
                while True:
                    start = rows.line_num + 1
                    try:
                        fields = next(rows)
                    except StopIteration:
                        return
                    except csv.Error as e:
                        if "field larger than field limit" in str(e):
                            raise
                        end = rows.line_num
                        span = f"; the quoted field runs to line {end}" if end > start else ""
                        reader.bad(row, "bad CSV quoting", f"bad CSV quoting ({e}{span})", start,
                                   hint=f"quote fields with commas, quotes or newlines and double inner quotes; "
                                        f"or {SKIP_HINT}")
                        row += 1
                        continue
                    if reader.sampled_out(row):
                        row += 1
                        continue
                    if len(fields) != len(header):
                        reader.bad(row, "bad CSV row", f"{len(fields)} fields, the header has {len(header)}", start,
                                   hint=f"quote fields that contain commas; or {SKIP_HINT}")
                    elif any(not v.isascii() and SURROGATE.search(v) for v in fields):
                        reader.bad(row, "invalid UTF-8", "invalid UTF-8", start, hint=f"{UTF8_HINT}, or {SKIP_HINT}")
                    else:
                        rec = reader.record(row, dict(zip(header, fields)), start)
                        if rec is not None:
                            yield rec
                    row += 1
            except csv.Error as e:
                reader.fatal(f"{path} line {start}", f"bad CSV ({e}); a quote is probably never closed")
            except EOFError as e:
                reader.fatal(f"{path} line {rows.line_num}", f"truncated gzip file ({e}); fetch it again")
            except (OSError, zlib.error) as e:
                problem = decompress_problem(path, e)
                if problem:
                    reader.fatal(f"{path} line {rows.line_num}", problem)
                else:
                    reader.fatal(path, f"cannot read ({getattr(e, 'strerror', None) or e})")
    finally:
        csv.field_size_limit(old_limit)


# --- Parquet ----------------------------------------------------------------------------------------
def _is_text_type(t: Any) -> bool:
    import pyarrow as pa

    if pa.types.is_dictionary(t):
        t = t.value_type
    return bool(pa.types.is_string(t) or pa.types.is_large_string(t) or getattr(pa.types, "is_string_view",
                                                                                  lambda _: False)(t))


def schema_field(schema: Any, name: str) -> tuple[str, Any, str]:
    """``(top-level column, type, "")`` of a column or a dotted path into struct columns (``doc.body``),
    or ``("", None, why not)``; a column spelled ``name`` wins, as in ``rows.lookup``."""
    import pyarrow as pa

    names = schema.names
    if name in names:
        return name, schema.field(name).type, ""
    parts = name.split(".")
    if len(parts) < 2 or parts[0] not in names:
        return "", None, f"no column {name!r} (columns: {', '.join(names[:8])})"
    t = schema.field(parts[0]).type
    for depth, part in enumerate(parts[1:], 1):
        where = ".".join(parts[:depth])
        if not pa.types.is_struct(t):
            return "", None, f"no column {name!r} ({where!r} has type {t}, not a struct)"
        i = t.get_field_index(part)
        if i < 0:
            fields = ", ".join(t.field(k).name for k in range(min(t.num_fields, 8)))
            return "", None, f"no column {name!r} (struct {where!r} has fields: {fields})"
        t = t.field(i).type
    return parts[0], t, ""


def text_columns(reader: RowReader, schema: Any, where: str, total: int) -> tuple[str, ...] | None:
    """The top-level columns to read for the text and id fields; None when the table has no string
    text field (an error in fail mode; in skip mode its ``total`` rows are counted as skipped)."""
    column, ttype, problem = schema_field(schema, reader.text_field)
    reason = "missing text field"
    if not problem and not _is_text_type(ttype):
        reason, problem = "non-string text", f"column {reader.text_field!r} has type {ttype}, not string"
    if problem:
        if reader.on_error == "fail":
            raise InputError(f"{where}: {problem}; pick the text column with --text-field")
        reader.stats.skip(reason, f"{where} (all {total} rows)", total)
        return None
    id_column = schema_field(schema, reader.id_field)[0] if reader.id_field else ""
    return (column,) + ((id_column,) if id_column and id_column != column else ())


class ParquetGroup(NamedTuple):
    """Row group number ``group`` of a Parquet source (``rows`` rows), read for ``columns`` (None: all)."""

    group: int
    rows: int
    columns: tuple[str, ...] | None


def parquet_groups(reader: RowReader) -> Iterator[tuple[int, ParquetGroup]]:
    """``(first_row, ParquetGroup)`` for every row group, after checking the file and its text column
    (a problem there ends the source through the on-error rules: nothing is yielded)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = reader.name
    try:
        pf = pq.ParquetFile(path)
        meta = pf.metadata
        names = pf.schema_arrow.names
    except (pa.ArrowException, OSError) as e:
        reader.fatal(path, f"not a readable Parquet file ({one_line(e)}); it is truncated or not Parquet: "
                           "export it again")
        return
    total = int(meta.num_rows)
    cols: tuple[str, ...] | None = None  # every column when a custom extractor reads the rows
    if reader.extract is None:
        cols = text_columns(reader, pf.schema_arrow, path, total)
        if cols is None:
            return
    first, size = 0, os.path.getsize(path)
    for g in range(meta.num_row_groups):
        n = int(meta.row_group(g).num_rows)
        reader.consumed = size * (first + n) // total if total else size  # progress: by rows
        yield first, ParquetGroup(g, n, cols)
        first += n


def parquet_group_records(reader: RowReader, first: int, group: ParquetGroup, pf: Any = None) -> Iterator[Record]:
    """The records of one row group, in batches; a corrupt group is skipped (its rows counted) in skip mode.

    ``pf`` is the open ``ParquetFile`` (opened here when None: a worker reading its own group).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    path, n, row = reader.name, group.rows, first
    try:
        if pf is None:
            pf = pq.ParquetFile(path)
        cols = list(group.columns) if group.columns is not None else None
        for batch in pf.iter_batches(batch_size=1024, row_groups=[group.group], columns=cols):
            for obj in batch.to_pylist():
                rec = None if reader.sampled_out(row) else reader.record(row, obj)
                if rec is not None:
                    yield rec
                row += 1
    except (pa.ArrowException, OSError, UnicodeDecodeError) as e:
        where = f"{path} row group {group.group} (rows {row + 1}-{first + n})"
        if reader.on_error == "fail":
            raise InputError(f"{where}: corrupt Parquet data ({one_line(e)}); export the file again, or "
                             f"{SKIP_HINT}") from e
        reader.stats.skip("corrupt Parquet data", where, first + n - row)


def read_parquet(reader: RowReader) -> Iterator[Record]:
    """Row groups in order, in batches; a corrupt row group is skipped (its rows counted) in skip mode."""
    import pyarrow.parquet as pq

    pf = None
    for first, group in parquet_groups(reader):
        if pf is None:
            pf = pq.ParquetFile(reader.name)
        yield from parquet_group_records(reader, first, group, pf)


# --- datasets ---------------------------------------------------------------------------------------
def read_datasets(reader: RowReader) -> Iterator[Record]:
    """A directory written by ``save_to_disk`` (Arrow files), or a hub dataset streamed by name.

    Only Arrow and JSON are read: no dataset script is run (``datasets`` >= 4 has none; older
    versions are asked with ``trust_remote_code=False``).
    """
    try:
        import datasets
    except ImportError as e:  # pragma: no cover - core dependency
        raise InputError("reading saved or hub datasets needs the 'datasets' package") from e
    name = reader.name
    try:
        if reader.source.kind == "saved":
            ds: Any = datasets.load_from_disk(name)
            parts = [ds[k] for k in sorted(ds)] if isinstance(ds, datasets.DatasetDict) else [ds]
        else:
            _, hub_name, *split = name.split(":", 2)
            kwargs: dict[str, Any] = {}
            if int(datasets.__version__.split(".")[0]) < 4:  # pragma: no cover - old datasets only
                kwargs["trust_remote_code"] = False
            parts = [datasets.load_dataset(hub_name, split=split[0] if split else "train", streaming=True, **kwargs)]
    except Exception as e:  # datasets raises many unrelated types
        raise InputError(f"{name}: cannot load dataset ({type(e).__name__}: {e})") from e
    row = 0
    try:
        for part in parts:
            for obj in part:
                rec = None if reader.sampled_out(row) else reader.record(row, obj)
                if rec is not None:
                    yield rec
                row += 1
    except InputError:
        raise
    except Exception as e:  # a network or Arrow error while streaming
        reader.fatal(f"{name} row {row + 1}", f"cannot read further ({type(e).__name__}: {one_line(e)})")
