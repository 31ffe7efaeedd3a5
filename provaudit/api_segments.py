"""Compose the segment operations of an index: ``add`` (read sources into a new segment), ``remove``
(ids read from a file) and ``compact`` (``index.segments`` does the work under the index's lock).

Example:
    >>> from provaudit import api_segments
    >>> api_segments.add_to_index(Path("ref.idx"), ["new-posts.jsonl"])     # doctest: +SKIP
    >>> api_segments.remove_from_index(Path("ref.idx"), Path("gone.txt"))   # doctest: +SKIP
    >>> api_segments.compact_index(Path("ref.idx"))                         # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from provaudit.api import _engine, read_into
from provaudit.config import IndexConfig, ReadOptions
from provaudit.errors import InputError
from provaudit.index.remote import open_index
from provaudit.index.segments import (
    add_segment, check_parameters, compact_segments, items_of_ids, locked, remove_items, segment_writer,
)
from provaudit.index.signatures import check_signature_output, write_signatures
from provaudit.read.sources import expand_sources
from provaudit.results import Progress
from provaudit.run.engines import RunEngine

__all__ = ["RemoveResult", "add_to_index", "compact_index", "export_signatures", "read_ids", "remove_from_index"]

MAX_ID_BYTES = 1 << 20  # a line of an ids file longer than this is an error


def add_to_index(
    index_dir: Path,
    sources: list[str] | tuple[str, ...],
    config: IndexConfig | dict[str, Any] | None = None,
    *,
    text_field: str = "text",
    id_field: str | None = "id",
    on_error: str = "fail",
    workers: int = 1,
    progress: Progress | None = None,
    input_format: str | None = None,
    run_engine: RunEngine | None = None,
) -> dict[str, Any]:
    """Read reference sources into a new segment of an index (its items numbered after the index's).

    Args:
        config: Parameters to check against the index's: an ``IndexConfig``, or some of its fields by
            name (None: the index's own).
        Others: as for ``api.build_index``.

    Returns:
        The manifest now in force.

    Raises:
        IndexMismatchError: ``config`` differs from the index's parameters (each difference named).
        InputError: unreadable input, or an id already in the index or repeated (nothing is changed).
        IndexFormatError: the index is missing or corrupt.
    """
    read = ReadOptions(text_field, id_field, on_error)  # type: ignore[arg-type]  # validated there
    srcs = expand_sources(sources, fmt=input_format)
    with locked(index_dir) as index:
        check_parameters(index, config)
        writer = segment_writer(index)
        try:
            inputs = read_into(writer, srcs, read, _engine(run_engine, workers), progress)
            return add_segment(index, writer, inputs)
        except BaseException:
            writer.abort()
            raise


@dataclass
class RemoveResult:
    """What ``remove_from_index`` did: items removed, ids asked for that are no live item, the manifest."""

    removed: int
    not_found: list[str] = field(default_factory=list)
    manifest: dict[str, Any] = field(default_factory=dict)


def read_ids(path: Path) -> list[str]:
    """The ids of a file, one per line (UTF-8; the line ending is not part of the id; empty lines are skipped).

    Raises:
        InputError: naming the file and line of undecodable text or a line over ``MAX_ID_BYTES``, or for a
            file holding no id.
    """
    ids: list[str] = []
    try:
        with open(path, "rb") as f:
            for n, raw in enumerate(f, 1):
                if len(raw) > MAX_ID_BYTES:
                    raise InputError(f"{path} line {n}: longer than {MAX_ID_BYTES} bytes (one id per line)")
                try:
                    line = raw.decode("utf-8").rstrip("\r\n")
                except UnicodeDecodeError as e:
                    raise InputError(f"{path} line {n}: not UTF-8 text ({e.reason})") from e
                if line:
                    ids.append(line)
    except OSError as e:
        raise InputError(f"{path}: cannot read ({e.strerror})") from e
    if not ids:
        raise InputError(f"{path}: no id in the file (one id per line)")
    return ids


def remove_from_index(index_dir: Path, ids_file: Path) -> RemoveResult:
    """Record the items with these ids as removed: audits never report them again, counts leave them
    out, and ``compact`` drops their data. Ids that are no live item are returned, not an error.

    Raises:
        InputError: the ids file is unreadable, or none of its ids is a live item (nothing is changed).
    """
    wanted = read_ids(ids_file)
    with locked(index_dir) as index:
        items, missing = items_of_ids(index, wanted)
        if not len(items):
            raise InputError(f"{ids_file}: none of its {len(set(wanted)):,} ids is an item of the index {index_dir} "
                             "(already removed, or never added)")
        manifest = remove_items(index, items)
    return RemoveResult(len(items), missing, manifest)


def compact_index(index_dir: Path) -> tuple[dict[str, Any], bool]:
    """Merge the segments of an index into one without its removed items (renumbered 0, 1, ... in order).

    Returns:
        The manifest in force, and whether anything was merged (an index of one segment and no removed
        item is left as it is).
    """
    with locked(index_dir) as index:
        if len(index.segments) == 1 and not len(index.removed):
            return index.manifest, False
        return compact_segments(index), True


def export_signatures(index_dir: Path | str, out: Path, *, force: bool = False, progress: Progress | None = None) -> int:
    """Write the MinHash signature of every live item of the index to the Parquet file ``out``
    (``index.signatures``: datasketch-compatible ``hashvalues``); returns the items written.

    Raises:
        OutputExistsError: if ``out`` exists (without ``force``, or not a signature file provaudit wrote).
        IndexFormatError: if the index fails its integrity checks.
    """
    check_signature_output(out, force)
    return write_signatures(open_index(index_dir), out, progress)
