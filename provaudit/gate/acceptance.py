"""Accepted matches: a baseline (an earlier audit's pairs) and an allow-list (reviewed ids or pairs).

A pair is identified by ``(reference_id, target_id)``: the same copy found again after shards
are moved or renamed is still the accepted one. Records without an id field are named
``<file>#<row>``, so for them the key includes the path as it was given.

Example:
    >>> allow = AllowList.parse(["# reviewed 2026-11", "post-00017", "post-00020,t01-000004"], "allow.txt")
    >>> allow.accepts("post-00017", "anything"), allow.accepts("post-00020", "t01-000004")
    (True, True)
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from provaudit.errors import InputError
from provaudit.fs.arrow import iter_batches
from provaudit.fs.integrity import CHECKSUMS, verify_checksums
from provaudit.gate.jsonread import read_object

PairKey = tuple[str, str]  # (reference_id, target_id)
CHECK_FORMAT = "provaudit-check"


@dataclass(frozen=True)
class Baseline:
    """The pairs of an earlier audit or check; pairs found again are accepted.

    Attributes:
        path: What the user named (directory, report.json, matches.parquet or a check JSON).
        source: The file the pairs were read from.
        pairs: Every pair of that output, flagged or not (a set: memory is the earlier output's size).
    """

    path: str
    source: str
    pairs: AbstractSet[PairKey]


@dataclass(frozen=True)
class AllowList:
    """Reviewed, accepted matches: whole reference items, or single (reference, target) pairs."""

    path: str
    reference_ids: frozenset[str]
    pairs: frozenset[PairKey]

    def accepts(self, reference_id: str, target_id: str) -> bool:
        return reference_id in self.reference_ids or (reference_id, target_id) in self.pairs

    @classmethod
    def parse(cls, lines: Iterable[str], path: str) -> AllowList:
        """One entry a line: ``reference_id`` or ``reference_id,target_id`` (CSV quoting for ids
        holding commas); blank lines and lines starting with ``#`` are ignored.

        Raises:
            InputError: naming the file and line of an entry that is neither.
        """
        ids: set[str] = set()
        pairs: set[PairKey] = set()
        for n, line in enumerate(lines, 1):
            line = line.rstrip("\r\n")
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            try:
                fields = next(csv.reader([line], strict=True))
            except csv.Error as e:
                raise InputError(f"{path} line {n}: not a CSV entry ({e})") from None
            fields = [f.strip() for f in fields]
            if len(fields) == 1 and fields[0]:
                ids.add(fields[0])
            elif len(fields) == 2 and all(fields):
                pairs.add((fields[0], fields[1]))
            else:
                raise InputError(f"{path} line {n}: expected 'reference_id' or 'reference_id,target_id', "
                                 f"got {len(fields)} field(s); quote ids that contain commas")
        return cls(path, frozenset(ids), frozenset(pairs))


def load_allow(path: Path) -> AllowList:
    """Read an allow-list file (see ``AllowList.parse``).

    Raises:
        InputError: unreadable file, invalid UTF-8, or a malformed line (named).
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: no such allow-list file") from None
    except UnicodeDecodeError as e:
        raise InputError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except OSError as e:
        raise InputError(f"{path}: cannot read the allow-list ({e.strerror or e})") from None
    return AllowList.parse(text.splitlines(), str(path))


def _pairs_from_parquet(path: Path) -> set[PairKey]:
    """The (reference_id, target_id) of every row, read a batch at a time: memory is the set's."""
    names = ["reference_id", "target_id"]
    keys: set[PairKey] = set()
    try:
        source = pq.ParquetFile(path)
        for name in names:
            if not pa.types.is_string(source.schema_arrow.field(name).type):
                raise InputError(f"{path}: column {name} must hold strings without nulls")
        for b in iter_batches(source, names):
            for name in names:
                if b.column(name).null_count:
                    raise InputError(f"{path}: column {name} must hold strings without nulls")
            keys.update(zip(b.column("reference_id").to_pylist(), b.column("target_id").to_pylist()))
    except (pa.ArrowException, OSError, KeyError) as e:
        raise InputError(f"{path}: not a provaudit matches.parquet ({e})") from None
    return keys


class _CheckPairs:
    """The ``pairs`` of a check JSON as ``jsonread.read_object`` decodes them: their keys, and the
    first element that is not a pair (an error only if the file is a check JSON)."""

    def __init__(self) -> None:
        self.keys: set[PairKey] = set()
        self.bad: int | None = None

    def add(self, i: int, p: Any) -> None:
        if not (isinstance(p, dict) and isinstance(p.get("reference_id"), str) and isinstance(p.get("target_id"), str)):
            self.bad = i if self.bad is None else self.bad
        elif self.bad is None:
            self.keys.add((p["reference_id"], p["target_id"]))


def _read_json(path: Path, pairs: _CheckPairs) -> tuple[dict[str, object], bool]:
    """The top-level object without ``pairs``, which is read an element at a time into ``pairs``."""
    try:
        with open(path, encoding="utf-8") as f:
            return read_object(f, "pairs", pairs.add)
    except UnicodeDecodeError as e:
        raise InputError(f"{path}: not valid JSON ({e})") from None
    except ValueError as e:
        if str(e) == "top level is not an object":
            raise InputError(f"{path}: not a provaudit report or check JSON (top level is not an object)") from None
        raise InputError(f"{path}: not valid JSON ({e})") from None


def load_baseline(path: Path) -> Baseline:
    """The pairs of an earlier output: an audit directory, its report.json or matches.parquet, or a
    JSON written by ``provaudit check --json``.

    An audit directory with ``SHA256SUMS`` is verified first (a changed file is an error, not a
    baseline). report.json lists only the strongest pairs, so its sibling matches.parquet is read.

    Raises:
        InputError: missing or unreadable baseline, or one that is not a provaudit output.
        OutputFormatError: an audit directory that fails its checksums.
    """
    if not path.exists():
        raise InputError(f"{path}: no such baseline (give an audit output directory, its report.json or "
                         "matches.parquet, or a 'provaudit check --json' file)")
    source = path
    if path.is_dir():
        source = path / "matches.parquet"
    elif path.suffix == ".json":
        pairs = _CheckPairs()  # a check JSON's pairs are read as a stream, not as a list of dicts
        data, listed = _read_json(path, pairs)
        if data.get("format") == CHECK_FORMAT:
            if not listed:
                raise InputError(f"{path}: no 'pairs' list (not a provaudit check JSON)")
            if pairs.bad is not None:
                raise InputError(f"{path}: pairs[{pairs.bad}] needs string 'reference_id' and 'target_id'")
            return Baseline(str(path), str(path), pairs.keys)
        if data.get("format") != "provaudit-report" or data.get("kind") != "training":
            raise InputError(f"{path}: not a training audit's report.json or a 'provaudit check --json' file")
        source = path.parent / "matches.parquet"
    elif path.suffix != ".parquet":
        raise InputError(f"{path}: a baseline is an audit output directory, report.json, matches.parquet "
                         "or a 'provaudit check --json' file")
    if (source.parent / CHECKSUMS).is_file():
        verify_checksums(source.parent)
    if not source.is_file():
        raise InputError(f"{source}: missing; the baseline needs the audit's matches.parquet (report.json "
                         "lists only the strongest pairs)")
    return Baseline(str(path), str(source), _pairs_from_parquet(source))
