"""``items.parquet``: verified before it is parsed, read one row group at a time.

The footer is verified (its checksummed chunks) before pyarrow sees it, and each row group's
bytes before it is decoded; pyarrow reads from the verified memory map, never from the file
again. Declared sizes are checked first, so that a small file cannot expand into gigabytes.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from provaudit.index.chunks import Chunked, hostile

ROW_GROUP = 16384  # items per row group (fewer when texts are kept and long)
MAX_GROUP_BYTES = 1 << 30  # a row group with texts may not claim to decode to more than this ...
MAX_ROW_BYTES = 8 << 10  # ... nor one without texts to more than this per row (id and source) plus 1 MiB
_COLUMNS = {"id": pa.string(), "source": pa.string(), "row": pa.int64()}


def open_items(f: Chunked, n_items: int, keep_text: bool) -> tuple[pq.ParquetFile, np.ndarray]:
    """The verified file's metadata, checked, and the first item of each row group."""
    if f.size < 12:
        raise hostile(f.path, "too short for Parquet")
    tail = f.read(f.size - 8, f.size)
    footer = int.from_bytes(tail[:4], "little")
    if tail[4:] != b"PAR1" or footer > f.size - 12:
        raise hostile(f.path, "no Parquet footer")
    f.ensure_bytes(np.array([f.size - 8 - footer]), np.array([f.size]))
    try:
        # dictionary columns stay dictionaries: a repeated huge value is not copied per row
        pf = pq.ParquetFile(pa.py_buffer(f.view("u1")), read_dictionary=["id", "source"])
    except (pa.ArrowException, OSError, ValueError) as e:
        raise hostile(f.path, f"unreadable Parquet metadata ({e})") from e
    want = dict(_COLUMNS, **({"text": pa.large_string()} if keep_text else {}))
    schema = pf.schema_arrow
    types = {n: schema.field(n).type for n in schema.names}
    types = {n: t.value_type if pa.types.is_dictionary(t) else t for n, t in types.items()}
    if types != want or len(schema.names) != len(want):
        raise hostile(f.path, f"columns must be {', '.join(want)}")
    md = pf.metadata
    if md.num_rows != n_items:
        raise hostile(f.path, f"{md.num_rows} rows, manifest says {n_items}")
    rows = np.array([md.row_group(g).num_rows for g in range(md.num_row_groups)], dtype=np.int64)
    if len(rows) and (int(rows.min()) < 1 or int(rows.max()) > ROW_GROUP):
        raise hostile(f.path, "row group sizes out of range")
    return pf, np.concatenate([[0], np.cumsum(rows)[:-1]]).astype(np.int64) if len(rows) else np.zeros(1, np.int64)


def read_group(f: Chunked, pf: pq.ParquetFile, g: int) -> pa.Table:
    """Row group ``g``, its bytes verified and its declared sizes bounded before decoding."""
    rg = pf.metadata.row_group(g)
    lo, hi, decoded = f.size, 0, 0
    for c in range(rg.num_columns):
        col = rg.column(c)
        start = col.dictionary_page_offset if col.has_dictionary_page and col.dictionary_page_offset else col.data_page_offset
        lo, hi = min(lo, start), max(hi, start + col.total_compressed_size)
        decoded += col.total_uncompressed_size
    keep_text = "text" in pf.schema_arrow.names
    limit = MAX_GROUP_BYTES if keep_text else rg.num_rows * MAX_ROW_BYTES + (1 << 20)
    if decoded > limit or not 0 <= lo <= hi <= f.size:
        raise hostile(f.path, f"row group {g} declares {decoded} bytes at {lo}-{hi}")
    f.ensure_bytes(np.array([lo]), np.array([hi]))
    try:
        return pf.read_row_group(g)
    except (pa.ArrowException, OSError, ValueError) as e:
        raise hostile(f.path, f"unreadable row group {g} ({e})") from e
