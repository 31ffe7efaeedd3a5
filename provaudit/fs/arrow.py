"""Arrow arrays and tables from Python lists and numpy vectors, without importing pandas.

pyarrow's own conversions (``pa.array``, ``Table.from_pydict``/``from_pylist``, ``to_numpy``,
``pq.read_table``) first check whether they were given a pandas object, which imports pandas
when it is installed (``datasets`` installs it): 0.2 s and ~45 MB in every process that
writes a table. provaudit never holds pandas objects, so it builds arrays from buffers here.
The arrays are equal to what ``pa.array(values, type)`` returns (``tests/test_arrow.py``).

Example:
    >>> t = table({"id": ["a", None], "n": [1, 2]}, pa.schema([("id", pa.string()), ("n", pa.int64())]))
    >>> t.column("id").null_count
    1
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

_NUMPY: dict[pa.DataType, type] = {
    pa.int8(): np.int8, pa.int16(): np.int16, pa.int32(): np.int32, pa.int64(): np.int64,
    pa.uint8(): np.uint8, pa.uint16(): np.uint16, pa.uint32(): np.uint32, pa.uint64(): np.uint64,
    pa.float32(): np.float32, pa.float64(): np.float64,
}
_STRINGS = {pa.string(): np.int32, pa.large_string(): np.int64}


def _validity(values: Sequence[Any] | np.ndarray) -> tuple[pa.Buffer | None, int]:
    """Arrow's validity bitmap for ``values`` (None: no nulls) and the null count."""
    if isinstance(values, list) and None not in values:
        return None, 0
    valid = np.fromiter((v is not None for v in values), dtype=bool, count=len(values))
    nulls = len(values) - int(valid.sum())
    return (pa.py_buffer(np.packbits(valid, bitorder="little")) if nulls else None), nulls


def array(values: Sequence[Any] | np.ndarray, typ: pa.DataType) -> pa.Array:
    """``values`` (None for null) as an Arrow array of type ``typ``: strings, numbers or booleans.

    A numpy vector of a numeric type is wrapped without a copy when its dtype matches.

    Raises:
        TypeError: for a type this module does not build (use pyarrow directly).
    """
    n = len(values)
    if typ in _STRINGS:
        validity, nulls = _validity(values)
        data = [b"" if v is None else v.encode("utf-8") for v in values]
        offsets = np.zeros(n + 1, dtype=_STRINGS[typ])
        np.cumsum(np.fromiter(map(len, data), dtype=np.int64, count=n), out=offsets[1:])
        return pa.Array.from_buffers(typ, n, [validity, pa.py_buffer(offsets), pa.py_buffer(b"".join(data))],
                                     null_count=nulls)
    dense: Sequence[Any] | np.ndarray = values
    validity, nulls = None, 0
    if not isinstance(values, np.ndarray):
        validity, nulls = _validity(values)
        if nulls:
            dense = [0 if v is None else v for v in values]
    if typ == pa.bool_():
        bits = np.packbits(np.asarray(dense, dtype=bool), bitorder="little")
        return pa.Array.from_buffers(typ, n, [validity, pa.py_buffer(bits)], null_count=nulls)
    if typ not in _NUMPY:
        raise TypeError(f"provaudit.fs.arrow does not build {typ} arrays")
    vec: np.ndarray = np.ascontiguousarray(np.asarray(dense, dtype=_NUMPY[typ]))
    return pa.Array.from_buffers(typ, n, [validity, pa.py_buffer(vec)], null_count=nulls)


def table(columns: Mapping[str, Sequence[Any] | np.ndarray], schema: pa.Schema) -> pa.Table:
    """A table with ``schema``, its columns taken from ``columns`` by field name."""
    return pa.Table.from_arrays([array(columns[f.name], f.type) for f in schema], schema=schema)


def table_of_rows(rows: Sequence[Mapping[str, Any]], schema: pa.Schema) -> pa.Table:
    """A table with ``schema`` from one mapping per row."""
    return table({f.name: [r[f.name] for r in rows] for f in schema}, schema)


def to_numpy(col: pa.Array | pa.ChunkedArray, dtype: type) -> np.ndarray:
    """A numeric Arrow column without nulls as a numpy vector (a view of its buffer when it is one chunk)."""
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    if len(arr) == 0:
        return np.zeros(0, dtype=dtype)
    if arr.null_count:
        raise ValueError("column has nulls")
    buf = arr.buffers()[1]
    return np.frombuffer(buf, dtype=dtype, count=len(arr) + arr.offset)[arr.offset :]


def read_table(path: Path, columns: list[str] | None = None) -> pa.Table:
    """One Parquet file as a table (``pq.read_table`` goes through datasets, which imports pandas)."""
    return pq.ParquetFile(path).read(columns=columns)


Batches: TypeAlias = "pa.Table | pq.ParquetFile"  # a table in memory, or a Parquet file read a batch at a time


def iter_batches(source: Batches, columns: list[str] | None = None, rows: int = 1 << 14) -> Iterator[pa.RecordBatch]:
    """``source``'s rows (only ``columns`` when given) as record batches: a Parquet file is read
    a batch at a time, so that a reader of millions of pairs holds one batch."""
    if isinstance(source, pq.ParquetFile):
        yield from source.iter_batches(batch_size=rows, columns=columns)
    else:
        yield from (source.select(columns) if columns is not None else source).to_batches(max_chunksize=rows)


def num_rows(source: Batches) -> int:
    return int(source.metadata.num_rows) if isinstance(source, pq.ParquetFile) else int(source.num_rows)
