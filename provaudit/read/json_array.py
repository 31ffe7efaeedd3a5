"""The JSON-array reader behind ``sources.read_source`` (a ``.json`` file, plain, ``.gz`` or ``.zst``,
that holds one array of objects, streamed with a bounded window; a ``.json`` file of JSON lines goes
to ``read_jsonl``).

Problems are reported through ``rows.RowReader`` like the line formats (see there).
"""

from __future__ import annotations

import codecs
import json
import re
import zlib
from collections.abc import Iterator
from typing import IO, Any

from provaudit.read.records import Record
from provaudit.read.lines import read_jsonl
from provaudit.read.rows import BOM, RowReader, UTF8_HINT, compression, decompress_problem, json_problem, open_binary, utf8_problem, wrong_format


# --- JSON arrays ------------------------------------------------------------------------------------
class _TooLarge(Exception):
    pass


class _JsonArray:
    """Streams the elements of a top-level JSON array, with a bounded look-ahead window."""

    _WS = re.compile(r"[ \t\r\n]*")
    CHUNK = 1 << 20

    def __init__(self, f: IO[bytes], limit: int, chunk: int = CHUNK):
        self.f, self.limit, self.chunk = f, limit, chunk
        self.utf8 = codecs.getincrementaldecoder("utf-8")()
        self.decoder = json.JSONDecoder()
        self.buf, self.pos, self.line, self.eof = "", 0, 1, False

    def fill(self) -> bool:
        if self.eof:
            return False
        if self.pos:
            self.buf, self.pos = self.buf[self.pos :], 0
        if len(self.buf) > self.limit:
            raise _TooLarge
        chunk = self.f.read(max(self.chunk, len(self.buf)))
        self.eof = not chunk
        self.buf += self.utf8.decode(chunk, final=self.eof)
        return True

    def advance(self, end: int) -> None:
        self.line += self.buf.count("\n", self.pos, end)
        self.pos = end

    def peek(self) -> str:
        """The next non-whitespace character ("" at the end of the file)."""
        while True:
            m = self._WS.match(self.buf, self.pos)
            self.advance(m.end() if m else self.pos)
            if self.pos < len(self.buf):
                return self.buf[self.pos]
            if not self.fill():
                return ""

    def value(self) -> Any:
        while True:
            try:
                obj, end = self.decoder.raw_decode(self.buf, self.pos)
                if end < len(self.buf) or self.eof:
                    self.advance(end)
                    return obj
            except json.JSONDecodeError as e:  # incomplete (read on) or malformed (raise)?
                incomplete = e.pos >= len(self.buf) - 64 or e.msg.startswith("Unterminated string")
                if self.eof or not incomplete:
                    raise
            self.fill()

    def location(self, pos: int) -> tuple[int, int]:
        """(line, column) of ``pos`` in the current window."""
        line = self.line + self.buf.count("\n", self.pos, pos) if pos >= self.pos else self.line
        return line, pos - self.buf.rfind("\n", 0, pos)


def read_json(reader: RowReader) -> Iterator[Record]:
    """A ``.json`` file: a top-level array of objects (streamed), or JSON lines."""
    path = reader.name
    if wrong_format(reader):
        return
    head = b""
    try:
        with open_binary(path) as f:
            while len(head) < 1 << 16 and (chunk := f.read1(1 << 13)):  # type: ignore[attr-defined]
                head += chunk
    except (EOFError, OSError, zlib.error):
        pass  # the reader that follows reports the problem, after the records before it
    if not head.lstrip(BOM + b" \t\r\n").startswith(b"["):
        yield from read_jsonl(reader)
        return
    with open_binary(path) as f:
        # a compressed file is read in small steps: a decompression error loses no element before it
        scan = _JsonArray(f, reader.max_line_bytes, 1 << 13 if compression(path) else _JsonArray.CHUNK)
        row = 0
        try:
            start = f.read(3)  # a compressed file cannot seek back: the bytes after a BOM start the window
            scan.buf = scan.utf8.decode(b"" if start == BOM else start)
            scan.peek()
            scan.advance(scan.pos + 1)  # the "["
            if scan.peek() == "]":
                scan.advance(scan.pos + 1)
            else:
                while True:
                    scan.peek()
                    line = scan.line
                    obj = scan.value()
                    if not reader.sampled_out(row):
                        rec = reader.record(row, obj, line)
                        if rec is not None:
                            yield rec
                    row += 1
                    nxt = scan.peek()
                    if nxt == "]":
                        scan.advance(scan.pos + 1)
                        break
                    if nxt != ",":
                        line, col = scan.location(scan.pos)
                        found = repr(nxt) if nxt else "the end of the file"
                        raise json.JSONDecodeError(f"expected ',' or ']' after element {row}, found {found}",
                                                   scan.buf, scan.pos)
                    scan.advance(scan.pos + 1)
            if scan.peek():
                raise json.JSONDecodeError("extra data after the array", scan.buf, scan.pos)
        except json.JSONDecodeError as e:
            line, col = scan.location(e.pos)
            reader.fatal(f"{path} line {line}", f"{json_problem(e, col)}; the rest of the file cannot be read: "
                                                "fix it, or convert it to JSON lines")
        except UnicodeDecodeError as e:
            reader.fatal(f"{path} line {scan.line}", f"{utf8_problem(e)}; {UTF8_HINT}")
        except _TooLarge:
            reader.fatal(f"{path} line {scan.line} (element {row + 1})",
                         f"element is longer than {reader.max_line_bytes} bytes or never ends; "
                         "raise --max-record-chars, or check the file is complete")
        except RecursionError:
            reader.fatal(f"{path} line {scan.line} (element {row + 1})", "malformed JSON (nested too deeply)")
        except (EOFError, OSError, zlib.error) as e:
            problem = decompress_problem(path, e)
            if problem is None:
                raise
            reader.fatal(f"{path} line {scan.line}", problem)
