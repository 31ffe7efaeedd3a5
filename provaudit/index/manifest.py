"""The index manifest: layout constants, its checksum, and the validation of every value a load uses.

Layout of an index directory (format 9)::

    manifest.json           format version, parameters, inputs, counts, and the segments and
                            deletions in force, each file with its size and checksum root
    seg-NNNNNN-XXXXXXXX/    an immutable segment (``NNNNNN``: the operation that wrote it,
                            ``XXXXXXXX``: the start of its checksum root), holding:
      checksums.sha256      sha256 of every 256 KiB chunk of every file below, file after file (``chunks``)
      items.parquet         one row per reference item: id, source, row, [text] (only with keep_text);
                            read only for the items an audit reports
      seq_offsets.i64       item i's shingle hashes are sequences[seq_offsets[i]:seq_offsets[i + 1]]
      sequences.u64         every item's shingle hashes in text order, items concatenated
      n_tokens.u32          per item: tokens
      n_shingles.u32        per item: distinct shingles
      anchor_usable.u8      per item: anchors left once keys of more than ``max_postings`` items are skipped
      anchor_need.u8        per item: hits in short keys (shared by at most ``long_postings`` items) it needs
                            before its long anchors can bring it to its threshold (``anchor_plan``'s settings);
                            0: a dependent item (below), 255: not searchable
      anchor_keys.u64       containment anchors, sorted by (key, item): keys ...
      anchor_items.u32      ... and items (numbered within the segment)
      anchor_dir.i64        directory on the keys' top bits: rows of keys starting with each prefix
      band_keys.u64, band_items.u32, band_dir.i64   the LSH band table, likewise
      shapes.i64            (distinct shingles, usable anchors, items) for every such pair present
      token_shapes.i64      (tokens, distinct shingles, usable anchors, items) likewise (model-output audits)
      low_items.u32         items with fewer than 8 distinct shingles or usable anchors, sorted
      dep_keys.u64, dep_items.u32, dep_dir.i64   the long anchors of the dependent items, those with at least
                            as many long anchors as their threshold (``anchor_plan``) needs hits, like the anchor
                            table: an audit scans short keys' postings and finds these items by their long keys
      id_keys.u64, id_items.u32, id_dir.i64   the items' id hashes (xxh3-64 of the UTF-8 id), sorted by
                            (hash, item), and their directory: ``add`` and ``remove`` find ids by them
    del-NNNNNN-XXXXXXXX.u64 the removed items' numbers, sorted (``provaudit remove``; none when nothing
                            was removed)
    .lock                   taken (flock) by add, remove and compact

Segment ``i``'s items are numbered from ``base_i = base_{i-1} + items_{i-1}`` (``reference_item`` in
matches.parquet): ``add`` and ``remove`` never renumber; ``compact`` numbers the live items 0, 1, ...
in their order, as one build over them would.

Note:
    Format 7 (issue #11 item 3) moved a format-6 index's files into one segment directory and added
    ``segments``, ``removed`` and ``next_operation`` to the manifest; format 8 added the id tables
    (``id_*``); format 9 the short-hit needs and the dependent items' table (``anchor_need``,
    ``dep_*``), so that an audit need not expand the postings of long keys. Older indexes must be rebuilt.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np

from provaudit.config import AuditConfig, IndexConfig
from provaudit.errors import ConfigError, IndexFormatError
from provaudit.fs.hashing import json_checksum
from provaudit.index.chunks import CHUNK, DIGEST, hostile
from provaudit.index.keytable import directory_bits

FORMAT = "provaudit-index"
MARKER = ("manifest.json", FORMAT)  # what marks an index directory (fs.atomic.check_output)
FORMAT_VERSION = 10
RAW: dict[str, str] = {
    "seq_offsets.i64": "<i8", "sequences.u64": "<u8", "n_tokens.u32": "<u4", "n_shingles.u32": "<u4",
    "anchor_usable.u8": "u1", "anchor_need.u8": "u1", "anchor_keys.u64": "<u8", "anchor_items.u32": "<u4", "anchor_dir.i64": "<i8",
    "band_keys.u64": "<u8", "band_items.u32": "<u4", "band_dir.i64": "<i8", "shapes.i64": "<i8",
    "token_shapes.i64": "<i8", "low_items.u32": "<u4", "id_keys.u64": "<u8", "id_items.u32": "<u4", "id_dir.i64": "<i8",
    "dep_keys.u64": "<u8", "dep_items.u32": "<u4", "dep_dir.i64": "<i8",
}
FILES = ("items.parquet", *RAW)
CHECKSUMS = "checksums.sha256"
MAX_MANIFEST_BYTES = 256 << 20
MAX_ITEMS = (1 << 32) - 1  # items numbered in one index (added segments included)
MAX_SEGMENTS = 10_000
SEGMENT_NAME = re.compile(r"seg-[0-9]{6}-[0-9a-f]{8}")
REMOVED_NAME = re.compile(r"del-[0-9]{6}-[0-9a-f]{8}\.u64")
_CONFIG_TYPES = {"ngram": int, "unit": str, "num_perm": int, "seed": int, "hash": str, "threshold": float,
                 "bands": int, "rows": int, "anchors": int, "keep_text": bool, "scheme": str, "band_table": bool}
_COUNTS = ("items", "tokens", "distinct_shingles")


def manifest_checksum(manifest: dict[str, Any]) -> str:
    """sha256 of the manifest's content without this field: it names every file's checksum root."""
    return json_checksum(manifest, "manifest_checksum", prefix="sha256:")


def manifest_text(manifest: dict[str, Any]) -> str:
    """manifest.json's text: indented, each input on one line (json's indenting encoder is pure Python:
    6 s for the 100,000 inputs of as many files, against 1 s for this)."""
    inputs = manifest.get("inputs")
    if not inputs:
        return json.dumps(manifest, indent=2, sort_keys=True) + "\n"
    text = json.dumps({**manifest, "inputs": []}, indent=2, sort_keys=True)
    rows = "\n  \"inputs\": [\n" + ",\n".join("    " + json.dumps(i, sort_keys=True) for i in inputs) + "\n  ]"
    for end in (",", "\n"):  # followed by another key, or the last one
        if '\n  "inputs": []' + end in text:
            return text.replace('\n  "inputs": []' + end, rows + end, 1) + "\n"
    return json.dumps(manifest, indent=2, sort_keys=True) + "\n"


PARTIAL_SEGMENT = "seg-{:06d}-partial"  # a segment being written (removed by the next operation if left)


def segment_name(operation: int, entry: dict[str, Any]) -> str:
    """A finished segment's directory name: the operation that wrote it and its checksum root's start
    (a pure function of its content: the same build gives the same index)."""
    return f"seg-{operation:06d}-{entry['checksums']['sha256'][:8]}"


LONG_POSTINGS = 128  # keys of more items than this are "long": audits probe them instead of expanding them


def anchor_plan() -> dict[str, Any]:
    """The manifest's ``anchor_plan`` for a new index: the settings its per-item plan (``anchor_usable``,
    ``anchor_need``, ``dep_*``) is computed for: the audit defaults and ``LONG_POSTINGS``."""
    d = AuditConfig()
    return {"max_postings": d.max_postings, "long_postings": LONG_POSTINGS, "min_overlap": d.min_overlap,
            "miss_rate": d.miss_rate}


def index_manifest(config: IndexConfig, plan: dict[str, Any], segments: list[dict[str, Any]],
                   removed: dict[str, Any] | None, next_operation: int, extra: dict[str, Any]) -> dict[str, Any]:
    """A whole manifest (``index.manifest``): shared parameters, the anchor plan's settings, live counts,
    segments, the removed-items file, with its checksum. ``extra``: versions, fields, inputs."""
    counts = {k: sum(s["counts"][k] for s in segments) - (removed["counts"][k] if removed else 0) for k in _COUNTS}
    full = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "config": config.to_dict(),
        "fingerprint": config.fingerprint(),
        "counts": counts,
        "anchor_plan": plan,
        "chunk_bytes": CHUNK,
        "segments": segments,
        "removed": removed,
        "next_operation": next_operation,
        **extra,
    }
    full["manifest_checksum"] = manifest_checksum(full)
    return full


def read_manifest(path: Path) -> dict[str, Any]:
    """Parse and check ``path/manifest.json`` (format, version, its own checksum, value types).

    Raises:
        IndexFormatError: if it is missing, unparsable, of another format or version, changed or
            holds values of the wrong type or range.
    """
    mpath = path / "manifest.json"
    if not path.is_dir():
        raise IndexFormatError(f"{path}: not an index directory")
    if not mpath.is_file():
        raise IndexFormatError(f"{path}: no manifest.json (not a provaudit index, or an incomplete build)")
    if mpath.stat().st_size > MAX_MANIFEST_BYTES:
        raise hostile(mpath, f"manifest larger than {MAX_MANIFEST_BYTES} bytes")
    try:
        manifest = json.loads(mpath.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:
        raise IndexFormatError(f"{mpath}: corrupt manifest ({type(e).__name__})") from e
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise IndexFormatError(f"{mpath}: not a provaudit index manifest")
    version = manifest.get("format_version")
    if version != FORMAT_VERSION or not isinstance(version, int):
        raise IndexFormatError(
            f"{path}: index format version {version!r} is not supported by this provaudit "
            f"(reads version {FORMAT_VERSION}); rebuild the index with 'provaudit index'"
        )
    if manifest.get("manifest_checksum") != manifest_checksum(manifest):
        raise IndexFormatError(f"{mpath}: manifest checksum does not match its content (file changed or corrupt)")
    validate_manifest(mpath, manifest)
    return manifest


def _int(mpath: Path, value: Any, what: str, lo: int = 0, hi: int = 1 << 62) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise hostile(mpath, f"{what} must be an integer in [{lo}, {hi}], got {str(value)[:40]!r}")
    return value


def _counts(mpath: Path, counts: Any, what: str) -> dict[str, int]:
    if not isinstance(counts, dict):
        raise hostile(mpath, f"{what} must be an object")
    for name in _COUNTS:
        _int(mpath, counts.get(name), f"{what}.{name}", 0, MAX_ITEMS if name == "items" else 1 << 62)
    return counts


def validate_manifest(mpath: Path, m: dict[str, Any]) -> None:
    """Check the type and range of every manifest value a load relies on."""
    cfg = m.get("config")
    if not isinstance(cfg, dict) or set(cfg) != set(_CONFIG_TYPES):
        raise hostile(mpath, "config must hold exactly the index parameters")
    for name, typ in _CONFIG_TYPES.items():
        v = cfg[name]
        if type(v) is not typ and not (typ is float and type(v) is int):
            raise hostile(mpath, f"config.{name} must be of type {typ.__name__}, got {type(v).__name__}")
    try:
        config = IndexConfig.from_dict(cfg)
    except ConfigError as e:
        raise hostile(mpath, f"config: {e}") from e
    if config.bands == 0 or config.resolved() != config or m.get("fingerprint") != config.fingerprint():
        raise hostile(mpath, "config is not resolved or does not match the fingerprint")
    counts = _counts(mpath, m.get("counts"), "counts")
    plan = m.get("anchor_plan")
    if not isinstance(plan, dict):
        raise hostile(mpath, "anchor_plan must be an object")
    if set(plan) != {"max_postings", "long_postings", "min_overlap", "miss_rate"}:
        raise hostile(mpath, "anchor_plan must hold max_postings, long_postings, min_overlap and miss_rate")
    _int(mpath, plan.get("max_postings"), "anchor_plan.max_postings", 1)
    _int(mpath, plan.get("long_postings"), "anchor_plan.long_postings", 1)
    for name, lo, hi in (("min_overlap", 0.0, 1.0), ("miss_rate", 0.0, 0.5)):
        v = plan.get(name)
        if not isinstance(v, float) or not lo < v <= hi:
            raise hostile(mpath, f"anchor_plan.{name} must be a number in ({lo}, {hi}]")
    if m.get("chunk_bytes") != CHUNK:
        raise hostile(mpath, f"chunk_bytes must be {CHUNK}")
    segments = m.get("segments")
    if not isinstance(segments, list) or not 1 <= len(segments) <= MAX_SEGMENTS:
        raise hostile(mpath, f"segments must be a list of 1 to {MAX_SEGMENTS} segments")
    numbered = 0
    names: set[str] = set()
    for j, seg in enumerate(segments):
        validate_segment(mpath, seg, f"segments[{j}]")
        if seg["name"] in names:
            raise hostile(mpath, f"segments[{j}].name is listed twice")
        names.add(seg["name"])
        if seg["base"] != numbered:
            raise hostile(mpath, f"segments[{j}].base must be {numbered} (the items of the segments before it)")
        numbered += seg["counts"]["items"]
    if numbered > MAX_ITEMS:
        raise hostile(mpath, f"more than {MAX_ITEMS} items numbered")
    removed = m.get("removed")
    n_removed = 0
    if removed is not None:
        if not isinstance(removed, dict) or not isinstance(removed.get("name"), str) \
                or not REMOVED_NAME.fullmatch(removed["name"]) or not isinstance(removed.get("sha256"), str):
            raise hostile(mpath, "removed must be null or name a del-NNNNNN-XXXXXXXX.u64 file with its sha256")
        n_removed = _int(mpath, removed.get("rows"), "removed.rows", 1, numbered)
        if _counts(mpath, removed.get("counts"), "removed.counts")["items"] != n_removed:
            raise hostile(mpath, "removed.counts.items must be removed.rows")
        if _int(mpath, removed.get("bytes"), "removed.bytes") != n_removed * 8:
            raise hostile(mpath, "removed.bytes must be 8 per removed item")
    if counts["items"] != numbered - n_removed:
        raise hostile(mpath, "counts.items must be the segments' items less the removed ones")
    _int(mpath, m.get("next_operation"), "next_operation", 1, 999_999)
    for key in ("inputs",):
        if not isinstance(m.get(key, []), list) or not all(isinstance(i, dict) for i in m.get(key, [])):
            raise hostile(mpath, f"{key} must be a list of objects")


def validate_segment(mpath: Path, seg: Any, what: str) -> None:
    """Check one ``segments`` entry: its name, base, counts, files and their checksum list."""
    if not isinstance(seg, dict) or not isinstance(seg.get("name"), str) or not SEGMENT_NAME.fullmatch(seg["name"]):
        raise hostile(mpath, f"{what} must name a seg-NNNNNN-XXXXXXXX directory")
    _int(mpath, seg.get("base"), f"{what}.base", 0, MAX_ITEMS)
    n = _counts(mpath, seg.get("counts"), f"{what}.counts")["items"]
    files = seg.get("files")
    if not isinstance(files, dict) or set(files) != set(FILES):
        raise hostile(mpath, f"{what}.files must list exactly {', '.join(FILES)}")
    for name in FILES:
        f = files[name]
        if not isinstance(f, dict) or not isinstance(f.get("chunks_sha256"), str):
            raise hostile(mpath, f"{what}.files.{name} must hold bytes, rows and chunks_sha256")
        size = _int(mpath, f.get("bytes"), f"{what}.files.{name}.bytes")
        rows = _int(mpath, f.get("rows"), f"{what}.files.{name}.rows")
        if name in RAW and size != rows * np.dtype(RAW[name]).itemsize:
            raise hostile(mpath, f"{what}.files.{name}: {rows} rows do not fill {size} bytes")
    rows_of = {name: files[name]["rows"] for name in FILES}
    expected = {"items.parquet": n, "seq_offsets.i64": n + 1, "n_tokens.u32": n, "n_shingles.u32": n,
                "anchor_usable.u8": n, "anchor_need.u8": n, "anchor_items.u32": rows_of["anchor_keys.u64"],
                "dep_items.u32": rows_of["dep_keys.u64"],
                "dep_dir.i64": (1 << directory_bits(rows_of["dep_keys.u64"])) + 1,
                "band_items.u32": rows_of["band_keys.u64"], "id_keys.u64": n, "id_items.u32": n,
                "id_dir.i64": (1 << directory_bits(n)) + 1,
                "anchor_dir.i64": (1 << directory_bits(rows_of["anchor_keys.u64"])) + 1,
                "band_dir.i64": (1 << directory_bits(rows_of["band_keys.u64"])) + 1}
    for name, want in expected.items():
        if rows_of[name] != want:
            raise hostile(mpath, f"{what}.files.{name} has {rows_of[name]} rows, expected {want}")
    if rows_of["dep_keys.u64"] > rows_of["anchor_keys.u64"]:
        raise hostile(mpath, f"{what}.files.dep_keys.u64 has more rows than the anchor table")
    if rows_of["low_items.u32"] > n:
        raise hostile(mpath, f"{what}.files.low_items.u32 has {rows_of['low_items.u32']} rows, more than the items")
    if rows_of["shapes.i64"] % 3:
        raise hostile(mpath, f"{what}.shapes.i64 must hold (shingles, usable, items) triples")
    if rows_of["token_shapes.i64"] % 4:
        raise hostile(mpath, f"{what}.token_shapes.i64 must hold (tokens, shingles, usable, items) rows")
    chk = seg.get("checksums")
    total = sum(math.ceil(files[name]["bytes"] / CHUNK) for name in FILES)
    if not isinstance(chk, dict) or chk.get("bytes") != total * DIGEST or not isinstance(chk.get("sha256"), str):
        raise hostile(mpath, f"{what}.checksums must cover {total} chunks")
