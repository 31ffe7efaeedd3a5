"""Sources: what the user named (files, directories, globs, saved datasets, ``hf:`` names), resolved
and read as a stream of ``Record`` objects by the reader of each format.

Supported inputs: ``.jsonl``/``.ndjson``, ``.json`` (an array of objects, streamed, or JSON
lines), ``.csv`` and ``.txt`` (one record per line), each plain or compressed (``.gz``,
``.zst``); ``.parquet``; ``.arrow`` (Arrow IPC files and streams); directories written by
``datasets.Dataset.save_to_disk``; directories and globs (recursing into supported files,
sorted); and Hugging Face hub datasets named ``hf:NAME`` or ``hf:NAME:SPLIT`` (streamed
through ``datasets``). ``fmt`` (``--format``) reads the files named or matched by a glob with
one reader whatever their names. Text and id fields may be nested paths (``doc.body``).
docs/reliability.md lists how each kind of bad input is reported (``on_error="fail"``) or
counted (``"skip"``).
"""

from __future__ import annotations

import glob
import os
import stat
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from provaudit.errors import ConfigError, InputError, ProvauditError
from provaudit.fs.urls import is_url, list_url, missing, open_url, url_info
from provaudit.read import arrow_files, lines, tables
from provaudit.read.json_array import read_json
from provaudit.read.records import (
    DEFAULT_MAX_RECORD_CHARS, Extract, FORCED_FORMATS, FORMATS, NO_TEXT, ReadStats, Record, SUPPORTED, Source,
    TEXT_FORMATS, printable_name,
)
from provaudit.read.rows import RowReader, compression, decompress_problem, open_binary


def _kind_of(path: str) -> str | None:
    p = path.lower()
    packed = compression(p)
    if packed:
        p = p[: p.rfind(".")]
    kind = FORMATS.get(os.path.splitext(p)[1])
    return kind if kind and (not packed or kind in TEXT_FORMATS) else None


def _is_saved_dataset(path: Path) -> bool:
    return path.is_dir() and (
        (path / "dataset_info.json").is_file() and (path / "state.json").is_file()
        or (path / "dataset_dict.json").is_file()
    )


def _utf8_name(name: str) -> bool:
    try:
        name.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def _unlisted(err: OSError) -> None:
    raise InputError(f"{printable_name(err.filename or '?')}: cannot list this directory ({err.strerror or err}); "
                     "fix its permissions or leave it out of the inputs")


def _walk(spec: str, ignored: list[str] | None) -> tuple[list[tuple[str, str, os.stat_result]], list[str]]:
    """Supported files (with their reader and ``stat``) and saved datasets under a directory (hidden entries are
    left out).

    A subdirectory that cannot be listed fails the run (its files are unknown); symbolic links to
    directories are not followed (no loops) and files that are not regular files (FIFOs, devices,
    sockets, links to them) are never opened: both are listed in ``ignored`` with the reason.
    """
    files: list[tuple[str, str, os.stat_result]] = []
    saved: list[str] = []
    note = ignored.append if ignored is not None else (lambda _: None)
    for root, dirs, names in os.walk(spec, onerror=_unlisted):
        if root != spec and _is_saved_dataset(Path(root)):
            saved.append(root)
            dirs[:] = []
            continue
        for d in sorted(dirs):
            if not d.startswith(".") and os.path.islink(os.path.join(root, d)):
                note(printable_name(os.path.join(root, d)) + " (a link to a directory: not followed; name it to read it)")
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and not os.path.islink(os.path.join(root, d)))
        for f in names:
            path = os.path.join(root, f)
            if f.startswith("."):
                continue
            if not _utf8_name(path):
                note(printable_name(path) + " (name is not UTF-8)")
            elif not (kind := _kind_of(f)):
                note(printable_name(path))
            elif (st := _regular(path)) is None:
                note(printable_name(path) + " (not a regular file: not opened)")
            else:
                files.append((path, kind, st))
    return sorted(files, key=lambda f: f[0]), sorted(saved)


def _regular(path: str) -> os.stat_result | None:
    """The ``stat`` of a regular file (or a link to one); None for anything else, or a dangling link."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st if stat.S_ISREG(st.st_mode) else None


def _expand_url(spec: str, fmt: str | None, ignored: list[str] | None) -> list[Source]:
    """A URL names one object (read with ``fmt`` or by its suffix) or a prefix, listed like a
    directory: supported objects, sorted, hidden names (a ``.name`` component) left out and other
    types listed in ``ignored``. Saved datasets, Arrow files and globs are read from local paths only."""
    if glob.has_magic(spec.split("://", 1)[1]):
        raise InputError(f"{printable_name(spec)}: patterns are not expanded in URLs; name the object or its prefix")
    what, _ = url_info(spec)
    if what == "file":
        kind = fmt or _kind_of(spec)
        if kind is None:
            raise InputError(f"{printable_name(spec)}: unsupported file type (supported: {SUPPORTED}; "
                             "or name the reader with --format)")
        if kind == "arrow":
            raise InputError(f"{printable_name(spec)}: Arrow files are read memory-mapped, from local paths only; "
                             "copy it to local storage")
        return [Source(spec, kind)]
    if what == "missing":
        raise InputError(f"{printable_name(spec)}: {missing(spec)}")
    files: list[str] = []
    for url, _size in list_url(spec):
        rel = url[len(spec.rstrip("/")) + 1:]
        if any(part.startswith(".") for part in rel.split("/")):
            continue
        if rel.rsplit("/", 1)[-1] in ("dataset_info.json", "state.json", "dataset_dict.json"):
            raise InputError(f"{printable_name(url)}: part of a saved dataset (datasets' save_to_disk), which is read "
                             "from local paths only; copy it to local storage")
        kind = _kind_of(url)
        if kind is None or kind == "arrow":
            if ignored is not None:
                ignored.append(printable_name(url) + (" (Arrow: local paths only)" if kind else ""))
            continue
        files.append(url)
    if not files:
        raise InputError(f"{printable_name(spec)}: prefix has no supported objects ({SUPPORTED}; Arrow files and "
                         "saved datasets are read from local paths only)")
    return [Source(f, _kind_of(f) or "") for f in files]


def expand_sources(specs: list[str] | tuple[str, ...], ignored: list[str] | None = None,
                   fmt: str | None = None) -> list[Source]:
    """Resolve files, directories, globs and ``hf:`` names into a list of sources.

    Args:
        specs: What the user named.
        ignored: If given, receives the files found in directories that are not read
            (unsupported types, names that are not UTF-8), sorted; hidden files and
            directories (``.name``) are left out without being listed.
        fmt: Read every file named, or matched by a glob, with this reader (one of
            ``FORCED_FORMATS``) whatever its name; ``.gz``/``.zst`` still mean compressed.
            Files found in directories are still chosen by their suffix.

    Raises:
        InputError: if a spec matches nothing or names an unsupported file type.
        ConfigError: for an unknown ``fmt``.
    """
    if fmt is not None and fmt not in FORCED_FORMATS:
        raise ConfigError(f"format must be one of {', '.join(FORCED_FORMATS)}, got {fmt!r}")
    out: list[Source] = []
    listed: dict[str, os.stat_result] = {}  # files found in directories, and their stat
    for spec in specs:
        spec = str(spec)
        if spec.startswith("hf:"):
            out.append(Source(spec, "hub"))
            continue
        if is_url(spec):
            out.extend(_expand_url(spec, fmt, ignored))
            continue
        path = Path(spec)
        if not _utf8_name(spec):
            raise InputError(f"{printable_name(spec)}: the file name is not valid UTF-8; rename it")
        if _is_saved_dataset(path):
            out.append(Source(spec, "saved"))
        elif path.is_dir():
            skipped: list[str] = []
            files, saved = _walk(spec, skipped)
            if ignored is not None:
                ignored.extend(sorted(skipped))
            if not files and not saved:
                raise InputError(f"{spec}: directory has no supported files ({SUPPORTED})")
            for f, found, fst in files:
                listed[f] = fst
                out.append(Source(f, found, fst.st_size))
            out.extend(Source(d, "saved") for d in saved)
        elif path.is_file():
            kind = fmt or _kind_of(spec)
            if kind is None:
                raise InputError(f"{spec}: unsupported file type (supported: {SUPPORTED}, saved datasets, hf:NAME; "
                                 "or name the reader with --format)")
            out.append(Source(spec, kind))
        elif glob.has_magic(spec):
            matches = sorted(m for m in glob.glob(spec, recursive=True)
                             if (fmt or _kind_of(m)) and os.path.isfile(m) and _utf8_name(m))
            if not matches:
                raise InputError(f"{spec}: pattern matches no supported files")
            out.extend(Source(m, fmt or _kind_of(m) or "") for m in matches)
        else:
            raise InputError(f"{spec}: no such file or directory")
    seen: set[object] = set()
    unique = []
    for s in out:  # one file named twice (dir and dir//file, overlapping globs) is read once
        try:
            st = listed.get(s.name) or os.stat(s.name) if s.kind != "hub" and not is_url(s.name) else None
            key: object = (st.st_dev, st.st_ino) if st is not None else s.name
        except OSError:
            key = s.name
        if key not in seen:
            seen.add(key)
            unique.append(s)
    return unique


def read_source(
    source: Source,
    *,
    text_field: str = "text",
    id_field: str | None = "id",
    on_error: str = "fail",
    stats: ReadStats | None = None,
    keep: Callable[[int], bool] | None = None,
    extract: Extract | None = None,
    max_record_chars: int = DEFAULT_MAX_RECORD_CHARS,
) -> Iterator[Record]:
    """Yield the records of one source, streaming.

    Args:
        source: From ``expand_sources``.
        text_field: Field holding the text.
        id_field: Field holding the record id; ``<source>#<row>`` when absent.
        on_error: ``"fail"`` raises InputError on a malformed record or unreadable file; ``"skip"``
            counts bad records by reason in ``stats`` and records an unreadable rest of file in
            ``stats.error``. Null and empty texts are counted in both modes.
        stats: Receives row, skip and alteration counts.
        keep: Sampling: called with each row number before the row is parsed; False passes it over.
        extract: Custom text extraction (model-output shapes): called once per object, right
            before its Record is made, instead of reading ``text_field``; returns the text
            (None: skipped as null text) and what the Record carries as ``meta``, or raises
            ValueError (a malformed record).
        max_record_chars: Longer texts are cut to this many characters (counted in
            ``stats.altered``); lines longer than 12 bytes per character are not parsed.

    Raises:
        InputError: naming the file and line/row, with the reason and a hint (fail mode; in skip
            mode only for a hub or saved dataset that cannot be opened at all).
        ConfigError: for an unknown ``on_error`` or a ``max_record_chars`` below 1.

    Example:
        >>> recs = list(read_source(Source("fixtures/reference/posts.jsonl", "jsonl")))
    """
    readers = {"jsonl": lines.read_jsonl, "json": read_json, "txt": lines.read_txt, "csv": tables.read_csv,
               "parquet": tables.read_parquet, "arrow": arrow_files.read_arrow, "saved": arrow_files.read_saved,
               "hub": tables.read_datasets}
    stats = stats if stats is not None else ReadStats()
    reader = RowReader(source, text_field, id_field, on_error, stats, keep, extract, max_record_chars)
    before = rows_seen(stats)
    yield from readers[source.kind](reader)
    if stats.error is None and rows_seen(stats) == before:
        report_no_records(reader, source)


def source_bytes(source: Source) -> int | None:
    """Bytes on disk of a file or saved dataset (progress totals); None for a hub dataset, a saved
    dataset ``datasets`` reads, or an input that cannot be read (its reader reports that)."""
    try:
        if source.kind == "hub":
            return None
        if is_url(source.name):
            return url_info(source.name)[1]
        if source.kind == "saved":
            files = arrow_files.saved_files(source.name)
            return None if files is None else sum(os.path.getsize(f) for f in files)
        return os.path.getsize(source.name)
    except (OSError, ProvauditError):
        return None


def rows_seen(stats: ReadStats) -> tuple[int, int, int]:
    """What ``stats`` has seen of a source; unchanged after reading it means the source had no records."""
    return stats.rows, stats.sampled_out, sum(n for r, n in stats.skipped.items() if r not in NO_TEXT)


def report_no_records(reader: Any, source: Source) -> None:
    """An input without a single record to read is a problem, not a silent zero."""
    no_text = {r: n for r, n in sorted(reader.stats.skipped.items()) if r in NO_TEXT and n}
    if no_text:
        reader.fatal(source.name, "no record has text (" + ", ".join(f"{r}: {n}" for r, n in no_text.items())
                     + "); check --text-field")
        return
    empty = source.kind not in ("saved", "hub") and _size(source.name) == 0
    reader.fatal(source.name, "empty file" if empty else "no records",
                 "remove it from the inputs, or use --on-error skip to report it and go on")


def _size(name: str) -> int | None:
    """Bytes of a local file or object; None when it is not one (or cannot be asked)."""
    try:
        if is_url(name):
            what, size = url_info(name)
            return size if what == "file" else None
        return os.path.getsize(name) if os.path.isfile(name) else None
    except (OSError, ProvauditError):
        return None


def count_rows(source: Source, on_error: str = "fail") -> int:
    """Rows of a source as readers number them (lines for line formats), without parsing records.

    With ``on_error="skip"``, a source that cannot be read to its end counts the rows before the problem.

    Raises:
        InputError: for hub datasets (size unknown when streaming) or unreadable files.
    """
    if source.kind in ("jsonl", "txt") or (source.kind == "json" and not _starts_with_bracket(source.name)):
        n = 0
        try:
            with open_binary(source.name) as f:
                for n, _ in enumerate(f, 1):  # noqa: B007
                    pass
        except (OSError, EOFError, zlib.error) as e:
            if on_error == "fail":
                raise InputError(f"{source.name}: {decompress_problem(source.name, e) or f'cannot read ({e})'}") from e
        return n
    if source.kind == "hub":
        raise InputError(f"{source.name}: size unknown for a streamed hub dataset; sample a fraction instead")
    if source.kind in ("parquet", "arrow", "saved"):
        try:
            return _parquet_rows(source.name) if source.kind == "parquet" else arrow_files.count_rows(source)
        except InputError:
            if on_error == "fail":
                raise
            return 0
    last = [0]

    def count(row: int) -> bool:
        last[0] = max(last[0], row + 1)
        return False

    stats = ReadStats()
    for _ in read_source(source, on_error="skip", keep=count, stats=stats):
        pass
    if stats.error and on_error == "fail":
        raise InputError(stats.error)
    return last[0]


def _starts_with_bracket(path: str) -> bool:
    head = b""
    try:
        with open_binary(path) as f:
            while len(head) < 1 << 16 and (chunk := f.read1(1 << 13)):  # type: ignore[attr-defined]
                head += chunk
    except (OSError, EOFError, zlib.error):
        pass
    return head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"[")


def _parquet_rows(path: str) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return int(pq.ParquetFile(open_url(path) if is_url(path) else path).metadata.num_rows)
    except (pa.ArrowException, OSError) as e:
        raise InputError(f"{path}: not a readable Parquet file ({e})") from e
