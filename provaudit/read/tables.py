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
from provaudit.fs.urls import is_url, open_url, url_info
from provaudit.read.records import Record
from provaudit.read.rows import (
    RowReader, SKIP_HINT, SURROGATE, UTF8_HINT, decompress_problem, one_line, open_binary, wrong_format,
)


# --- CSV --------------------------------------------------------------------------------------------
class _QuoteParity:
    """The lines of a CSV file, remembering whether the row being parsed has an open quote
    (``odd``: an odd number of '"' since the row began; doubled quotes inside a field count two),
    so that a row given up half-way (a field over the size limit) can be skipped to its real end."""

    def __init__(self, f: Any) -> None:
        self.f, self.odd, self.n = f, False, 0  # n: lines read so far

    def __iter__(self) -> _QuoteParity:
        return self

    def __next__(self) -> str:
        line: str = next(self.f)
        self.n += 1
        if line.count('"') & 1:
            self.odd = not self.odd
        return line

    def skip_quoted(self) -> None:
        """Read on to the line that closes the open quote (or to the end of the file)."""
        for _ in self:
            if not self.odd:
                return


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
            lines = _QuoteParity(f)
            rows = csv.reader(lines, strict=True)
            row, start = 0, 1
            try:
                header = next(rows, None)
                if header is None:
                    return
                while True:
                    start = lines.n + 1
                    lines.odd = False  # the reader stops between rows at a line end
                    try:
                        fields = next(rows)
                    except StopIteration:
                        return
                    except csv.Error as e:
                        if "field larger than field limit" in str(e):
                            if lines.odd:  # inside a quoted field: its other lines are not rows
                                lines.skip_quoted()
                            reader.bad(row, "record too large",
                                       f"a field is longer than {reader.max_line_bytes} characters", start,
                                       hint=f"raise --max-record-chars, or {SKIP_HINT}")
                            row += 1
                            continue
                        end = lines.n
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
                reader.fatal(f"{path} line {lines.n}", f"truncated gzip file ({e}); fetch it again")
            except (OSError, zlib.error) as e:
                problem = decompress_problem(path, e)
                if problem:
                    reader.fatal(f"{path} line {lines.n}", problem)
                else:
                    reader.fatal(path, f"cannot read ({getattr(e, 'strerror', None) or e})")
    finally:
        csv.field_size_limit(old_limit)


# --- Arrow batches to Python ------------------------------------------------------------------------
def py_rows(batch: Any) -> list[dict[str, Any]]:
    """The rows of an Arrow record batch as dicts; a value Python cannot hold (a timestamp or date
    beyond year 9999, which Arrow stores fine) is given as its stored integer instead of failing the batch."""
    try:
        return list(batch.to_pylist())
    except (OverflowError, ValueError):
        pass
    columns: list[list[Any]] = []
    for col in batch.columns:
        try:
            columns.append(col.to_pylist())
        except (OverflowError, ValueError):
            columns.append([_py_value(v) for v in col])
    names = batch.schema.names
    return [dict(zip(names, values)) for values in zip(*columns)] if columns else [{} for _ in range(batch.num_rows)]


def _py_value(scalar: Any) -> Any:
    try:
        return scalar.as_py()
    except (OverflowError, ValueError):
        value = getattr(scalar, "value", None)  # temporal scalars: the stored integer
        if isinstance(value, int):
            return value
        raise


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
    parts = name.split(".")
    top = name if name in names else parts[0]
    if names.count(top) > 1:
        return "", None, f"column {top!r} appears {names.count(top)} times: the file is ambiguous"
    if name in names:
        return name, schema.field(name).type, ""
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
    reason = "ambiguous text column" if "ambiguous" in problem else "missing text field"
    if not problem and not _is_text_type(ttype):
        reason, problem = "non-string text", f"column {reader.text_field!r} has type {ttype}, not string"
    id_column, _, id_problem = schema_field(schema, reader.id_field) if reader.id_field else ("", None, "")
    if not problem and "ambiguous" in id_problem:  # a missing id column is fine (row numbers), an ambiguous one not
        reason, problem = "ambiguous id column", id_problem
    if problem:
        if reader.on_error == "fail":
            fix = "rename one of the columns" if "ambiguous" in problem else "pick the text column with --text-field"
            raise InputError(f"{where}: {problem}; {fix}")
        reader.stats.skip(reason, f"{where} (all {total} rows)", total)
        return None
    return (column,) + ((id_column,) if id_column and id_column != column else ())


class ParquetGroup(NamedTuple):
    """Row group number ``group`` of a Parquet source (``rows`` rows), read for ``columns`` (None: all)."""

    group: int
    rows: int
    columns: tuple[str, ...] | None


def footer_problem(meta: Any, schema: Any) -> str:
    """What is inconsistent in a Parquet footer's row counts ("" when nothing): the row groups'
    rows must add up to the file's, and every flat column chunk holds one value (or null) per row.
    A footer that under-counts a row group would otherwise make readers drop its extra rows silently."""
    groups = [int(meta.row_group(g).num_rows) for g in range(meta.num_row_groups)]
    if sum(groups) != int(meta.num_rows):
        return f"the file says {meta.num_rows} rows, its row groups {sum(groups)}"
    flat = [c for c in range(meta.num_columns) if schema.column(c).max_repetition_level == 0]
    for g, n in enumerate(groups):
        rg = meta.row_group(g)
        for c in flat:
            values = int(rg.column(c).num_values)
            if values != n:
                return f"row group {g} says {n} rows, its column {rg.column(c).path_in_schema!r} holds {values} values"
    return ""


def _parquet_file(path: str) -> Any:
    """What ``pq.ParquetFile`` opens: the local path, or the object's random-access pyarrow file."""
    return open_url(path) if is_url(path) else path


def parquet_groups(reader: RowReader) -> Iterator[tuple[int, ParquetGroup]]:
    """``(first_row, ParquetGroup)`` for every row group, after checking the file and its text column
    (a problem there ends the source through the on-error rules: nothing is yielded)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = reader.name
    try:
        pf = pq.ParquetFile(_parquet_file(path))
        meta = pf.metadata
        names = pf.schema_arrow.names
    except (pa.ArrowException, OSError) as e:
        reader.fatal(path, f"not a readable Parquet file ({one_line(e)}); it is truncated or not Parquet: "
                           "export it again")
        return
    total = int(meta.num_rows)
    lie = footer_problem(meta, pf.schema)
    if lie:
        reader.fatal(path, f"inconsistent Parquet footer ({lie}); the file is corrupt: export it again")
        return
    cols: tuple[str, ...] | None = None  # every column when a custom extractor reads the rows
    if reader.extract is None:
        cols = text_columns(reader, pf.schema_arrow, path, total)
        if cols is None:
            return
    first, size = 0, url_info(path)[1] if is_url(path) else os.path.getsize(path)
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
            pf = pq.ParquetFile(_parquet_file(path))
        cols = list(group.columns) if group.columns is not None else None
        for batch in pf.iter_batches(batch_size=1024, row_groups=[group.group], columns=cols):
            for obj in py_rows(batch):
                rec = None if reader.sampled_out(row) else reader.record(row, obj)
                if rec is not None:
                    yield rec
                row += 1
        if row != first + n:  # the footer's count is what later rows are numbered by: never shift them silently
            raise ValueError(f"it holds {row - first} rows, the footer says {n}")
    except (pa.ArrowException, OSError, UnicodeDecodeError, ValueError, OverflowError) as e:
        where = f"{path} row group {group.group} (rows {min(row, first + n) + 1}-{first + n})"
        if reader.on_error == "fail":
            raise InputError(f"{where}: corrupt Parquet data ({one_line(e)}); export the file again, or "
                             f"{SKIP_HINT}") from e
        reader.stats.skip("corrupt Parquet data", where, max(0, first + n - row))


def read_parquet(reader: RowReader) -> Iterator[Record]:
    """Row groups in order, in batches; a corrupt row group is skipped (its rows counted) in skip mode."""
    import pyarrow.parquet as pq

    pf = None
    for first, group in parquet_groups(reader):
        if pf is None:
            pf = pq.ParquetFile(_parquet_file(reader.name))
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
