"""Read reference and target corpora as a stream of ``Record`` objects.

Supported inputs: ``.jsonl``/``.ndjson`` (optionally ``.gz``), ``.json`` (an array
of objects, or JSON lines), ``.parquet``, ``.csv``, ``.txt`` (one record per
line, optionally ``.gz``), directories written by ``datasets.Dataset.save_to_disk``,
directories and globs (recursing into supported files, sorted), and Hugging Face
hub datasets named ``hf:NAME`` or ``hf:NAME:SPLIT`` (streamed through ``datasets``).
"""

from __future__ import annotations

import csv
import glob
import gzip
import hashlib
import io
import json
import os
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from provaudit.errors import ConfigError, InputError

SUFFIXES = (".jsonl", ".ndjson", ".jsonl.gz", ".ndjson.gz", ".json", ".parquet", ".csv", ".txt", ".txt.gz")
ON_ERROR = ("fail", "skip")
Extract = Callable[[dict[str, Any]], "str | None"]


@dataclass(frozen=True, slots=True)
class Record:
    """One text record.

    Attributes:
        id: The record's id field, else ``<source>#<row>``.
        text: The text to match.
        source: The input the record came from, as the user named it.
        row: 0-based row (line, for line formats) within ``source``.
    """

    id: str
    text: str
    source: str
    row: int


@dataclass(frozen=True, slots=True)
class Source:
    """One input: a file, a saved dataset directory, or a hub dataset."""

    name: str
    kind: str  # jsonl | json | parquet | csv | txt | saved | hub

    def sha256(self) -> str | None:
        """sha256 of the file's bytes; of each data file, in order, for a saved dataset; None for hub."""
        if self.kind == "hub":
            return None
        if self.kind == "saved":
            h = hashlib.sha256()
            for f in sorted(Path(self.name).rglob("*")):
                if f.is_file():
                    h.update(f.relative_to(self.name).as_posix().encode() + b"\0")
                    h.update(bytes.fromhex(sha256_file(f)))
            return h.hexdigest()
        return sha256_file(Path(self.name))


@dataclass
class ReadStats:
    """Counts of what one source yielded and skipped (by reason)."""

    rows: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    sampled_out: int = 0  # rows passed over by sampling (not read, not skipped)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _kind_of(path: str) -> str | None:
    p = path.lower()
    for suffix, kind in (
        (".jsonl.gz", "jsonl"), (".ndjson.gz", "jsonl"), (".txt.gz", "txt"), (".jsonl", "jsonl"),
        (".ndjson", "jsonl"), (".json", "json"), (".parquet", "parquet"), (".csv", "csv"), (".txt", "txt"),
    ):
        if p.endswith(suffix):
            return kind
    return None


def _is_saved_dataset(path: Path) -> bool:
    return path.is_dir() and (
        (path / "dataset_info.json").is_file() and (path / "state.json").is_file()
        or (path / "dataset_dict.json").is_file()
    )


def expand_sources(specs: list[str] | tuple[str, ...]) -> list[Source]:
    """Resolve files, directories, globs and ``hf:`` names into a list of sources.

    Raises:
        InputError: if a spec matches nothing or names an unsupported file type.
    """
    out: list[Source] = []
    for spec in specs:
        spec = str(spec)
        if spec.startswith("hf:"):
            out.append(Source(spec, "hub"))
            continue
        path = Path(spec)
        if _is_saved_dataset(path):
            out.append(Source(spec, "saved"))
        elif path.is_dir():
            found = [
                os.path.join(root, f)
                for root, dirs, files in os.walk(spec)
                for f in files
                if _kind_of(f) and not f.startswith(".")
            ]
            saved = [os.path.dirname(f) for f in found if _is_saved_dataset(Path(os.path.dirname(f)))]
            if not found:
                raise InputError(f"{spec}: directory has no supported files ({', '.join(SUFFIXES)})")
            out.extend(Source(f, _kind_of(f) or "") for f in sorted(found) if os.path.dirname(f) not in saved)
            out.extend(Source(d, "saved") for d in sorted(set(saved)))
        elif path.is_file():
            kind = _kind_of(spec)
            if kind is None:
                raise InputError(
                    f"{spec}: unsupported file type (supported: {', '.join(SUFFIXES)}, saved datasets, hf:NAME)"
                )
            out.append(Source(spec, kind))
        elif glob.has_magic(spec):
            matches = sorted(m for m in glob.glob(spec, recursive=True) if _kind_of(m) and os.path.isfile(m))
            if not matches:
                raise InputError(f"{spec}: pattern matches no supported files")
            out.extend(Source(m, _kind_of(m) or "") for m in matches)
        else:
            raise InputError(f"{spec}: no such file or directory")
    seen: set[str] = set()
    unique = []
    for s in out:
        if s.name not in seen:
            seen.add(s.name)
            unique.append(s)
    return unique


class _Reader:
    """Turns raw rows of one source into Records, counting or raising on bad ones."""

    def __init__(self, source: Source, text_field: str, id_field: str | None, on_error: str, stats: ReadStats,
                 keep: Callable[[int], bool] | None = None, extract: Extract | None = None):
        if on_error not in ON_ERROR:
            raise ConfigError(f"on-error must be one of {', '.join(ON_ERROR)}, got {on_error!r}")
        self.source, self.text_field, self.id_field = source, text_field, id_field
        self.on_error, self.stats, self.keep = on_error, stats, keep
        self.extract = extract

    def sampled_out(self, row: int) -> bool:
        """True (and counted) when sampling passes over this row; checked before parsing it."""
        if self.keep is None or self.keep(row):
            return False
        self.stats.sampled_out += 1
        return True

    def where(self, row: int) -> str:
        unit = "line" if self.source.kind in ("jsonl", "txt", "csv") else "row"
        return f"{self.source.name} {unit} {row + 1}"

    def bad(self, row: int, reason: str, message: str) -> None:
        if self.on_error == "fail":
            raise InputError(f"{self.where(row)}: {message}")
        self.stats.skipped[reason] += 1

    def record(self, row: int, obj: Any) -> Record | None:
        if not isinstance(obj, dict):
            self.bad(row, "not an object", f"expected a JSON object, got {type(obj).__name__}")
            return None
        if self.extract is not None:
            try:
                obj = {**obj, self.text_field: self.extract(obj)}
            except ValueError as e:
                self.bad(row, "malformed record", str(e))
                return None
        if self.text_field not in obj:
            fields = ", ".join(sorted(map(str, obj))[:8])
            self.bad(row, "missing text field", f"no field {self.text_field!r} (fields: {fields}; use --text-field)")
            return None
        text = obj[self.text_field]
        if text is None:
            self.stats.skipped["null text"] += 1
            return None
        if not isinstance(text, str):
            self.bad(row, "non-string text", f"field {self.text_field!r} is {type(text).__name__}, not a string")
            return None
        if not text.strip():
            self.stats.skipped["empty text"] += 1
            return None
        rid = obj.get(self.id_field) if self.id_field else None
        self.stats.rows += 1
        return Record(str(rid) if rid is not None else f"{self.source.name}#{row}", text, self.source.name, row)


def _open_text(path: str) -> io.TextIOBase:
    raw: Any = gzip.open(path, "rb") if path.lower().endswith(".gz") else open(path, "rb")
    return io.TextIOWrapper(raw, encoding="utf-8-sig", errors="strict", newline="")


def _iter_lines(reader: _Reader) -> Iterator[tuple[int, str]]:
    path = reader.source.name
    row = -1
    try:
        with _open_text(path) as f:
            row = 0
            for row, line in enumerate(f):  # noqa: B007 (row used after the loop)
                yield row, line
    except UnicodeDecodeError as e:
        raise InputError(f"{reader.where(max(row, 0) + (1 if row >= 0 else 0))}: invalid UTF-8 ({e.reason})") from e
    except (EOFError, gzip.BadGzipFile, zlib.error) as e:
        raise InputError(f"{path}: truncated or corrupt gzip file ({e})") from e
    except OSError as e:
        raise InputError(f"{path}: cannot read ({e.strerror or e})") from e


def _read_jsonl(reader: _Reader) -> Iterator[Record]:
    for row, line in _iter_lines(reader):
        if not line.strip() or reader.sampled_out(row):
            continue
        try:
            obj = json.loads(line.lstrip("\ufeff"))  # a BOM left inside concatenated files
        except json.JSONDecodeError as e:
            reader.bad(row, "malformed JSON", f"malformed JSON ({e.msg} at column {e.colno})")
            continue
        rec = reader.record(row, obj)
        if rec is not None:
            yield rec


def _read_json(reader: _Reader) -> Iterator[Record]:
    path = reader.source.name
    try:
        with _open_text(path) as f:
            head = f.read(1 << 16).lstrip()
    except UnicodeDecodeError as e:
        raise InputError(f"{path}: invalid UTF-8 ({e.reason})") from e
    if not head.startswith("["):
        yield from _read_jsonl(reader)
        return
    try:
        with _open_text(path) as f:
            data = json.load(f)
    except json.JSONDecodeError as e:
        raise InputError(f"{path} line {e.lineno}: malformed JSON ({e.msg} at column {e.colno})") from e
    except UnicodeDecodeError as e:
        raise InputError(f"{path}: invalid UTF-8 ({e.reason})") from e
    for row, obj in enumerate(data):
        if reader.sampled_out(row):
            continue
        rec = reader.record(row, obj)
        if rec is not None:
            yield rec


def _read_txt(reader: _Reader) -> Iterator[Record]:
    for row, line in _iter_lines(reader):
        text = line.rstrip("\r\n")
        if not text.strip():
            reader.stats.skipped["empty text"] += 1
            continue
        if reader.sampled_out(row):
            continue
        reader.stats.rows += 1
        yield Record(f"{reader.source.name}#{row}", text, reader.source.name, row)


def _read_csv(reader: _Reader) -> Iterator[Record]:
    path = reader.source.name
    csv.field_size_limit(1 << 30)
    try:
        with _open_text(path) as f:
            rows = csv.DictReader(f)
            for row, obj in enumerate(rows):
                if reader.sampled_out(row):
                    continue
                rec = reader.record(row, obj)
                if rec is not None:
                    yield rec
    except csv.Error as e:
        raise InputError(f"{path}: bad CSV ({e})") from e
    except UnicodeDecodeError as e:
        raise InputError(f"{path}: invalid UTF-8 ({e.reason})") from e


def _read_parquet(reader: _Reader) -> Iterator[Record]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = reader.source.name
    try:
        pf = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as e:
        raise InputError(f"{path}: not a readable Parquet file ({e})") from e
    names = pf.schema_arrow.names
    cols: list[str] | None = None  # every column when a custom extractor reads the rows
    if reader.extract is None:
        if reader.text_field not in names:
            raise InputError(f"{path}: no column {reader.text_field!r} (columns: {', '.join(names[:8])}; use --text-field)")
        ttype = pf.schema_arrow.field(reader.text_field).type
        if not (pa.types.is_string(ttype) or pa.types.is_large_string(ttype)):
            raise InputError(f"{path}: column {reader.text_field!r} has type {ttype}, not string")
        cols = [reader.text_field] + ([reader.id_field] if reader.id_field and reader.id_field in names else [])
    row = 0
    try:
        for batch in pf.iter_batches(batch_size=4096, columns=cols):
            for obj in batch.to_pylist():
                rec = None if reader.sampled_out(row) else reader.record(row, obj)
                if rec is not None:
                    yield rec
                row += 1
    except (pa.ArrowException, OSError) as e:
        raise InputError(f"{path} row {row + 1}: corrupt Parquet data ({e})") from e


def _read_datasets(reader: _Reader) -> Iterator[Record]:
    try:
        import datasets
    except ImportError as e:  # pragma: no cover - core dependency
        raise InputError("reading saved or hub datasets needs the 'datasets' package") from e
    name = reader.source.name
    try:
        if reader.source.kind == "saved":
            ds: Any = datasets.load_from_disk(name)
            parts = [ds[k] for k in sorted(ds)] if isinstance(ds, datasets.DatasetDict) else [ds]
        else:
            _, hub_name, *split = name.split(":", 2)
            parts = [datasets.load_dataset(hub_name, split=split[0] if split else "train", streaming=True)]
    except Exception as e:  # datasets raises many unrelated types
        raise InputError(f"{name}: cannot load dataset ({type(e).__name__}: {e})") from e
    row = 0
    for part in parts:
        for obj in part:
            rec = None if reader.sampled_out(row) else reader.record(row, obj)
            if rec is not None:
                yield rec
            row += 1


_READERS = {
    "jsonl": _read_jsonl, "json": _read_json, "txt": _read_txt, "csv": _read_csv,
    "parquet": _read_parquet, "saved": _read_datasets, "hub": _read_datasets,
}


def read_source(
    source: Source,
    *,
    text_field: str = "text",
    id_field: str | None = "id",
    on_error: str = "fail",
    stats: ReadStats | None = None,
    keep: Callable[[int], bool] | None = None,
    extract: Extract | None = None,
) -> Iterator[Record]:
    """Yield the records of one source.

    Args:
        source: From ``expand_sources``.
        text_field: Field holding the text.
        id_field: Field holding the record id; ``<source>#<row>`` when absent.
        on_error: ``"fail"`` raises InputError on a malformed record; ``"skip"`` counts it in ``stats``.
        stats: Receives row and skip counts.
        keep: Sampling: called with each row number before the row is parsed; False passes it over.
        extract: Custom text extraction (model-output shapes): called once per object, right
            before its Record is made, instead of reading ``text_field``; returns the text
            (None: skipped as null text) or raises ValueError (a malformed record).

    Raises:
        InputError: naming the file and line/row, on unreadable input.

    Example:
        >>> recs = list(read_source(Source("fixtures/reference/posts.jsonl", "jsonl")))
    """
    reader = _Reader(source, text_field, id_field, on_error, stats if stats is not None else ReadStats(), keep,
                     extract)
    yield from _READERS[source.kind](reader)


def count_rows(source: Source) -> int:
    """Rows of a source as readers number them (lines for line formats), without parsing records.

    Raises:
        InputError: for hub datasets (size unknown when streaming) or unreadable files.
    """
    if source.kind in ("jsonl", "txt") or (source.kind == "json" and not _starts_with_bracket(source.name)):
        n = 0
        try:
            with (gzip.open(source.name, "rb") if source.name.lower().endswith(".gz") else open(source.name, "rb")) as f:
                for n, _ in enumerate(f, 1):  # noqa: B007
                    pass
        except (OSError, EOFError, zlib.error) as e:
            raise InputError(f"{source.name}: cannot read ({e})") from e
        return n
    if source.kind == "hub":
        raise InputError(f"{source.name}: size unknown for a streamed hub dataset; sample a fraction instead")
    if source.kind == "parquet":
        return _parquet_rows(source.name)
    last = [0]

    def count(row: int) -> bool:
        last[0] = max(last[0], row + 1)
        return False

    for _ in read_source(source, on_error="skip", keep=count):
        pass
    return last[0]


def _starts_with_bracket(path: str) -> bool:
    with open(path, "rb") as f:
        return f.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"[")


def _parquet_rows(path: str) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return int(pq.ParquetFile(path).metadata.num_rows)
    except (pa.ArrowException, OSError) as e:
        raise InputError(f"{path}: not a readable Parquet file ({e})") from e
