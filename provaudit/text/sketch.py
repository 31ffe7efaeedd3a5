"""MinHash signatures, bit-identical to ``datasketch.MinHash`` (scheme ``affine32``), and LSH band keys.

datasketch 2.x ``affine32``: the 32-bit input hash is pre-mixed with the
MurmurHash3 32-bit finalizer, then each permutation maps ``h -> a*h + b mod 2^32``
(odd ``a``); the signature is the per-permutation minimum. Here the same
arithmetic runs over a whole batch of records at once (uint32 wrap-around is
the ``mod 2^32``), with segment minima via ``np.minimum.reduceat``.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from provaudit.text import kernels
from provaudit.text.shingle import ShingleBatch, fmix64

EMPTY = np.uint32(0xFFFFFFFF)
_F1, _F2 = np.uint32(0x85EBCA6B), np.uint32(0xC2B2AE35)
_CHUNK_CELLS = 1 << 21  # shingles x permutations per temporary matrix (8 MiB of uint32)
_BAND_MULT = np.uint64(0x9E3779B97F4A7C15)
_BAND_SALT = np.uint64(0xD6E8FEB86659FD93)


@lru_cache(maxsize=16)
def permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``(a, b)`` parameters datasketch draws for ``MinHash(num_perm, seed)``, scheme affine32."""
    gen = np.random.RandomState(seed)
    a = gen.randint(0, 1 << 31, num_perm, dtype=np.uint32) * np.uint32(2) + np.uint32(1)
    b = gen.randint(0, 1 << 32, num_perm, dtype=np.uint64).astype(np.uint32)
    a.setflags(write=False)
    b.setflags(write=False)
    return a, b


def fmix32(h: np.ndarray) -> np.ndarray:
    """MurmurHash3 32-bit finalizer, element-wise on uint32."""
    h = h ^ (h >> np.uint32(16))
    h = h * _F1
    h = h ^ (h >> np.uint32(13))
    h = h * _F2
    out: np.ndarray = h ^ (h >> np.uint32(16))
    return out


def signatures(batch: ShingleBatch, num_perm: int, seed: int) -> np.ndarray:
    """MinHash signatures of every record in ``batch``.

    Args:
        batch: Shingle hashes; the low 32 bits of each are the MinHash input.
        num_perm: Number of permutations.
        seed: datasketch seed.

    Returns:
        uint32 array ``(len(batch), num_perm)``; an empty record gets all ``0xFFFFFFFF``,
        like an empty ``datasketch.MinHash``.

    Example:
        >>> from provaudit.config import IndexConfig
        >>> from provaudit.text.shingle import shingle_batch
        >>> signatures(shingle_batch(["a b c d"], IndexConfig()), 128, 1).shape
        (1, 128)
    """
    a, b = permutations(num_perm, seed)
    if kernels.ENABLED:
        hashes = np.ascontiguousarray(batch.hashes, dtype=np.uint64)
        return kernels.minhash(hashes, np.ascontiguousarray(batch.offsets, dtype=np.int64), a, b)
    return _signatures_py(batch, a, b)


def _signatures_py(batch: ShingleBatch, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    num_perm = len(a)
    n = len(batch)
    out = np.full((n, num_perm), EMPTY, dtype=np.uint32)
    h = fmix32((batch.hashes & np.uint64(0xFFFFFFFF)).astype(np.uint32))
    sizes = np.diff(batch.offsets)
    nonempty = np.flatnonzero(sizes)
    rows_per_chunk = max(1, _CHUNK_CELLS // num_perm)
    i = 0
    while i < len(nonempty):
        # take records until the chunk holds about rows_per_chunk shingles (at least one record)
        start = batch.offsets[nonempty[i]]
        j = int(np.searchsorted(batch.offsets[nonempty + 1], start + rows_per_chunk, side="right"))
        j = max(j, i + 1)
        recs = nonempty[i:j]
        lo, hi = int(batch.offsets[recs[0]]), int(batch.offsets[recs[-1] + 1])
        perm = h[lo:hi, None] * a[None, :] + b[None, :]
        out[recs] = np.minimum.reduceat(perm, batch.offsets[recs] - lo, axis=0)
        i = j
    return out


def band_keys(sigs: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """64-bit key of each band of each signature: ``(len(sigs), bands)`` uint64.

    The band index is mixed into the key, so one sorted table holds all bands.
    """
    if kernels.ENABLED:
        return kernels.band_keys(sigs, bands, rows)
    s = sigs.astype(np.uint64)
    keys = np.empty((len(sigs), bands), dtype=np.uint64)
    for i in range(bands):
        acc = np.full(len(sigs), np.uint64((i * int(_BAND_SALT)) & 0xFFFFFFFFFFFFFFFF), dtype=np.uint64)
        for j in range(i * rows, (i + 1) * rows):
            acc = acc * _BAND_MULT + s[:, j]
        keys[:, i] = fmix64(acc)
    return keys


def estimate_jaccard(sig_a: np.ndarray, sig_b: np.ndarray) -> np.ndarray:
    """Share of equal signature positions, row-wise (datasketch ``MinHash.jaccard``)."""
    return np.asarray((sig_a == sig_b).mean(axis=-1), dtype=np.float64)
