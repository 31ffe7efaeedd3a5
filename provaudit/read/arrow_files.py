"""Arrow inputs: ``.arrow`` files (Arrow IPC, file or stream format) and directories written by
``datasets.Dataset.save_to_disk`` (Arrow streams listed in ``state.json``).

Both are cut into blocks of record batches, ``ArrowBatches``, that worker processes read
themselves from a memory map (like Parquet row groups, ``blocks.BlockReading``): the parent
only reads the batch headers. Only the text and id columns are read (whole struct columns for
nested paths). A saved dataset is read without ``datasets`` (its data files are plain Arrow
streams), its splits in name order, rows numbered across them as ``datasets`` iterates them.

Problems are reported through ``rows.RowReader``: an unreadable file ends the source; a batch
that cannot be decoded ends it after the batches before it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any, NamedTuple

from provaudit.errors import InputError
from provaudit.read.records import Record, Source
from provaudit.read.rows import ARROW_MAGIC, RowReader, SKIP_HINT, one_line
from provaudit.read.tables import py_rows, read_datasets, text_columns

BLOCK_BYTES = 1 << 20  # record batches are handed to workers in runs of about this many bytes of the columns read


class ArrowBatches(NamedTuple):
    """Record batches ``[first, first + n_batches)`` of the Arrow file ``path`` (``rows`` rows), read for
    ``columns`` (None: all)."""

    path: str
    first: int
    n_batches: int
    rows: int
    columns: tuple[str, ...] | None


def saved_files(directory: str) -> list[str] | None:
    """The Arrow data files of a saved dataset (a ``DatasetDict``: its splits in name order), or None
    when its layout is not the plain one (then ``datasets`` reads it).

    Raises:
        InputError: when its ``state.json``/``dataset_dict.json`` cannot be read.
    """
    root = Path(directory)
    try:
        if (root / "dataset_dict.json").is_file():
            splits = json.loads((root / "dataset_dict.json").read_text(encoding="utf-8"))["splits"]
            parts = [saved_files(_inside(root, split, "dataset_dict.json")) for split in sorted(splits)]
            return None if any(p is None for p in parts) else [f for p in parts if p for f in p]
        state = json.loads((root / "state.json").read_text(encoding="utf-8"))
        files = [_inside(root, d["filename"], "state.json") for d in state["_data_files"]]
        files += [_inside(root, d["filename"], "state.json") for d in state.get("_indices_data_files") or []]
        if state.get("_indices_data_files") or state.get("_format_columns"):
            return None  # rows selected or columns hidden by datasets: let datasets apply it
        return files
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise InputError(f"{directory}: cannot load dataset ({type(e).__name__}: {e})") from e


def _inside(root: Path, name: object, listed_in: str) -> str:
    """``root/name`` for a name that stays inside ``root`` (the source's sha256 covers exactly the files
    under it): a plain file or split name, not a path, and not a link out of the directory.

    Raises:
        InputError: naming the dataset, the file that listed the name, and the name.
    """
    if not isinstance(name, str) or name in ("", ".", "..") or "/" in name or "\\" in name or "\0" in name:
        raise InputError(f"{root}: {listed_in} names {name!r}, which is not a file of the dataset directory; "
                         "a saved dataset reads only its own files: save it again")
    path = root / name
    real, base = os.path.realpath(path), os.path.realpath(root)
    if os.path.commonpath([real, base]) != base:
        raise InputError(f"{root}: {listed_in} names {name!r}, a link out of the dataset directory; "
                         "a saved dataset reads only its own files: save it again")
    return str(path)


def _batches(path: str, start: int = 0) -> Iterator[Any]:
    """The record batches of an Arrow IPC file or stream from number ``start``, memory-mapped."""
    import pyarrow as pa

    with pa.memory_map(path) as f:
        if f.read(len(ARROW_MAGIC)) == ARROW_MAGIC:
            f.seek(0)
            r = pa.ipc.open_file(f)
            for i in range(start, r.num_record_batches):
                yield r.get_batch(i)
        else:
            f.seek(0)
            for i, batch in enumerate(pa.ipc.open_stream(f)):
                if i >= start:
                    yield batch


def _schema(path: str) -> Any:
    import pyarrow as pa

    with pa.memory_map(path) as f:
        if f.read(len(ARROW_MAGIC)) == ARROW_MAGIC:
            f.seek(0)
            return pa.ipc.open_file(f).schema
        f.seek(0)
        return pa.ipc.open_stream(f).schema


def _files(reader: RowReader) -> list[str] | None:
    return [reader.name] if reader.source.kind == "arrow" else saved_files(reader.name)


def _file_blocks(reader: RowReader, path: str, first_row: int,
                 base: int) -> Generator[tuple[int, ArrowBatches], None, int]:
    """The blocks of one file (``base``: bytes of the files before it); returns its rows (those before
    an unreadable batch)."""
    import pyarrow as pa

    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError as e:
        reader.fatal(path, f"cannot read ({e.strerror or e})")
        return 0
    if head and not head.startswith((ARROW_MAGIC, b"\xff\xff\xff\xff")):
        reader.fatal(path, f"is not an Arrow IPC file or stream (it starts with {head[:4]!r}); pick the reader with "
                           "--format, or name the file for its format")
        return 0
    try:
        schema = _schema(path)
    except (pa.ArrowException, OSError) as e:
        reader.fatal(path, f"not a readable Arrow file ({one_line(e)}); it is truncated or not Arrow IPC: export it "
                           "again")
        return 0
    sizes: list[tuple[int, int]] = []  # (rows, bytes of the columns read) per batch
    error: BaseException | None = None
    cols: tuple[str, ...] | None = None
    try:
        for batch in _batches(path):
            sizes.append((batch.num_rows, batch.nbytes))
    except (pa.ArrowException, OSError) as e:
        error = e
    total = sum(n for n, _ in sizes)
    if reader.extract is None:
        cols = text_columns(reader, schema, path, total)
        if cols is None:
            return total
    start, rows, size, done, on_disk = 0, 0, 0, 0, os.path.getsize(path)
    for i, (n, nbytes) in enumerate(sizes):
        rows, size, done = rows + n, size + nbytes, done + n
        if size >= BLOCK_BYTES or i == len(sizes) - 1:
            reader.consumed = base + (on_disk * done // total if total else on_disk)  # progress: by rows
            yield first_row, ArrowBatches(path, start, i + 1 - start, rows, cols)
            first_row, start, rows, size = first_row + rows, i + 1, 0, 0
    if error is not None:
        reader.fatal(f"{path} record batch {len(sizes) + 1}", f"corrupt Arrow data ({one_line(error)}); the rest of "
                                                              "the file cannot be read: export it again")
    return total


def arrow_blocks(reader: RowReader) -> Iterator[tuple[int, ArrowBatches]]:
    """``(first_row, ArrowBatches)`` of about ``BLOCK_BYTES`` each, file after file, after checking each
    file and its text column (a problem there ends the source through the on-error rules)."""
    files = _files(reader)
    if files is None:
        raise ValueError(f"{reader.name}: not a plain saved dataset")
    first = base = 0
    for path in files:
        first += yield from _file_blocks(reader, path, first, base)
        base += os.path.getsize(path)
        if reader.stats.error is not None:
            return


def batch_records(reader: RowReader, first: int, block: ArrowBatches) -> Iterator[Record]:
    """The records of one block; a batch that cannot be decoded fails (fail mode) or is counted with the
    rest of the block's rows as skipped."""
    import pyarrow as pa

    row = first
    try:
        batches = _batches(block.path, block.first)
        for _ in range(block.n_batches):
            batch = next(batches)
            if block.columns is not None:
                batch = batch.select(list(block.columns))
            for obj in py_rows(batch):
                rec = None if reader.sampled_out(row) else reader.record(row, obj)
                if rec is not None:
                    yield rec
                row += 1
    except (pa.ArrowException, OSError, StopIteration, ValueError, OverflowError) as e:
        where = f"{block.path} record batches {block.first + 1}-{block.first + block.n_batches} (rows {row + 1}-" \
                f"{first + block.rows})"
        if reader.on_error == "fail":
            raise InputError(f"{where}: corrupt Arrow data ({one_line(e)}); export the file again, or "
                             f"{SKIP_HINT}") from e
        reader.stats.skip("corrupt Arrow data", where, first + block.rows - row)


def read_arrow(reader: RowReader) -> Iterator[Record]:
    """An Arrow IPC file or stream, batch after batch."""
    for first, block in arrow_blocks(reader):
        yield from batch_records(reader, first, block)


def read_saved(reader: RowReader) -> Iterator[Record]:
    """A ``save_to_disk`` directory: its Arrow files in order (through ``datasets`` when not plain)."""
    if saved_files(reader.name) is None:
        yield from read_datasets(reader)
        return
    yield from read_arrow(reader)


def count_rows(source: Source) -> int:
    """Rows of an Arrow file or saved dataset, from the batch headers.

    Raises:
        InputError: when a file cannot be read.
    """
    import pyarrow as pa

    files = [source.name] if source.kind == "arrow" else saved_files(source.name)
    if files is None:
        import datasets

        ds: Any = datasets.load_from_disk(source.name)
        return sum(len(ds[k]) for k in ds) if isinstance(ds, datasets.DatasetDict) else len(ds)
    try:
        return sum(batch.num_rows for path in files for batch in _batches(path))
    except (pa.ArrowException, OSError) as e:
        raise InputError(f"{source.name}: not a readable Arrow file ({one_line(e)})") from e
