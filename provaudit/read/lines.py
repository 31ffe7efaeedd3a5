"""JSON-lines and text readers (plain, gzip or zstd), read in blocks of whole lines.

``read_jsonl``/``read_txt`` stream a source through ``iter_blocks``; ``LINE_PARSERS`` parse one
block (what audit workers do with the blocks ``blocks.BlockReading`` hands them). Problems are
reported through ``rows.RowReader``.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterator

from provaudit.read.records import Record
from provaudit.read.rows import (
    BOM, RowReader, SKIP_HINT, UTF8_HINT, compression, decompress_problem, disk_position, json_problem, open_binary,
    utf8_problem, wrong_format,
)

def _decode(data: bytes | memoryview) -> str:
    return str(data, "utf-8")


BLOCK_BYTES = 1 << 20  # line formats are read, and handed to audit workers, in runs of whole lines this large
_GZIP_READ = 1 << 13  # a compressed file is read in the steps readline would use: an error loses no whole line


def iter_blocks(reader: RowReader, size: int | None = None) -> Iterator[tuple[int, bytes]]:
    """``(first_row, data)``: runs of about ``size`` bytes of whole lines, in order.

    Every line in ``data`` ends with a newline except the file's last when it has none. A line
    over the byte limit arrives as its first ``limit + 1`` bytes, the rest drained without being
    held, so that ``block_lines`` sees it as over the limit. A gzip or zstd error or an unreadable
    file ends the iteration through ``reader.fatal`` after the whole lines read before it.
    """
    path, limit, size = reader.name, reader.max_line_bytes, size or BLOCK_BYTES
    row = 0  # the first row not yet yielded
    ready: list[bytes] = []  # whole lines not yet yielded
    ready_bytes = 0
    pending: list[bytes] = []  # the start of a line whose newline has not been read
    pending_bytes = 0
    draining = False  # reading past the head of an over-long line (held in ``pending``)

    f = None

    def flush() -> tuple[int, bytes]:
        nonlocal row, ready, ready_bytes
        reader.consumed = max(reader.consumed, disk_position(f))
        data = b"".join(ready) if len(ready) > 1 else ready[0]
        first, row = row, row + data.count(b"\n") + (not data.endswith(b"\n"))
        ready, ready_bytes = [], 0
        return first, data

    try:
        with open_binary(path) as f:
            packed = compression(path) != ""
            read, step = (f.read1, _GZIP_READ) if packed else (f.read, size)  # type: ignore[attr-defined]
            while True:
                chunk = read(step)
                if not chunk:
                    break
                if draining:
                    nl = chunk.find(b"\n")
                    if nl < 0:
                        continue
                    ready.extend(pending)
                    ready.append(b"\n")
                    ready_bytes += pending_bytes + 1
                    pending, pending_bytes, draining = [], 0, False
                    chunk = chunk[nl + 1:]
                nl = chunk.rfind(b"\n") + 1
                if nl:
                    ready.extend(pending)
                    ready.append(chunk[:nl] if nl < len(chunk) else chunk)
                    ready_bytes += pending_bytes + nl
                    pending, pending_bytes = ([chunk[nl:]], len(chunk) - nl) if nl < len(chunk) else ([], 0)
                elif chunk:
                    pending.append(chunk)
                    pending_bytes += len(chunk)
                if pending_bytes > limit:  # keep the head only, and drain the rest of the line
                    pending, pending_bytes, draining = [b"".join(pending)[: limit + 1]], limit + 1, True
                if ready_bytes >= size:
                    yield flush()
            ready.extend(pending)
            pending = []
            if ready:
                yield flush()
    except (EOFError, OSError, zlib.error) as e:  # gzip.BadGzipFile is an OSError
        if ready:
            yield flush()
        problem = decompress_problem(path, e)
        if problem:
            reader.fatal(f"{path} line {row + 1}", problem)
        else:
            reader.fatal(path, f"cannot read ({getattr(e, 'strerror', None) or e})")


def block_lines(limit: int, first_row: int, data: bytes) -> Iterator[tuple[int, bytes, bool]]:
    """``(row, line, complete)`` for the lines of a block, newline included (as ``readline`` gives
    them); a line of over ``limit`` bytes (newline excluded) comes as its first ``limit`` bytes,
    with ``complete`` False."""
    pos, end = 0, len(data)
    find = data.find
    while pos < end:
        nl = find(b"\n", pos) + 1 or end
        if nl - pos - (data[nl - 1] == 10) > limit:
            yield first_row, data[pos: pos + limit], False
        else:
            yield first_row, data if nl - pos == end else data[pos:nl], True
        first_row += 1
        pos = nl


def _text_of_line(reader: RowReader, row: int, data: bytes) -> str | None:
    """The line decoded as UTF-8 without a leading BOM, or None (counted) when invalid."""
    view = memoryview(data)[3:] if data.startswith(BOM) else data
    try:
        return _decode(view)
    except UnicodeDecodeError as e:
        reader.bad(row, "invalid UTF-8", utf8_problem(e), hint=f"{UTF8_HINT}, or {SKIP_HINT}")
        return None


def _jsonl_records(reader: RowReader, first_row: int, block: bytes) -> Iterator[Record]:
    decode_json = json.JSONDecoder().decode
    keep, stats = reader.keep, reader.stats
    for row, data, complete in block_lines(reader.max_line_bytes, first_row, block):
        if data.isspace():
            continue
        if keep is not None and not keep(row):
            stats.sampled_out += 1
            continue
        if not complete:
            reader.bad(row, "record too large", f"line is longer than {reader.max_line_bytes} bytes (12 bytes per "
                       "character of --max-record-chars, at least 64 KiB)",
                       hint=f"raise --max-record-chars, or {SKIP_HINT}")
            continue
        reader.escapes = b"\\u" in data and (b"\\ud" in data or b"\\uD" in data)
        if data.startswith(BOM):
            line = _text_of_line(reader, row, data)
        else:
            try:
                line = data.decode("utf-8")
            except UnicodeDecodeError:
                line = _text_of_line(reader, row, data)
        del data
        if line is None:
            continue
        try:
            obj = decode_json(line)
        except json.JSONDecodeError as e:
            reader.bad(row, "malformed JSON", json_problem(e, e.colno))
            continue
        except RecursionError:
            reader.bad(row, "malformed JSON", "malformed JSON (nested too deeply)")
            continue
        del line
        rec = reader.record(row, obj)
        if rec is not None:
            yield rec


def _txt_records(reader: RowReader, first_row: int, block: bytes) -> Iterator[Record]:
    for row, data, complete in block_lines(reader.max_line_bytes, first_row, block):
        if data.isspace():
            reader.stats.skip("empty text", reader.where(row))
            continue
        if reader.sampled_out(row):
            continue
        if not complete:  # keep the head (cut to max-record-chars and counted by clean): whole characters only
            try:
                _decode(data)
            except UnicodeDecodeError as e:
                if e.start >= len(data) - 3:
                    data = data[: e.start]
        line = _text_of_line(reader, row, data)
        del data
        if line is None:
            continue
        text = line.rstrip("\r\n")
        if not text or text.isspace():
            reader.stats.skip("empty text", reader.where(row))
            continue
        text = reader.clean(text, row, None)
        reader.stats.rows += 1
        yield Record(f"{reader.name}#{row}", text, reader.name, row)


LINE_PARSERS = {"jsonl": _jsonl_records, "txt": _txt_records}


def read_jsonl(reader: RowReader) -> Iterator[Record]:
    if wrong_format(reader):
        return
    for first, block in iter_blocks(reader):
        yield from _jsonl_records(reader, first, block)


def read_txt(reader: RowReader) -> Iterator[Record]:
    if wrong_format(reader):
        return
    for first, block in iter_blocks(reader):
        yield from _txt_records(reader, first, block)
