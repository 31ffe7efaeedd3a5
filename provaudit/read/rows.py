"""``RowReader``: turns the raw rows of one source into Records, raising (fail) or counting (skip) problems.

Every reader (``lines``, ``json_array``, ``tables``) streams: memory is bounded by one record (a
line is read with a byte limit, ``line_bytes(max_record_chars)``; a text is cut to
``max_record_chars``), never by the file. Rows are numbered the way ``sources.count_rows``
numbers them (lines for line formats).

Problems go through ``RowReader``. A bad record (malformed JSON, invalid UTF-8, a missing or
non-string text field, a bad CSV row, a line over the byte limit) raises ``InputError`` in
``fail`` mode, naming file and line/row with the reason and a hint; in ``skip`` mode it is
counted by reason in ``ReadStats.skipped`` (with a few example locations). Null and empty
texts are counted, never errors. A problem that ends a source early (truncated gzip,
corrupt Parquet file, unclosed JSON array, unreadable file) is an error in ``fail`` mode and
``ReadStats.error`` in ``skip`` mode; the records read before it are kept. A Parquet row
group that cannot be decoded is skipped on its own (its rows are counted).
"""

from __future__ import annotations

import gzip
import io
import json
import re
import zlib
from collections.abc import Callable, Iterator
from typing import IO, Any

from provaudit.errors import ConfigError, InputError, ProvauditError
from provaudit.fs.urls import is_url, open_url_stream
from provaudit.read.records import Extract, ON_ERROR, ReadStats, Record, Source

SKIP_HINT = "use --on-error skip to skip and count such records"
UTF8_HINT = "the file is not UTF-8: convert it (e.g. iconv -f latin1 -t utf-8)"
SURROGATE = re.compile("[\ud800-\udfff]")
BOM = b"\xef\xbb\xbf"
GZIP_MAGIC, ZSTD_MAGIC, ARROW_MAGIC = b"\x1f\x8b", b"\x28\xb5\x2f\xfd", b"ARROW1"
COMPRESSED = {".gz": "gzip", ".zst": "zstd", ".zstd": "zstd"}


def compression(path: str) -> str:
    """``gzip``, ``zstd`` or ``""``, from the file name's last suffix."""
    dot = path.rfind(".")
    return COMPRESSED.get(path[dot:].lower(), "") if dot >= 0 else ""


def field_path(name: str | None) -> tuple[str, ...] | None:
    """The parts of a nested field name (``doc.body``), or None for a plain name."""
    return tuple(name.split(".")) if name and "." in name.strip(".") else None


def lookup(obj: dict[str, Any], name: str, path: tuple[str, ...] | None) -> tuple[Any, str]:
    """``(value, "")`` of field ``name`` in a record, or ``(None, why it is missing)``.

    A key spelled ``name`` wins (``datasets``' ``flatten()`` names columns ``doc.body``); else
    ``path`` is followed through nested objects. A null on the way is a null value.
    """
    if name in obj:
        return obj[name], ""
    if path is None:
        return None, f"no field {name!r} (fields: {', '.join(sorted(map(str, obj))[:8])})"
    cur: Any = obj
    for depth, part in enumerate(path):
        if cur is None:
            return None, ""
        where = ".".join(path[:depth])
        if not isinstance(cur, dict):
            return None, f"no field {name!r} ({where!r} is {type(cur).__name__}, not an object)"
        if part not in cur:
            fields = ", ".join(sorted(map(str, cur))[:8])
            return None, f"no field {name!r} ({f'{where!r} has ' if depth else ''}fields: {fields})"
        cur = cur[part]
    return cur, ""


def line_bytes(max_record_chars: int) -> int:
    """Longest line a line-format reader will parse: room for a JSON-escaped record of the maximum size."""
    return max(1 << 16, 12 * max_record_chars)


class RowReader:
    """Turns raw rows of one source into Records, raising (fail) or counting (skip) problems."""

    def __init__(self, source: Source, text_field: str, id_field: str | None, on_error: str, stats: ReadStats,
                 keep: Callable[[int], bool] | None, extract: Extract | None, max_record_chars: int):
        if on_error not in ON_ERROR:
            raise ConfigError(f"on-error must be one of {', '.join(ON_ERROR)}, got {on_error!r}")
        if max_record_chars < 1:
            raise ConfigError(f"max-record-chars must be >= 1, got {max_record_chars}")
        self.source, self.text_field, self.id_field = source, text_field, id_field
        self.text_path, self.id_path = field_path(text_field), field_path(id_field)
        self.on_error, self.stats, self.keep, self.extract = on_error, stats, keep, extract
        self.max_record_chars = max_record_chars
        self.max_line_bytes = line_bytes(max_record_chars)
        self.consumed = 0  # bytes of the source on disk read so far by whoever cuts it into blocks (progress)
        # Lone surrogates only come from JSON escapes (Arrow and strict UTF-8 decoding rule them out);
        # readers that cannot produce them turn the per-record search off.
        self.escapes = source.kind in ("jsonl", "json")

    @property
    def name(self) -> str:
        return self.source.name

    def sampled_out(self, row: int) -> bool:
        """True (and counted) when sampling passes over this row; checked before parsing it."""
        if self.keep is None or self.keep(row):
            return False
        self.stats.sampled_out += 1
        return True

    def where(self, row: int, line: int | None = None) -> str:
        """``file line N`` (line formats), ``file line L (element N)`` (JSON arrays), ``file line L (row N)``
        (CSV) or ``file row N``."""
        if line is not None:
            return f"{self.name} line {line} ({'element' if self.source.kind == 'json' else 'row'} {row + 1})"
        if self.source.kind in ("jsonl", "txt", "json"):
            return f"{self.name} line {row + 1}"
        return f"{self.name} row {row + 1}"

    def bad(self, row: int, reason: str, message: str, line: int | None = None, *, hint: str = SKIP_HINT) -> None:
        """A bad record: an error in fail mode, a count by reason in skip mode."""
        where = self.where(row, line)
        if self.on_error == "fail":
            raise InputError(f"{where}: {message}; {hint}")
        self.stats.skip(reason, where)

    def fatal(self, where: str, message: str, fail_hint: str = "") -> None:
        """A problem that ends the source: an error in fail mode, ``stats.error`` in skip mode.

        ``fail_hint`` is added to the message in fail mode only.
        """
        if self.on_error == "fail":
            raise InputError(f"{where}: {message}" + (f"; {fail_hint}" if fail_hint else ""))
        self.stats.error = f"{where}: {message}"

    def clean(self, text: str, row: int, line: int | None, what: str = "text") -> str:
        """Cap the text at ``max_record_chars`` and replace lone surrogates (counted, never silent)."""
        if what == "text" and len(text) > self.max_record_chars:
            text = text[: self.max_record_chars]
            self.stats.alter("truncated to max-record-chars", self.where(row, line))
        if self.escapes and not text.isascii() and SURROGATE.search(text):
            text = SURROGATE.sub("\ufffd", text)
            self.stats.alter(f"lone surrogates replaced in {what}", self.where(row, line))
        return text

    def record(self, row: int, obj: Any, line: int | None = None) -> Record | None:
        """The Record of one parsed row, or None (counted) when it has no usable text."""
        if not isinstance(obj, dict):
            self.bad(row, "not an object", f"expected a JSON object, got {type(obj).__name__}", line)
            return None
        meta = None
        if self.extract is not None:
            try:
                text, meta = self.extract(obj)
            except ValueError as e:
                self.bad(row, "malformed record", str(e), line)
                return None
            obj = {**obj, self.text_field: text}
        if self.text_field in obj:
            text = obj[self.text_field]
        else:
            text, missing = lookup(obj, self.text_field, self.text_path)
            if missing:
                self.bad(row, "missing text field", missing, line, hint=f"use --text-field, or {SKIP_HINT}")
                return None
        if text is None:
            self.stats.skip("null text", self.where(row, line))
            return None
        if not isinstance(text, str):
            self.bad(row, "non-string text", f"field {self.text_field!r} is {type(text).__name__}, not a string",
                     line)
            return None
        if not text or text.isspace():
            self.stats.skip("empty text", self.where(row, line))
            return None
        if self.escapes or len(text) > self.max_record_chars:
            text = self.clean(text, row, line)
        rid = (obj.get(self.id_field) if self.id_path is None else lookup(obj, self.id_field, self.id_path)[0]
               ) if self.id_field else None
        if rid is None:
            ident = f"{self.name}#{row}"
        else:
            ident = rid if type(rid) is str else str(rid)
            if self.escapes:
                ident = self.clean(ident, row, line, "id")
        self.stats.rows += 1
        return Record(ident, text, self.name, row, meta)


def open_binary(path: str) -> IO[bytes]:
    """The file's bytes, decompressed when it is named ``.gz`` or ``.zst``.

    zstd is read with pyarrow's codec (already a dependency): it reads concatenated frames and
    reports a truncated file, where ``zstandard``'s ``stream_reader`` stops silently at the end
    of the first frame (``read_across_frames=False``) and returns a truncated file without error.
    """
    kind = compression(path)
    if kind == "gzip":
        if is_url(path):
            return _GzipUrl(fileobj=_open_raw(path), mode="rb")  # type: ignore[return-value]
        return gzip.open(path, "rb")  # type: ignore[return-value]  # a GzipFile is a binary IO
    if kind == "zstd":
        import pyarrow as pa

        raw = _open_raw(path)
        try:
            f = _Zstd(pa.CompressedInputStream(pa.PythonFile(raw, mode="r"), "zstd"), 1 << 16)
        except BaseException:
            raw.close()
            raise
        f.disk = raw
        return f
    return _open_raw(path)


def _open_raw(path: str) -> IO[bytes]:
    """The bytes of a local file or of an object named by URL (``fs.urls``), buffered."""
    return open_url_stream(path) if is_url(path) else open(path, "rb")


class _GzipUrl(gzip.GzipFile):
    """A gzip object read by URL: closing it closes the object's stream too."""

    def close(self) -> None:
        raw = self.fileobj
        try:
            super().close()
        finally:
            getattr(raw, "close", lambda: None)()


class _Zstd(io.BufferedReader):
    disk: IO[bytes]  # the compressed file


def disk_position(f: IO[bytes] | None) -> int:
    """How far into the file on disk a reader from ``open_binary`` has read (0 when closed)."""
    disk = getattr(f, "disk", None) or getattr(f, "fileobj", None) or f
    try:
        return int(disk.tell()) if disk is not None else 0
    except (OSError, ValueError):
        return 0


def decompress_problem(path: str, e: BaseException) -> str | None:
    """What a decompression error means (truncated or corrupt data, and the fix), or None for other errors."""
    if isinstance(e, EOFError):
        return f"truncated gzip file ({e}); the file is incomplete: fetch it again"
    if isinstance(e, (gzip.BadGzipFile, zlib.error)):
        return f"corrupt gzip data ({e}); fetch the file again"
    if compression(path) == "zstd" and isinstance(e, OSError) and e.errno is None:
        if "Truncated compressed stream" in str(e):
            return "truncated zstd file; the file is incomplete: fetch it again"
        if "too much memory" in str(e):
            return ("zstd window over 128 MiB (compressed with --long); recompress it without --long "
                    "(zstd -d --long=31 -c FILE | zstd -o NEW)")
        return f"corrupt zstd data ({one_line(e)}); fetch the file again"
    return None


def _sniff(path: str) -> bytes:
    """The first bytes of a file as stored (empty when unreadable: the reader reports that)."""
    try:
        with _open_raw(path) as f:
            return f.read(4)
    except (OSError, ProvauditError):
        return b""


def wrong_format(reader: RowReader, head: bytes | None = None) -> bool:
    """A compressed, Parquet or Arrow file under another name: reported once, instead of line after line
    of noise. ``head``: the file's first bytes when already read."""
    head, kind = (_sniff(reader.name) if head is None else head[:4]), compression(reader.name)
    for magic, name, suffix in ((GZIP_MAGIC, "gzip", ".gz"), (ZSTD_MAGIC, "zstd", ".zst")):
        if head.startswith(magic) and kind != name:
            reader.fatal(reader.name, f"is {name}-compressed but not named {suffix}; add the {suffix} suffix")
            return True
        if head and not head.startswith(magic) and kind == name:
            reader.fatal(reader.name, f"is not {name}-compressed (it starts with {head!r}); remove the {suffix} suffix")
            return True
    if head == b"PAR1":
        reader.fatal(reader.name, "is a Parquet file; name it .parquet")
        return True
    if head.startswith(ARROW_MAGIC[:4]) or head == b"\xff\xff\xff\xff":
        reader.fatal(reader.name, "is an Arrow file; name it .arrow")
        return True
    return False


def one_line(e: BaseException) -> str:
    """An exception's message on one printable line (pyarrow's span several, and may quote raw bytes)."""
    text = " ".join(str(e).split())
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)


def json_problem(e: json.JSONDecodeError, col: int) -> str:
    return f"malformed JSON ({e.msg.removesuffix(' at')} at column {col})"


def utf8_problem(e: UnicodeDecodeError) -> str:
    return f"invalid UTF-8 ({e.reason} at byte {e.start + 1})"


