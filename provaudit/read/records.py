"""The record and source types every reader shares, and what reading a source counts (``ReadStats``).

``sources`` resolves what the user named and reads it with the reader of each format
(``lines``, ``json_array``, ``tables``); ``blocks`` cuts sources into blocks that worker
processes read and parse themselves.
"""

from __future__ import annotations

import hashlib
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from provaudit.config import DEFAULT_MAX_RECORD_CHARS, FORCED_FORMATS, ON_ERROR
from provaudit.fs.hashing import HashCancelled, sha256_file
from provaudit.fs.urls import is_url, iter_url_chunks

__all__ = ["DEFAULT_MAX_RECORD_CHARS", "EXAMPLES_PER_REASON", "FORCED_FORMATS", "FORMATS", "NO_TEXT", "ON_ERROR",
           "SUPPORTED", "TEXT_FORMATS", "Extract", "ReadStats", "Record", "Source", "printable_name"]

# File suffix -> reader; the text formats may also be compressed (``.gz``, ``.zst``).
FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv", ".txt": "txt",
           ".parquet": "parquet", ".arrow": "arrow"}
TEXT_FORMATS = ("jsonl", "json", "csv", "txt")
SUPPORTED = ".jsonl, .ndjson, .json, .csv, .txt (each also .gz or .zst), .parquet, .arrow"
# Custom text extraction (model-output shapes): object -> (text or None, metadata for the Record)
Extract = Callable[[dict[str, Any]], "tuple[str | None, Any]"]
EXAMPLES_PER_REASON = 3
NO_TEXT = ("null text", "empty text")  # counted, but never errors: the record has nothing to match


@dataclass(frozen=True, slots=True)
class Record:
    """One text record.

    Attributes:
        id: The record's id field, else ``<source>#<row>``.
        text: The text to match.
        source: The input the record came from, as the user named it.
        row: 0-based row (line, for line formats) within ``source``.
        meta: What an ``Extract`` hook said about the record (model-output samples: the
            audited field and the prompt context), else None.
    """

    id: str
    text: str
    source: str
    row: int
    meta: Any = None


@dataclass(frozen=True, slots=True)
class Source:
    """One input: a file, a saved dataset directory, or a hub dataset."""

    name: str
    kind: str  # jsonl | json | parquet | csv | txt | arrow | saved | hub
    size: int | None = field(default=None, compare=False, repr=False)  # bytes of a regular file when listed

    def sha256(self, stop: threading.Event | None = None) -> str | None:
        """sha256 of the file's bytes; of each data file, in order, for a saved dataset; None for hub.

        Raises:
            HashCancelled: when ``stop`` is set before the end (hashing on a thread that is given up).
        """
        if self.kind == "hub":
            return None
        if self.kind == "saved":
            h = hashlib.sha256()
            for f in sorted(Path(self.name).rglob("*")):
                if f.is_file():
                    h.update(f.relative_to(self.name).as_posix().encode() + b"\0")
                    h.update(bytes.fromhex(sha256_file(f, stop)))
            return h.hexdigest()
        if is_url(self.name):
            h = hashlib.sha256()
            for chunk in iter_url_chunks(self.name):
                if stop is not None and stop.is_set():
                    raise HashCancelled(self.name)
                h.update(chunk)
            return h.hexdigest()
        return sha256_file(Path(self.name), stop)


@dataclass
class ReadStats:
    """What one source yielded, skipped and altered (by reason), and why it ended early, if it did.

    Attributes:
        rows: Records read.
        skipped: Records not read, by reason ("malformed JSON", "null text", ...).
        sampled_out: Rows passed over by sampling (not read, not skipped).
        altered: Records read but changed, by reason ("truncated to max-record-chars", ...).
        examples: Up to ``EXAMPLES_PER_REASON`` locations (``file line N``) per skip/alter reason.
        error: In skip mode, why the source could not be read to its end (records before it were read).
    """

    rows: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    sampled_out: int = 0
    altered: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)
    error: str | None = None

    def _example(self, reason: str, where: str) -> None:
        ex = self.examples.setdefault(reason, [])
        if len(ex) < EXAMPLES_PER_REASON:
            ex.append(where)

    def skip(self, reason: str, where: str, n: int = 1) -> None:
        """Count ``n`` records not read for ``reason``, at ``where``."""
        self.skipped[reason] += n
        self._example(reason, where)

    def alter(self, reason: str, where: str) -> None:
        """Count a record read but changed for ``reason``, at ``where``."""
        self.altered[reason] += 1
        self._example(reason, where)

    def merge(self, other: ReadStats) -> None:
        """Add the counts of the rows that ``other`` read, which come after this one's (examples stay
        the first, and so does an error that ended the source)."""
        self.error = self.error or other.error
        self.rows += other.rows
        self.sampled_out += other.sampled_out
        if other.skipped:
            self.skipped.update(other.skipped)
        if other.altered:
            self.altered.update(other.altered)
        for reason, where in other.examples.items():
            for w in where:
                self._example(reason, w)

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows, "skipped": dict(sorted(self.skipped.items())), "sampled_out": self.sampled_out,
            "altered": dict(sorted(self.altered.items())), "examples": dict(sorted(self.examples.items())),
            "error": self.error,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ReadStats:
        return cls(int(d["rows"]), Counter(d["skipped"]), int(d["sampled_out"]), Counter(d["altered"]),
                   {k: list(v) for k, v in d["examples"].items()}, d["error"])


def printable_name(name: str) -> str:
    """A file name that may hold undecodable bytes (surrogate escapes), made safe to print and store."""
    return name.encode("utf-8", "backslashreplace").decode("utf-8")


