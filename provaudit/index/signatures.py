"""MinHash signatures of an index's items, on request (``provaudit signatures``): the index stores
none, since no audit reads them; they are computed from the stored shingle sequences.

The file is Parquet, one row per live item in item order: ``id``, ``item`` (its number in the
index) and ``hashvalues`` (``num_perm`` values below 2^32, stored as uint32: datasketch keeps them
as uint64), which are ``datasketch.MinHash(num_perm, seed).hashvalues`` for the same shingles
(scheme ``affine32``): load
them as ``datasketch.LeanMinHash(seed=SEED, hashvalues=row, scheme="affine32")``. With ``--hash
sha1`` those shingles are hashed as datasketch hashes them by default, so the signatures interchange
with datasketch's own; with ``xxh3`` (the default) datasketch needs provaudit's shingle hash
(docs/design.md). The parameters are in the file's key-value metadata under ``provaudit``.

Example:
    >>> write_signatures(load_index(Path("posts.idx")), Path("posts.sig.parquet"))  # doctest: +SKIP
    3000
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from provaudit.errors import OutputExistsError
from provaudit.fs.atomic import atomic_file
from provaudit.fs.hashing import sha256_file
from provaudit.index.format import Index
from provaudit.text.shingle import ShingleBatch
from provaudit.text.sketch import signatures



FORMAT = "provaudit-signatures"
STEP = 16_384  # items signed and written at a time (a row group): bounded memory, whatever the index


def check_signature_output(out: Path, force: bool) -> None:
    """Refuse, before any work, an output that must not be written: a symbolic link, an existing file
    without ``force``, or (with it) anything but a signature file provaudit wrote.

    Raises:
        OutputExistsError: naming ``out`` and why.
    """
    try:
        st = os.lstat(out)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(st.st_mode):
        raise OutputExistsError(f"{out}: is a symbolic link; provaudit writes outputs only to real paths")
    if not force:
        raise OutputExistsError(f"{out}: already exists (use --force to replace it)")
    try:
        meta = pq.read_schema(out).metadata or {} if stat.S_ISREG(st.st_mode) else {}
        ours = json.loads(meta.get(b"provaudit", b"{}")).get("format") == FORMAT
    except (OSError, ValueError, pa.ArrowException, AttributeError):
        ours = False
    if not ours:
        raise OutputExistsError(f"{out}: exists and is not a signature file provaudit wrote; --force replaces only "
                                "those: delete it yourself or choose another -o")


def signature_schema(index: Index) -> pa.Schema:
    cfg = index.config
    meta = {"format": FORMAT, "format_version": 1, "num_perm": cfg.num_perm, "seed": cfg.seed,
            "hash": cfg.hash, "unit": cfg.unit, "ngram": cfg.ngram, "scheme": "datasketch 2.x affine32",
            "fingerprint": cfg.fingerprint(), "index_manifest_sha256": sha256_file(index.path / "manifest.json")}
    return pa.schema([("id", pa.string()), ("item", pa.int64()), ("hashvalues", pa.list_(pa.uint32(), cfg.num_perm))],
                     metadata={"provaudit": json.dumps(meta, sort_keys=True)})


def _stored_batch(index: Index, items: np.ndarray) -> ShingleBatch:
    """The items' stored shingle sequences as one batch."""
    parts = index.sequences_of(items)
    offsets = np.zeros(len(items) + 1, dtype=np.int64)
    np.cumsum([len(p) for p in parts], out=offsets[1:])
    hashes = np.concatenate(parts) if parts else np.zeros(0, np.uint64)
    return ShingleBatch(hashes, offsets, index.tokens_of(items))


def item_signatures(index: Index, items: np.ndarray) -> np.ndarray:
    """MinHash signatures of reference items, computed from their stored shingle sequences."""
    return signatures(_stored_batch(index, items), index.config.num_perm, index.config.seed)


def _block(index: Index, items: np.ndarray, ids: pa.Array, schema: pa.Schema) -> tuple[pa.Table, int]:
    """The items' rows, and the bytes of shingle sequences read for them."""
    batch = _stored_batch(index, items)
    sig = signatures(batch, index.config.num_perm, index.config.seed)
    values = pa.array(np.ascontiguousarray(sig, dtype=np.uint32).reshape(-1), type=pa.uint32())  # affine32: < 2^32
    return pa.table([ids, pa.array(items, pa.int64()), pa.FixedSizeListArray.from_arrays(values, index.config.num_perm)],
                    schema=schema), batch.hashes.nbytes


def write_signatures(index: Index, out: Path, progress: Callable[[str, int, int, int], object] | None = None) -> int:
    """Write every live item's signature to ``out`` (replaced atomically: a reader sees the old file or the
    whole new one); returns the items written. ``progress`` as ``results.Progress``: items written, and
    bytes of shingle sequences read of those in the index."""
    schema = signature_schema(index)
    written = done = 0
    total = sum(seg.files["sequences.u64"].size for seg in index.segments)  # progress: sequence bytes read
    with atomic_file(out) as f, pq.ParquetWriter(f, schema, compression="zstd", use_dictionary=False) as writer:
        for seg in index.segments:
            for start, group in seg.row_groups():  # each verified; the ids of its items, in order
                for lo in range(0, group.num_rows, STEP):
                    part = group.slice(lo, STEP)
                    items = seg.base + start + lo + np.arange(part.num_rows, dtype=np.int64)
                    keep = ~index.is_removed(items)
                    if keep.any():
                        ids = part.column("id").filter(pa.array(keep)).combine_chunks()
                        if pa.types.is_dictionary(ids.type):
                            ids = ids.dictionary_decode()
                        table, nbytes = _block(index, items[keep], ids.cast(pa.string()), schema)
                        writer.write_table(table)
                        written, done = written + int(keep.sum()), done + nbytes
                    if progress is not None:
                        progress(str(out), written, done, total)
        if not written:
            writer.write_table(schema.empty_table())
    return written
