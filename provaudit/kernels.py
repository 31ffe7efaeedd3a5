"""Compiled kernels (numba) for the hot loops: token hashing, shingle combination, MinHash, set building.

Every kernel has a pure-numpy/Python twin in ``shingle.py``/``sketch.py`` and the
two are tested for equality (bit for bit), so numba only changes speed. The
kernels are used when numba imports and ``PROVAUDIT_JIT`` is not ``0``; they
are compiled on first use and cached on disk (``cache=True``), so only the very
first run on a machine pays the compile time (a few seconds).

* ``hash_words``: splits a UTF-8 buffer of normalized texts (records separated by
  ``\\x00``) on ASCII whitespace and hashes every token with xxh3-64 (the XXH3
  reference algorithm, default secret, seed 0, equal to ``xxhash.xxh3_64_intdigest``)
  without creating a Python object per token.
* ``combine``: shingle hashes ``fmix64(t0*M^(n-1) + ... + t(n-1) + n)`` per record.
* ``minhash``: the fused fmix32 / ``a*h + b mod 2^32`` / min over each record's
  shingles, with no ``shingles x num_perm`` temporary.
* ``unique_sorted``: per record, the sorted distinct shingle hashes.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np

ENABLED = os.environ.get("PROVAUDIT_JIT", "1") != "0"
try:  # numba is a dependency, but the numpy twins keep working without it
    if not ENABLED:
        raise ImportError("PROVAUDIT_JIT=0")
    from numba import njit as _njit
except ImportError:  # pragma: no cover - exercised with PROVAUDIT_JIT=0
    ENABLED = False

    def _njit(*args: Any, **kwargs: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        return lambda f: f


def jit(f: Callable[..., Any]) -> Callable[..., Any]:
    return _njit(cache=True, nogil=True, boundscheck=False)(f)


# XXH3 default secret (192 bytes), a constant of the algorithm.
_SECRET = np.frombuffer(bytes.fromhex(
    "b8fe6c3923a44bbe7c01812cf721ad1cded46de9839097db7240a4a4b7b3671f"
    "cb79e64eccc0e578825ad07dccff7221b8084674f743248ee03590e6813a264c"
    "3c2852bb91c300cb88d0658b1b532ea371644897a20df94e3819ef46a9deacd8"
    "a8fa763fe39c343ff9dcbbc7c70b4f1d8a51e04bcdb45931c89f7ec9d9787364"
    "eac5ac8334d3ebc3c581a0fffa1363eb170ddd51b7f0da49d316552629d4689e"
    "2b16be587d47a1fc8ff8b8d17ad031ce45cb3a8f95160428afd7fbcabb4b407e"
), dtype=np.uint8)

_P32_1 = np.uint64(0x9E3779B1)
_P32_2 = np.uint64(0x85EBCA77)
_P32_3 = np.uint64(0xC2B2AE3D)
_P64_1 = np.uint64(0x9E3779B185EBCA87)
_P64_2 = np.uint64(0xC2B2AE3D27D4EB4F)
_P64_3 = np.uint64(0x165667B19E3779F9)
_P64_4 = np.uint64(0x85EBCA77C2B2AE63)
_P64_5 = np.uint64(0x27D4EB2F165667C5)
_PMX1 = np.uint64(0x165667919E3779F9)
_PMX2 = np.uint64(0x9FB21C651E98DF25)
_M32 = np.uint64(0xFFFFFFFF)
_MULT = np.uint64(0x9E3779B97F4A7C15)  # shingle combination multiplier (shingle._MULT)
_FM1 = np.uint64(0xFF51AFD7ED558CCD)
_FM2 = np.uint64(0xC4CEB9FE1A85EC53)
_F1 = np.uint32(0x85EBCA6B)
_F2 = np.uint32(0xC2B2AE35)
_U = np.uint64


@jit
def _r64(b: np.ndarray, p: int) -> np.uint64:
    return (_U(b[p]) | (_U(b[p + 1]) << _U(8)) | (_U(b[p + 2]) << _U(16)) | (_U(b[p + 3]) << _U(24))
            | (_U(b[p + 4]) << _U(32)) | (_U(b[p + 5]) << _U(40)) | (_U(b[p + 6]) << _U(48))
            | (_U(b[p + 7]) << _U(56)))


@jit
def _r32(b: np.ndarray, p: int) -> np.uint64:
    return _U(b[p]) | (_U(b[p + 1]) << _U(8)) | (_U(b[p + 2]) << _U(16)) | (_U(b[p + 3]) << _U(24))


@jit
def _fold(a: np.uint64, b: np.uint64) -> np.uint64:
    """Low 64 bits xor high 64 bits of the 128-bit product a*b."""
    alo, ahi, blo, bhi = a & _M32, a >> _U(32), b & _M32, b >> _U(32)
    ll, hl, lh, hh = alo * blo, ahi * blo, alo * bhi, ahi * bhi
    cross = (ll >> _U(32)) + (hl & _M32) + lh
    upper = (hl >> _U(32)) + (cross >> _U(32)) + hh
    lower = (cross << _U(32)) | (ll & _M32)
    return lower ^ upper


@jit
def _avalanche(h: np.uint64) -> np.uint64:
    h = h ^ (h >> _U(37))
    h = h * _PMX1
    return h ^ (h >> _U(32))


@jit
def _avalanche64(h: np.uint64) -> np.uint64:
    h = h ^ (h >> _U(33))
    h = h * _P64_2
    h = h ^ (h >> _U(29))
    h = h * _P64_3
    return h ^ (h >> _U(32))


@jit
def _mix16(b: np.ndarray, p: int, s: int) -> np.uint64:
    return _fold(_r64(b, p) ^ _r64(_SECRET, s), _r64(b, p + 8) ^ _r64(_SECRET, s + 8))


@jit
def _acc512(acc: np.ndarray, b: np.ndarray, p: int, s: int) -> None:
    for i in range(8):
        v = _r64(b, p + 8 * i)
        k = v ^ _r64(_SECRET, s + 8 * i)
        acc[i ^ 1] += v
        acc[i] += (k & _M32) * (k >> _U(32))


@jit
def xxh3_64(b: np.ndarray, p: int, n: int) -> np.uint64:
    """XXH3-64 (seed 0, default secret) of ``b[p:p+n]``."""
    ln = _U(n)
    if n == 0:
        return _avalanche64(_r64(_SECRET, 56) ^ _r64(_SECRET, 64))
    if n <= 3:
        c = (_U(b[p]) << _U(16)) | (_U(b[p + (n >> 1)]) << _U(24)) | _U(b[p + n - 1]) | (ln << _U(8))
        return _avalanche64(c ^ (_r32(_SECRET, 0) ^ _r32(_SECRET, 4)))
    if n <= 8:
        x = _r32(b, p + n - 4) + (_r32(b, p) << _U(32))
        x = x ^ (_r64(_SECRET, 8) ^ _r64(_SECRET, 16))
        x = x ^ (((x << _U(49)) | (x >> _U(15))) ^ ((x << _U(24)) | (x >> _U(40))))
        x = x * _PMX2
        x = x ^ ((x >> _U(35)) + ln)
        x = x * _PMX2
        return x ^ (x >> _U(28))
    if n <= 16:
        lo = _r64(b, p) ^ (_r64(_SECRET, 24) ^ _r64(_SECRET, 32))
        hi = _r64(b, p + n - 8) ^ (_r64(_SECRET, 40) ^ _r64(_SECRET, 48))
        sw = _U(0)
        for i in range(8):
            sw = (sw << _U(8)) | ((lo >> _U(8 * i)) & _U(0xFF))
        return _avalanche(ln + sw + hi + _fold(lo, hi))
    acc = ln * _P64_1
    if n <= 128:
        if n > 32:
            if n > 64:
                if n > 96:
                    acc += _mix16(b, p + 48, 96)
                    acc += _mix16(b, p + n - 64, 112)
                acc += _mix16(b, p + 32, 64)
                acc += _mix16(b, p + n - 48, 80)
            acc += _mix16(b, p + 16, 32)
            acc += _mix16(b, p + n - 32, 48)
        acc += _mix16(b, p, 0)
        acc += _mix16(b, p + n - 16, 16)
        return _avalanche(acc)
    if n <= 240:
        for i in range(8):
            acc += _mix16(b, p + 16 * i, 16 * i)
        acc = _avalanche(acc)
        for i in range(8, n // 16):
            acc += _mix16(b, p + 16 * i, 16 * (i - 8) + 3)
        acc += _mix16(b, p + n - 16, 136 - 17)
        return _avalanche(acc)
    a = np.empty(8, dtype=np.uint64)
    a[0], a[1], a[2], a[3] = _P32_3, _P64_1, _P64_2, _P64_3
    a[4], a[5], a[6], a[7] = _P64_4, _P32_2, _P64_5, _P32_1
    stripes = (192 - 64) // 8
    block = 64 * stripes
    blocks = (n - 1) // block
    for k in range(blocks):
        for s in range(stripes):
            _acc512(a, b, p + k * block + 64 * s, 8 * s)
        for i in range(8):
            x = a[i]
            x ^= x >> _U(47)
            x ^= _r64(_SECRET, 192 - 64 + 8 * i)
            a[i] = x * _P32_1
    last = ((n - 1) - block * blocks) // 64
    for s in range(last):
        _acc512(a, b, p + blocks * block + 64 * s, 8 * s)
    _acc512(a, b, p + n - 64, 192 - 64 - 7)
    r = ln * _P64_1
    for i in range(4):
        r += _fold(a[2 * i] ^ _r64(_SECRET, 11 + 16 * i), a[2 * i + 1] ^ _r64(_SECRET, 11 + 16 * i + 8))
    return _avalanche(r)


@jit
def hash_words(buf: np.ndarray, n_records: int) -> tuple[np.ndarray, np.ndarray]:
    """xxh3-64 of every whitespace-separated token of ``buf`` (UTF-8; records separated by 0).

    Returns:
        (token hashes in order, token count per record).
    """
    out = np.empty(len(buf) // 2 + 1, dtype=np.uint64)
    counts = np.zeros(n_records, dtype=np.int64)
    rec = 0
    k = 0
    start = -1
    for i in range(len(buf) + 1):
        c = buf[i] if i < len(buf) else 0
        if c == 0 or _is_space(c):
            if start >= 0:
                out[k] = xxh3_64(buf, start, i - start)
                k += 1
                counts[rec] += 1
                start = -1
            if c == 0 and i < len(buf):
                rec += 1
        elif start < 0:
            start = i
    return out[:k].copy(), counts


@jit
def _is_space(c: int) -> bool:
    return c == 32 or (9 <= c <= 13) or (28 <= c <= 31)


@jit
def hash_chars(buf: np.ndarray, n_records: int) -> tuple[np.ndarray, np.ndarray]:
    """xxh3-64 of every character of ``buf`` (UTF-8; records separated by 0), whitespace
    runs collapsed to one space and stripped at both ends (``shingle.tokens(..., "char")``).

    Returns:
        (character hashes in order, character count per record).
    """
    out = np.empty(len(buf) + 1, dtype=np.uint64)
    counts = np.zeros(n_records, dtype=np.int64)
    space = np.full(1, 32, dtype=np.uint8)
    h_space = xxh3_64(space, 0, 1)
    rec = 0
    k = 0
    started = False
    pending = False
    i = 0
    while i < len(buf):
        c = buf[i]
        if c == 0:
            rec += 1
            started = pending = False
            i += 1
        elif _is_space(c):
            pending = started
            i += 1
        else:
            width = 1 if c < 0x80 else (2 if c < 0xE0 else (3 if c < 0xF0 else 4))
            if pending:
                out[k] = h_space
                k += 1
                counts[rec] += 1
                pending = False
            out[k] = xxh3_64(buf, i, min(width, len(buf) - i))
            k += 1
            counts[rec] += 1
            started = True
            i += width
    return out[:k].copy(), counts


@jit
def _fmix64(h: np.uint64) -> np.uint64:
    h ^= h >> _U(33)
    h *= _FM1
    h ^= h >> _U(33)
    h *= _FM2
    return h ^ (h >> _U(33))


@jit
def combine(tok: np.ndarray, counts: np.ndarray, ngram: int) -> tuple[np.ndarray, np.ndarray]:
    """Shingle hashes of every record (see ``shingle._combine``) and their offsets."""
    n = len(counts)
    offsets = np.zeros(n + 1, dtype=np.int64)
    for r in range(n):
        c = counts[r]
        offsets[r + 1] = offsets[r] + (c - ngram + 1 if c >= ngram else min(c, 1))
    out = np.empty(offsets[n], dtype=np.uint64)
    t0 = 0
    for r in range(n):
        c = counts[r]
        w = min(c, ngram)
        for s in range(offsets[r + 1] - offsets[r]):
            acc = tok[t0 + s]
            for j in range(1, w):
                acc = acc * _MULT + tok[t0 + s + j]
            out[offsets[r] + s] = _fmix64(acc + _U(w))
        t0 += c
    return out, offsets


@jit
def minhash(hashes: np.ndarray, offsets: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """datasketch affine32 MinHash of each record's shingles: ``(records, num_perm)`` uint32."""
    n, p = len(offsets) - 1, len(a)
    out = np.full((n, p), np.uint32(0xFFFFFFFF), dtype=np.uint32)
    for r in range(n):
        row = out[r]
        for i in range(offsets[r], offsets[r + 1]):
            h = np.uint32(hashes[i] & _M32)
            h ^= h >> np.uint32(16)
            h = np.uint32(h * _F1)
            h ^= h >> np.uint32(13)
            h = np.uint32(h * _F2)
            h ^= h >> np.uint32(16)
            for j in range(p):
                v = np.uint32(a[j] * h + b[j])
                if v < row[j]:
                    row[j] = v
    return out


@jit
def unique_sorted(hashes: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per record, the distinct hashes in ascending order, and the new offsets."""
    n = len(offsets) - 1
    out = np.empty(len(hashes), dtype=np.uint64)
    new = np.zeros(n + 1, dtype=np.int64)
    k = 0
    for r in range(n):
        lo, hi = offsets[r], offsets[r + 1]
        m = hi - lo
        if m > 48:
            out[k : k + m] = np.sort(hashes[lo:hi])
        else:  # insertion sort: short records are the common case
            for i in range(m):
                v = hashes[lo + i]
                j = k + i
                while j > k and out[j - 1] > v:
                    out[j] = out[j - 1]
                    j -= 1
                out[j] = v
        w = k
        for i in range(m):
            if i == 0 or out[k + i] != out[w - 1]:
                out[w] = out[k + i]
                w += 1
        k = w
        new[r + 1] = k
    return out[:k].copy(), new
