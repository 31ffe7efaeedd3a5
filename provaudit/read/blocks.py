"""Inputs cut into blocks that worker processes read and parse themselves.

A parallel audit or index build does not parse its inputs in the parent and pickle records
to the workers (that made the parent the bottleneck: 1.2 s of its CPU per 161 MB of JSON
lines). The parent cuts each source into blocks, ``BlockReading.blocks``: ranges of whole
lines of an uncompressed JSON-lines or text file (``iter_spans``, which reads the file only to
find line ends and count rows), blocks of decompressed lines of a gzip or zstd file
(``lines.iter_blocks``), the row groups of a Parquet file, or runs of record batches of an
Arrow file or saved dataset (``arrow_files.arrow_blocks``). A worker reads and
parses its block with ``parse_block``, using the same per-line and per-row code as
``sources.read_source``, so records, skip counts, example locations and error messages are
the same; the parent merges the workers' ``ReadStats`` in input order.

Example:
    >>> reading = BlockReading(Source("fixtures/reference/posts.jsonl", "jsonl"))
    >>> for block in reading.blocks(spans=True):
    ...     records, counted = reading.parse(block)   # in a worker
    ...     n = sum(1 for _ in records)
    ...     reading.stats.merge(counted)               # in the parent, in order
    >>> reading.finish()
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable, Iterator
from typing import NamedTuple

from provaudit.fs.urls import RawUrl, is_url, open_url, url_problem
from provaudit.read import lines
from provaudit.read.arrow_files import ArrowBatches, arrow_blocks, batch_records, saved_files
from provaudit.read.records import DEFAULT_MAX_RECORD_CHARS, Extract, ReadStats, Record, Source
from provaudit.read.sources import report_no_records, rows_seen
from provaudit.read.lines import LINE_PARSERS, iter_blocks
from provaudit.read.rows import RowReader, compression, wrong_format
from provaudit.read.tables import ParquetGroup, parquet_group_records, parquet_groups, read_datasets

BATCH_RECORDS = 2048
BATCH_CHARS = 1_000_000  # ~1 MB batches: cache-friendly kernels and balanced worker pools (measured in scripts/bench.py)


def batches(records: Iterable[Record]) -> Iterator[list[Record]]:
    """Group records into batches bounded by count (``BATCH_RECORDS``) and total characters (``BATCH_CHARS``)."""
    batch: list[Record] = []
    chars = 0
    for r in records:
        batch.append(r)
        chars += len(r.text)
        if len(batch) >= BATCH_RECORDS or chars >= BATCH_CHARS:
            yield batch
            batch, chars = [], 0
    if batch:
        yield batch


def records_as_given(records: list[Record]) -> tuple[list[Record], ReadStats]:
    """The ``parse`` of records the parent already read (formats it parses itself, and sampled reads)."""
    return records, ReadStats()


class FileSpan(NamedTuple):
    """Bytes ``[offset, offset + length)`` of a source file: whole lines, or the head of an over-long one."""

    offset: int
    length: int


def iter_spans(reader: RowReader, size: int | None = None) -> Iterator[tuple[int, FileSpan]]:
    """``iter_blocks`` of an uncompressed file as file ranges: ``(first_row, FileSpan)``.

    The file is read here only to find line ends and count rows (into one reused buffer);
    whoever parses a span reads its bytes itself (``parse_block``), so that the bytes of a
    target are not copied through a pipe to the process that parses them. An over-long
    line is a span of its first ``limit + 1`` bytes, as in ``iter_blocks``.
    """
    path, limit, size = reader.name, reader.max_line_bytes, size or lines.BLOCK_BYTES
    buf = bytearray(size)
    row = 0  # the first row not yet yielded
    start = 0  # file offset of the first byte not yet yielded: a line start, or in a drained line
    offset = 0  # file offset of buf[0]
    draining = False
    try:
        with (RawUrl(path) if is_url(path) else open(path, "rb", buffering=0)) as f:
            while n := f.readinto(buf):
                nl = buf.rfind(b"\n", 0, n)
                if draining:
                    if nl >= 0:
                        draining, start = False, offset + buf.find(b"\n", 0, n) + 1
                        if start < offset + nl + 1:
                            rows = buf.count(b"\n", start - offset, nl + 1)
                            yield row, FileSpan(start, offset + nl + 1 - start)
                            row, start = row + rows, offset + nl + 1
                elif nl >= 0:
                    rows = buf.count(b"\n", 0, nl + 1)
                    yield row, FileSpan(start, offset + nl + 1 - start)
                    row, start = row + rows, offset + nl + 1
                offset += n
                if not draining and offset - start > limit:  # the line at ``start`` is over the limit
                    yield row, FileSpan(start, limit + 1)
                    row, draining = row + 1, True
            if not draining and start < offset:  # the last line, without a newline
                yield row, FileSpan(start, offset - start)
    except OSError as e:
        reader.fatal(path, f"cannot read ({url_problem(e) if is_url(path) else e.strerror or e})")


Block = tuple[int, "bytes | FileSpan | ParquetGroup | ArrowBatches | list[Record]"]  # (first row, the rows or where)
BLOCK_KINDS = ("jsonl", "txt", "parquet", "arrow", "saved")  # sources ``BlockReading`` reads


class BlockReading:
    """A JSON-lines, text, Parquet or Arrow source (or saved dataset) cut into blocks that other processes
    read and parse.

    The parent iterates ``blocks()``, workers call ``parse`` on each block (it pickles), the
    parent merges their ``ReadStats`` into ``stats`` in order and calls ``finish()``. Records,
    counts and errors are those of ``read_source`` (without sampling).
    """

    def __init__(self, source: Source, *, text_field: str = "text", id_field: str | None = "id",
                 on_error: str = "fail", stats: ReadStats | None = None,
                 max_record_chars: int = DEFAULT_MAX_RECORD_CHARS, extract: Extract | None = None):
        if source.kind not in BLOCK_KINDS:
            raise ValueError(f"{source.kind} sources are not read in blocks")
        self.source = source
        self.stats = stats if stats is not None else ReadStats()
        self.reader = RowReader(source, text_field, id_field, on_error, self.stats, None, None, max_record_chars)
        self.parse = functools.partial(parse_block, source, text_field, id_field, on_error, max_record_chars,
                                       extract=extract)
        self._before = rows_seen(self.stats)

    def blocks(self, spans: bool = False, data: bytes | None = None) -> Iterator[Block]:
        """``(first_row, bytes)`` of whole lines, about 1 MB each, or ``(first_row, ParquetGroup)``
        per row group of a Parquet file; ends the source early through the on-error rules when the
        file cannot be read (gzip errors, I/O errors, a Parquet file without its text column).

        With ``spans``, an uncompressed line file comes as ``(first_row, FileSpan)`` ranges that
        ``parse`` reads itself: for parsing in other processes, without piping the bytes there.
        ``data``: the whole content of an uncompressed line file smaller than a block and than the
        line limit, already read (``run.loop`` bundles such files): one block of it, the same lines.
        """
        if self.source.kind == "parquet":
            yield from parquet_groups(self.reader)
            return
        if self.source.kind == "saved" and saved_files(self.source.name) is None:  # datasets reads it, here
            for batch in batches(read_datasets(self.reader)):
                yield batch[0].row, batch
            return
        if self.source.kind in ("arrow", "saved"):
            yield from arrow_blocks(self.reader)
            return
        if data is not None:  # a small file the caller read whole: the same lines as its one span
            if not wrong_format(self.reader, data):
                self.reader.consumed = len(data)
                if data:
                    yield 0, data
            return
        if wrong_format(self.reader):
            return
        if spans and not compression(self.source.name):
            for block in iter_spans(self.reader):
                self.reader.consumed = block[1].offset + block[1].length
                yield block
        else:
            yield from iter_blocks(self.reader)

    def finish(self) -> None:
        """After every parsed block was merged: a source without a single record is a problem."""
        if self.stats.error is None and rows_seen(self.stats) == self._before:
            report_no_records(self.reader, self.source)


def parse_block(source: Source, text_field: str, id_field: str | None, on_error: str, max_record_chars: int,
                block: Block, *, extract: Extract | None = None) -> tuple[Iterator[Record], ReadStats]:
    """The records of one block of a source (``BlockReading.blocks``), and what reading them counts:
    the counts are complete once the records are consumed (they stream: a row group is read in
    batches).

    This is how audit workers read their own input: the parent only cuts the file into blocks.
    The records are the ones ``read_source`` gives for these rows (without sampling).
    """
    stats = ReadStats()
    reader = RowReader(source, text_field, id_field, on_error, stats, None, extract, max_record_chars)
    first_row, data = block
    if isinstance(data, ParquetGroup):
        return parquet_group_records(reader, first_row, data), stats
    if isinstance(data, ArrowBatches):
        return batch_records(reader, first_row, data), stats
    if isinstance(data, list):  # records the parent read
        return iter(data), stats
    if isinstance(data, FileSpan):
        try:
            if is_url(source.name):  # a worker (local or on Ray) reads its own range of the object
                with open_url(source.name) as f:
                    data = bytes(f.read_at(data.length, data.offset))
            else:
                with open(source.name, "rb", buffering=0) as f:
                    data = os.pread(f.fileno(), data.length, data.offset)
        except OSError as e:
            reader.fatal(source.name, f"cannot read ({url_problem(e) if is_url(source.name) else e.strerror or e})")
            return iter(()), stats
    return LINE_PARSERS[source.kind](reader, first_row, data), stats
