"""Compiled kernels for the hot loops: token hashing, shingle combination, MinHash, sets, lookup, sorting.

The kernels are plain C (``_kernels.c``), compiled when provaudit is installed into the
extension module ``provaudit.text._kernels`` (``setup.py``; wheels carry it built), and
called through ctypes on whole batches: the module exposes each kernel's address and
nothing else. Nothing is compiled, cached or written at run time. Every kernel has a
numpy/Python twin in ``text/shingle.py``, ``text/sketch.py``, ``index/format.py``,
``match/candidates.py`` and ``match/runs.py``, and the tests check the two equal bit for bit, so the kernels
change speed only. When the extension was not built (no working C compiler at install
time: the build skips it with a warning) or ``PROVAUDIT_KERNELS=0`` is set, the numpy
paths run: same results, slower (docs/performance.md: 2.2x for an index build, 11.5x for an audit
of the fixtures). ``UNAVAILABLE`` then says why;
the library never prints it (the CLI announces it once per run).

Why C through ctypes rather than numba: the same loops, ~1 MB of memory instead of
~100 MB for numba and LLVM in every process (the index build's whole budget is a
tenth of datasketch's), and no dependency.

* ``hash_words``: splits a UTF-8 buffer of normalized texts (records separated by
  NUL) on ASCII whitespace and hashes every token with xxh3-64 (the XXH3 reference
  algorithm, default secret, seed 0: equal to ``xxhash.xxh3_64_intdigest``).
* ``hash_chars``: the same for character tokens.
* ``combine``: shingle hashes ``fmix64(t0*M^(w-1) + ... + t(w-1) + w)`` per record.
* ``minhash``: fused fmix32 / ``a*h + b mod 2^32`` / min over each record's shingles,
  with no ``shingles x num_perm`` temporary (an AVX2 clone is picked at run time).
* ``unique_sorted``: per record, the sorted distinct shingle hashes.
* ``probe``/``probe_hits``: ``searchsorted`` through a directory on the top key bits.
* ``sort_pairs``: stable radix sort of (uint64 key, uint32 item) pairs, in place.
* ``anchor_counts``: per record, the distinct anchors each item of its postings shares
  (an open-addressing table per record: linear in the postings, where sorting them was not).
"""

from __future__ import annotations

import ctypes
import importlib
import os
import types
from typing import Any

import numpy as np

EXTENSION = "provaudit.text._kernels"
ABI = 2  # PA_KERNELS_ABI in _kernels_module.c: raised with every change of a signature below
_P = ctypes.c_void_p
_I = ctypes.c_int64
_SIGNATURES: dict[str, tuple[Any, list[Any]]] = {
    "pa_xxh3_64": (ctypes.c_uint64, [_P, _I]),
    "pa_hash_words": (_I, [_P, _I, _I, _P, _P]),
    "pa_hash_chars": (_I, [_P, _I, _I, _P, _P]),
    "pa_combine": (None, [_P, _P, _I, _I, _P, _P]),
    "pa_minhash": (None, [_P, _P, _I, _P, _P, _I, _P]),
    "pa_unique_sorted": (_I, [_P, _P, _I, _P, _P]),
    "pa_probe": (None, [_P, _P, ctypes.c_int, _P, _I, _P, _P]),
    "pa_probe_hits": (_I, [_P, _P, ctypes.c_int, _P, _I, _P, _P, _P]),
    "pa_sort_pairs": (None, [_P, _P, _I, _P, _P]),
    "pa_band_keys": (None, [_P, _I, _I, _I, _I, _P]),
    "pa_directory": (None, [_P, _I, ctypes.c_int, _I, _P]),
    "pa_long_runs": (None, [_P, _I, _I, _P]),
    "pa_overlap": (None, [_P, _P, _P, _P, _P, _P, _I, _P, _P, _I]),
    "pa_covered_tokens": (_I, [_P, _I, _P, _I, _I, _I]),
    "pa_longest_common_run": (_I, [_P, _I, _P, _I, _P]),
    "pa_anchor_counts": (_I, [_P, _P, _P, _I, _P, _I, _P, _P, _P, _I, _P, _I, _P, _P, _P, _I, _P, _P, _I, _I, _P, _I,
                              _I, _P, _P, _I, _P, _P, _P, _P]),
}


def _load() -> tuple[types.SimpleNamespace | None, str | None]:
    """The kernels bound to their ctypes prototypes, or None and the reason they are unavailable."""
    if os.environ.get("PROVAUDIT_KERNELS", "1") == "0":
        return None, "disabled by PROVAUDIT_KERNELS=0"
    try:
        ext = importlib.import_module(EXTENSION)
    except ImportError as e:
        return None, f"the compiled extension {EXTENSION} is not installed ({e})"
    addresses = getattr(ext, "ADDRESSES", {})
    if getattr(ext, "ABI", None) != ABI or set(addresses) != set(_SIGNATURES):  # an extension from another provaudit version: never call it
        return None, f"the compiled extension {EXTENSION} does not match this provaudit version; reinstall provaudit"
    lib = types.SimpleNamespace()
    for name, (res, args) in _SIGNATURES.items():
        setattr(lib, name, ctypes.CFUNCTYPE(res, *args)(addresses[name]))
    return lib, None


_LIB, UNAVAILABLE = _load()
ENABLED = _LIB is not None


def _lib() -> Any:
    assert _LIB is not None, "compiled kernels are not available"
    return _LIB


def _ptr(a: np.ndarray) -> int:
    return int(a.ctypes.data)


def _c(a: np.ndarray, dtype: type) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=dtype)


def xxh3_64(buf: np.ndarray, pos: int, n: int) -> int:
    """XXH3-64 (seed 0) of ``buf[pos:pos+n]`` (for tests)."""
    b = _c(buf, np.uint8)
    assert 0 <= pos and pos + n <= len(b)
    return int(_lib().pa_xxh3_64(_ptr(b) + pos, n))


def _split(fn: Any, buf: np.ndarray, n_records: int, room: int) -> tuple[np.ndarray, np.ndarray]:
    b = _c(buf, np.uint8)
    out = np.empty(room, dtype=np.uint64)
    counts = np.zeros(n_records, dtype=np.int64)
    k = fn(_ptr(b), len(b), n_records, _ptr(out), _ptr(counts))
    return out[:k].copy(), counts


def hash_words(buf: np.ndarray, n_records: int) -> tuple[np.ndarray, np.ndarray]:
    """Token hashes of a NUL-separated buffer of normalized texts, and tokens per record."""
    return _split(_lib().pa_hash_words, buf, n_records, len(buf) // 2 + 1)


def hash_chars(buf: np.ndarray, n_records: int) -> tuple[np.ndarray, np.ndarray]:
    """Character hashes (whitespace runs as one space, stripped), and characters per record."""
    return _split(_lib().pa_hash_chars, buf, n_records, len(buf) + 1)


def combine(tok: np.ndarray, counts: np.ndarray, ngram: int) -> tuple[np.ndarray, np.ndarray]:
    """Shingle hashes of every record (see ``shingle._combine``) and their offsets."""
    tok, counts = _c(tok, np.uint64), _c(counts, np.int64)
    per = np.where(counts >= ngram, counts - ngram + 1, np.minimum(counts, 1))
    offsets = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(per, out=offsets[1:])
    out = np.empty(int(offsets[-1]), dtype=np.uint64)
    _lib().pa_combine(_ptr(tok), _ptr(counts), len(counts), ngram, _ptr(offsets), _ptr(out))
    return out, offsets


def minhash(hashes: np.ndarray, offsets: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """datasketch affine32 MinHash of each record's shingles: ``(records, num_perm)`` uint32."""
    h, off, a, b = _c(hashes, np.uint64), _c(offsets, np.int64), _c(a, np.uint32), _c(b, np.uint32)
    out = np.empty((len(off) - 1, len(a)), dtype=np.uint32)
    _lib().pa_minhash(_ptr(h), _ptr(off), len(off) - 1, _ptr(a), _ptr(b), len(a), _ptr(out))
    return out


def unique_sorted(hashes: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per record, the distinct hashes in ascending order, and the new offsets."""
    h, off = _c(hashes, np.uint64), _c(offsets, np.int64)
    out = np.empty(len(h), dtype=np.uint64)
    new = np.empty(len(off), dtype=np.int64)
    k = _lib().pa_unique_sorted(_ptr(h), _ptr(off), len(off) - 1, _ptr(out), _ptr(new))
    return out[:k].copy(), new


def probe(keys: np.ndarray, directory: np.ndarray, shift: int, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``searchsorted(keys, q, "left")`` and ``(..., "right")`` via the bucket directory."""
    q = _c(queries, np.uint64)
    lo = np.empty(len(q), dtype=np.int64)
    hi = np.empty(len(q), dtype=np.int64)
    _lib().pa_probe(_ptr(keys), _ptr(directory), shift, _ptr(q), len(q), _ptr(lo), _ptr(hi))
    return lo, hi


def probe_hits(keys: np.ndarray, directory: np.ndarray, shift: int,
               queries: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Like ``probe`` for the queries found only: (query position, lo, hi), in query order."""
    q = _c(queries, np.uint64)
    qi = np.empty(len(q), dtype=np.int64)
    lo = np.empty(len(q), dtype=np.int64)
    hi = np.empty(len(q), dtype=np.int64)
    n = _lib().pa_probe_hits(_ptr(keys), _ptr(directory), shift, _ptr(q), len(q), _ptr(qi), _ptr(lo), _ptr(hi))
    return qi[:n].copy(), lo[:n].copy(), hi[:n].copy()


def sort_pairs(keys: np.ndarray, items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Stable sort of (key, item) pairs by key, **in place** (both arrays must be contiguous,
    uint64 and uint32); items appended in increasing order come out sorted by (key, item)."""
    assert keys.dtype == np.uint64 and items.dtype == np.uint32 and keys.flags.c_contiguous and items.flags.c_contiguous
    kt = np.empty_like(keys)
    it = np.empty_like(items)
    _lib().pa_sort_pairs(_ptr(keys), _ptr(items), len(keys), _ptr(kt), _ptr(it))
    return keys, items


def overlap(t_hashes: np.ndarray, t_offsets: np.ndarray, recs: np.ndarray, r_hashes: np.ndarray,
            r_offsets: np.ndarray, items: np.ndarray) -> np.ndarray:
    """``|distinct(reference sequence of item) & target set of rec|`` for each (rec, item) pair."""
    th, toff = _c(t_hashes, np.uint64), _c(t_offsets, np.int64)
    rh, roff = _c(r_hashes, np.uint64), _c(r_offsets, np.int64)
    recs, items = _c(recs, np.int64), _c(items, np.int64)
    out = np.empty(len(recs), dtype=np.int64)
    longest = int((roff[items + 1] - roff[items]).max()) if len(items) else 0
    scratch = np.empty(2 * longest + 2, dtype=np.uint64)
    _lib().pa_overlap(_ptr(th), _ptr(toff), _ptr(recs), _ptr(rh), _ptr(roff), _ptr(items), len(recs), _ptr(out),
                      _ptr(scratch), len(scratch))
    return out


def covered_tokens(seq: np.ndarray, matched_sorted: np.ndarray, n_tokens: int, width: int) -> int:
    """Tokens inside shingles of ``seq`` found in the sorted array ``matched_sorted``."""
    s, m = _c(seq, np.uint64), _c(matched_sorted, np.uint64)
    return int(_lib().pa_covered_tokens(_ptr(s), len(s), _ptr(m), len(m), n_tokens, width))


def longest_common_run(a: np.ndarray, b: np.ndarray) -> int:
    """Longest run of consecutive equal elements shared by sequences ``a`` and ``b``."""
    a, b = _c(a, np.uint64), _c(b, np.uint64)
    work = np.empty(2 * len(a) + 1, dtype=np.int64)
    return int(_lib().pa_longest_common_run(_ptr(a), len(a), _ptr(b), len(b), _ptr(work)))


def band_keys(sigs: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """LSH band keys of each signature row (see ``sketch.band_keys``): ``(len(sigs), bands)`` uint64."""
    s = _c(sigs, np.uint32)
    assert s.ndim == 2 and bands * rows <= s.shape[1]
    out = np.empty((s.shape[0], bands), dtype=np.uint64)
    _lib().pa_band_keys(_ptr(s), s.shape[0], s.shape[1], bands, rows, _ptr(out))
    return out


def directory(keys: np.ndarray, shift: int) -> np.ndarray:
    """``dir[j]`` = first position whose key's top bits (``key >> shift``) are >= j; ``2^(64-shift)+1`` entries."""
    k = _c(keys, np.uint64)
    nb = 1 << (64 - shift)
    out = np.empty(nb + 1, dtype=np.int64)
    _lib().pa_directory(_ptr(k), len(k), shift, nb, _ptr(out))
    return out


def long_runs(keys: np.ndarray, max_run: int) -> np.ndarray:
    """For sorted ``keys``: True at every position whose key occurs more than ``max_run`` times."""
    k = _c(keys, np.uint64)
    out = np.empty(len(k), dtype=np.bool_)
    _lib().pa_long_runs(_ptr(k), len(k), max_run, _ptr(out))
    return out


class AnchorCountError(ValueError):
    """The kernel found a posting range outside its source (``range``) or an item number too large (``item``)."""


Hits = tuple[np.ndarray, np.ndarray, np.ndarray]  # (record, start, end) of distinct (record, key) hits, by record


def anchor_counts(short: Hits, src: np.ndarray, n_items: int, t_cut: int, low: np.ndarray, mask: int, base: int,
                  dep: Hits | None = None, dep_src: np.ndarray | None = None, long: Hits | None = None,
                  need: np.ndarray | None = None, need_le1: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per record, how many of its distinct anchor keys each item shares (``pa_anchor_counts``):
    ``(record, item, count)`` for counts ``>= t_cut`` or items whose bit ``low[(item + base) & mask]``
    is set, by record then item.

    ``short`` hits' postings ``src[start:end]`` are counted; ``dep`` hits' postings ``dep_src[start:end]``
    (the long anchors of dependent items) are counted and complete their items' counts; ``long`` hits'
    postings (in ``src``, items ascending) are not expanded: an item met in short postings whose count
    reaches ``need[item]`` (``anchor_need.u8``; every item met when ``need`` is None) is searched in them.
    ``need_le1``: ``need <= 1`` as bits (``np.packbits(..., bitorder="little")``), computed when not given.

    Raises:
        AnchorCountError: a range outside its source or an item ``>= n_items`` (the caller names the file).
    """
    empty = (np.zeros(0, np.int64),) * 3
    dep, long = dep or empty, long or empty
    r, lo, hi = (_c(a, np.int64) for a in short)
    dr, dlo, dhi = (_c(a, np.int64) for a in dep)
    lr, llo, lhi = (_c(a, np.int64) for a in long)
    s, lw = _c(src, np.uint32), _c(low, np.uint8)
    ds = _c(dep_src if dep_src is not None else np.zeros(0, np.uint32), np.uint32)
    nd = _c(need, np.uint8) if need is not None and len(lr) else None
    if nd is not None and len(nd) < n_items:
        raise AnchorCountError("range")
    le1 = None
    if nd is not None:
        le1 = need_le1 if need_le1 is not None else np.packbits(nd <= 1, bitorder="little")
        if len(le1) * 8 < n_items:
            raise AnchorCountError("range")
    recs = np.concatenate((r, dr))
    sizes = np.concatenate((hi - lo, dhi - dlo))
    if len(recs) and int(sizes.min()) < 0:
        raise AnchorCountError("range")
    most = int(np.bincount(np.unique(recs, return_inverse=True)[1].reshape(-1), weights=sizes).max()) if len(recs) else 0
    cap = 2
    while cap < 2 * min(most, n_items):
        cap *= 2
    slot_item, slot_count, scratch = np.zeros(cap, np.uint32), np.zeros(cap, np.uint32), np.empty(2 * cap, np.uint64)
    room = max(int(sizes.sum()), 1)
    out_rec, out_item, out_count = np.empty(room, np.int64), np.empty(room, np.int64), np.empty(room, np.int64)
    n = _lib().pa_anchor_counts(
        _ptr(r), _ptr(lo), _ptr(hi), len(r), _ptr(s), len(s), _ptr(dr), _ptr(dlo), _ptr(dhi), len(dr), _ptr(ds), len(ds),
        _ptr(lr), _ptr(llo), _ptr(lhi), len(lr), _ptr(nd) if nd is not None else None,
        _ptr(le1) if le1 is not None else None, n_items, t_cut,
        _ptr(lw), mask, base, _ptr(slot_item), _ptr(slot_count), cap, _ptr(scratch), _ptr(out_rec), _ptr(out_item),
        _ptr(out_count))
    if n < 0:
        raise AnchorCountError("range" if n == -1 else "item")
    return out_rec[:n].copy(), out_item[:n].copy(), out_count[:n].copy()
