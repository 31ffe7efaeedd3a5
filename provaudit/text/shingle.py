"""Normalize text, split it into tokens, and hash word or character n-gram shingles.

The normalizer is applied identically to reference and target text:

1. Unicode NFKC (fullwidth letters, ligatures, composed/decomposed accents fold together);
2. case fold (``str.casefold``);
3. delete format characters (category Cf: zero-width spaces, soft hyphens, BOMs)
   and apostrophes (so "don't", "don’t" and "dont" agree);
4. every other punctuation, symbol or control character, and a lone surrogate, becomes a space;
5. split on whitespace (word shingles) or collapse whitespace to one space (char shingles).

Shingle hashes are 64-bit. With ``hash="xxh3"`` each token is hashed once with
xxh3-64 (cached) and the n token hashes of a shingle are combined numerically,
vectorized over a whole batch: no Python string is built per shingle. With
``hash="sha1"`` the shingle is the space-joined tokens, hashed with SHA-1 as
datasketch's ``sha1_hash64``; its low 32 bits equal datasketch's default ``sha1_hash32``.
MinHash sketches take the low 32 bits of the 64-bit shingle hash.
"""

from __future__ import annotations

import hashlib
import re
import struct
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import xxhash

from provaudit.text import kernels
from provaudit.config import IndexConfig

APOSTROPHES = "'\u2019\u02bc\u2018"
_M64 = (1 << 64) - 1
_MULT = np.uint64(0x9E3779B97F4A7C15)  # odd, so the combination is a bijection in each position
_FM1, _FM2 = np.uint64(0xFF51AFD7ED558CCD), np.uint64(0xC4CEB9FE1A85EC53)
_S33 = np.uint64(33)


class _Fold(dict[int, "int | None"]):
    """The ``str.translate`` table of the normalizer, filled in lazily, one code point at a time.

    Format characters (Cf) and apostrophes are deleted; punctuation, symbols, control
    characters (except whitespace) and lone surrogates (which cannot be encoded) become a space; non-ASCII whitespace
    becomes a space too (so splitting on ASCII whitespace equals ``str.split()``).
    Building the whole 1.1M-entry table up front took 0.6 s per process.
    """

    def __missing__(self, cp: int) -> int | None:
        ch = chr(cp)
        value: int | None = cp
        if ch in APOSTROPHES:
            value = None
        elif ch.isspace():
            value = cp if cp < 128 else 32
        else:
            cat = unicodedata.category(ch)
            if cat == "Cf":
                value = None
            elif cat[0] in "PS" or cat in ("Cc", "Cs"):
                value = 32  # a lone surrogate too: what it becomes once readers replace it with U+FFFD
        self[cp] = value
        return value


_FOLD = _Fold()
_ASCII_FOLD = {cp: _FOLD[cp] for cp in range(128) if _FOLD[cp] != cp}
# The same for ASCII bytes, lower-casing included, NUL kept (it separates records in a batch buffer).
def _ascii_byte(cp: int) -> int:
    folded = _FOLD[cp] if 0 < cp < 128 else cp
    return cp if folded is None else ord(chr(folded).lower())  # deleted bytes: see _ASCII_DELETE


_ASCII_BYTES = bytes(_ascii_byte(cp) for cp in range(256))
_ASCII_DELETE = bytes(cp for cp in range(128) if _FOLD[cp] is None)


def normalize(text: str) -> str:
    """Apply the normalizer described in the module docstring (without splitting).

    Example:
        >>> normalize("Don’t  STOP—me now!")
        'dont  stop me now '
    """
    if text.isascii():
        return text.lower().translate(_ASCII_FOLD)
    text = unicodedata.normalize("NFKC", text).casefold().translate(_FOLD)
    # deleting format characters can leave a letter next to its combining mark ("e\u00ad\u0301"):
    # compose again, so normalize is idempotent and the same word always gives the same token
    return text if text.isascii() else unicodedata.normalize("NFKC", text)


def normalized_utf8(texts: Sequence[str]) -> np.ndarray:
    """UTF-8 bytes of the normalized texts, separated by NUL (which normalized text never holds)."""
    joined = "\x00".join(texts)
    if joined.isascii() and joined.count("\x00") == len(texts) - 1:
        data = joined.encode("ascii").translate(_ASCII_BYTES, _ASCII_DELETE)
    else:
        data = "\x00".join([normalize(t) for t in texts]).encode("utf-8")
    return np.frombuffer(data, dtype=np.uint8)


_WS = re.compile(r"\s+")


def tokens(text: str, unit: str = "word") -> list[str]:
    """Normalized tokens: words, or characters (whitespace runs collapsed to one space)."""
    norm = normalize(text)
    if unit == "word":
        return norm.split()
    return list(_WS.sub(" ", norm).strip())


def fmix64(h: np.ndarray) -> np.ndarray:
    """MurmurHash3 64-bit finalizer, element-wise (wrapping uint64 arithmetic)."""
    h = h ^ (h >> _S33)
    h = h * _FM1
    h = h ^ (h >> _S33)
    h = h * _FM2
    out: np.ndarray = h ^ (h >> _S33)
    return out


class _TokenHashes(dict[str, int]):
    """xxh3-64 of each token's UTF-8 bytes, cached (token frequencies are Zipfian)."""

    def __missing__(self, token: str) -> int:
        if len(self) > 4_000_000:
            self.clear()
        h = self[token] = xxhash.xxh3_64_intdigest(token.encode("utf-8"))
        return h


_token_hashes = _TokenHashes()


@dataclass(frozen=True, slots=True)
class ShingleBatch:
    """Shingle hashes of many records, in order, concatenated.

    Attributes:
        hashes: uint64 shingle hashes in text order (repeats kept), all records concatenated.
        offsets: int64, length ``records + 1``; record i owns ``hashes[offsets[i]:offsets[i+1]]``.
        n_tokens: int64 token count of each record (words, or characters).
    """

    hashes: np.ndarray
    offsets: np.ndarray
    n_tokens: np.ndarray

    def __len__(self) -> int:
        return len(self.n_tokens)

    def record(self, i: int) -> np.ndarray:
        return self.hashes[self.offsets[i] : self.offsets[i + 1]]


def _combine(tok: np.ndarray, starts: np.ndarray, widths: np.ndarray, ngram: int) -> np.ndarray:
    """Hash of the ``widths[k]`` tokens from ``starts[k]``: fmix64(sum t_j * M^(w-1-j) + w)."""
    acc = tok[starts].copy()
    for j in range(1, ngram):
        live = widths > j
        nxt = np.where(live, tok[np.minimum(starts + j, len(tok) - 1)], np.uint64(0))
        acc = np.where(live, acc * _MULT + nxt, acc)
    return fmix64(acc + widths.astype(np.uint64))


def _sha1_64(data: bytes) -> int:
    return int(struct.unpack("<Q", hashlib.sha1(data).digest()[:8])[0])


def shingle_batch(texts: Sequence[str], config: IndexConfig) -> ShingleBatch:
    """Shingle hashes of many texts at once.

    A record with fewer tokens than ``ngram`` (but at least one) yields one
    shingle made of all its tokens; an empty record yields none.

    With ``hash="xxh3"`` and the compiled kernels available, the normalized batch
    is encoded once and tokenized and hashed by ``kernels.hash_words``/``hash_chars``:
    no Python object per token or shingle. The result equals ``shingle_batch_py``.

    Args:
        texts: Raw texts.
        config: Index parameters (``ngram``, ``unit``, ``hash``).

    Returns:
        A ShingleBatch with one entry per text.

    Example:
        >>> b = shingle_batch(["a b c d"], IndexConfig(ngram=3))
        >>> len(b.record(0))
        2
    """
    if config.hash != "xxh3" or not kernels.ENABLED:
        return shingle_batch_py(texts, config)
    buf = normalized_utf8(texts)
    split = kernels.hash_words if config.unit == "word" else kernels.hash_chars
    tok, counts = split(buf, len(texts))
    hashes, offsets = kernels.combine(tok, counts, config.ngram)
    return ShingleBatch(hashes, offsets, counts)


def shingle_batch_py(texts: Sequence[str], config: IndexConfig) -> ShingleBatch:
    """``shingle_batch`` in numpy and Python only (the reference for the kernels, and the sha1 path)."""
    n = config.ngram
    toks = [tokens(t, config.unit) for t in texts]
    counts = np.fromiter((len(t) for t in toks), dtype=np.int64, count=len(toks))
    per_rec = np.where(counts >= n, counts - n + 1, np.minimum(counts, 1))
    offsets = np.zeros(len(toks) + 1, dtype=np.int64)
    np.cumsum(per_rec, out=offsets[1:])
    if config.hash == "sha1":
        sep = " " if config.unit == "word" else ""
        hs = [
            _sha1_64(sep.join(t[i : i + n]).encode("utf-8"))
            for t in toks
            for i in range(max(len(t) - n + 1, min(len(t), 1)))
        ]
        return ShingleBatch(np.array(hs, dtype=np.uint64), offsets, counts)
    flat = [w for t in toks for w in t]
    tok = np.fromiter(map(_token_hashes.__getitem__, flat), dtype=np.uint64, count=len(flat))
    tok_start = np.zeros(len(toks), dtype=np.int64)
    np.cumsum(counts[:-1], out=tok_start[1:])
    rec_of = np.repeat(np.arange(len(toks)), per_rec)
    starts = tok_start[rec_of] + (np.arange(offsets[-1], dtype=np.int64) - offsets[rec_of])
    widths = np.minimum(counts[rec_of], n)
    if len(starts) == 0:
        return ShingleBatch(np.zeros(0, dtype=np.uint64), offsets, counts)
    return ShingleBatch(_combine(tok, starts, widths, n), offsets, counts)


def shingle_hash64(shingle: bytes, config: IndexConfig) -> int:
    """64-bit hash of one shingle given as bytes (space-joined tokens for word shingles).

    This is the scalar reference of what ``shingle_batch`` computes vectorized,
    and a ``hashfunc`` for datasketch (see ``hashfunc32``).
    """
    if config.hash == "sha1":
        return _sha1_64(shingle)
    text = shingle.decode("utf-8")
    parts = text.split(" ") if config.unit == "word" else list(text)
    acc = 0
    for j, p in enumerate(parts):
        h = xxhash.xxh3_64_intdigest(p.encode("utf-8"))
        acc = h if j == 0 else (acc * int(_MULT) + h) & _M64
    return int(fmix64(np.array([acc + len(parts)], dtype=np.uint64))[0])


def hashfunc32(config: IndexConfig):  # type: ignore[no-untyped-def]
    """A datasketch ``hashfunc`` giving the 32-bit shingle hashes provaudit sketches.

    Example:
        >>> from datasketch import MinHash
        >>> m = MinHash(num_perm=128, seed=1, hashfunc=hashfunc32(IndexConfig()))
        >>> m.update_batch([b"the quick brown"])
    """
    return lambda data: shingle_hash64(data, config) & 0xFFFFFFFF


def shingle_strings(text: str, config: IndexConfig) -> list[bytes]:
    """The shingles of ``text`` as bytes, in order (slow; for tests and datasketch interop)."""
    t = tokens(text, config.unit)
    n, sep = config.ngram, (" " if config.unit == "word" else "")
    return [sep.join(t[i : i + n]).encode("utf-8") for i in range(max(len(t) - n + 1, min(len(t), 1)))]


def unique_per_record(batch: ShingleBatch) -> ShingleBatch:
    """Distinct shingle hashes of each record, sorted ascending (shingle *sets*)."""
    if kernels.ENABLED:
        h, offsets = kernels.unique_sorted(
            np.ascontiguousarray(batch.hashes, dtype=np.uint64), np.ascontiguousarray(batch.offsets, dtype=np.int64)
        )
        return ShingleBatch(h, offsets, batch.n_tokens)
    return unique_per_record_py(batch)


def unique_per_record_py(batch: ShingleBatch) -> ShingleBatch:
    """``unique_per_record`` in numpy only (the reference for ``kernels.unique_sorted``)."""
    n = len(batch)
    rec = np.repeat(np.arange(n, dtype=np.int64), np.diff(batch.offsets))
    order = np.lexsort((batch.hashes, rec))
    h, r = batch.hashes[order], rec[order]
    keep = np.ones(len(h), dtype=bool)
    keep[1:] = (h[1:] != h[:-1]) | (r[1:] != r[:-1])
    h, r = h[keep], r[keep]
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(r, minlength=n), out=offsets[1:])
    return ShingleBatch(h, offsets, batch.n_tokens)
