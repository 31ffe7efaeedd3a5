"""The compiled kernels equal their numpy/Python twins bit for bit (and xxh3 equals the xxhash library)."""

from __future__ import annotations

import random

import numpy as np
import pytest
import xxhash

from provaudit.text import kernels
from provaudit.config import IndexConfig
from provaudit.text.shingle import (
    ShingleBatch, normalized_utf8, shingle_batch, shingle_batch_py, tokens, unique_per_record, unique_per_record_py,
)
from provaudit.text.sketch import permutations, signatures

pytestmark = pytest.mark.skipif(not kernels.ENABLED, reason=f"compiled kernels unavailable: {kernels.UNAVAILABLE}")

ODD = ["", " ", "a", "É", "naïve", "ＦＵＬＬ", "ﬁne", "don't", "—", "x\u00a0y", "a\u2028b", "\u1680", "\x85z", "日本語テキスト",
       "emoji 🙂 ok", "tab\tsep\x1fsep", "NUL\x00inside", "x" * 300, "ß" * 200, "a.b,c;d", "ÇA VA?"]


def _texts(seed: int, n: int, max_words: int) -> list[str]:
    rng = random.Random(seed)
    words = [f"w{i}" for i in range(300)] + ODD
    return ODD + [" ".join(rng.choice(words) for _ in range(rng.randint(0, max_words))) for _ in range(n)]


def test_xxh3_equals_xxhash_for_every_length_class() -> None:
    data = np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8)
    lengths = list(range(0, 300)) + [1023, 1024, 1025, 1087, 1088, 1089, 2048, 2049, 4000]
    for n in lengths:
        for p in (0, 7):
            assert int(kernels.xxh3_64(data, p, n)) == xxhash.xxh3_64_intdigest(data[p : p + n].tobytes()), (n, p)


def test_normalized_utf8_splits_like_tokens() -> None:
    texts = _texts(1, 50, 20)
    parts = normalized_utf8(texts).tobytes().split(b"\x00")
    assert [p.decode("utf-8").split() for p in parts] == [tokens(t) for t in texts]
    ascii_only = ["Hello, World!", "it's A-OK", "", "tab\there"]
    parts = normalized_utf8(ascii_only).tobytes().split(b"\x00")
    assert [p.decode("ascii").split() for p in parts] == [tokens(t) for t in ascii_only]


@pytest.mark.parametrize("unit,ngram", [("word", 1), ("word", 3), ("word", 5), ("char", 1), ("char", 4)])
def test_shingle_batch_equals_python_path(unit: str, ngram: int) -> None:
    cfg = IndexConfig(unit=unit, ngram=ngram)
    texts = _texts(ngram, 80, 40) + ["a b c d e f " * 500]
    fast, ref = shingle_batch(texts, cfg), shingle_batch_py(texts, cfg)
    assert np.array_equal(fast.offsets, ref.offsets)
    assert np.array_equal(fast.n_tokens, ref.n_tokens)
    assert np.array_equal(fast.hashes, ref.hashes)


def test_empty_batch() -> None:
    b = shingle_batch([], IndexConfig())
    assert len(b) == 0 and b.offsets.tolist() == [0] and len(b.hashes) == 0
    assert signatures(b, 16, 1).shape == (0, 16)


def test_minhash_and_unique_equal_numpy(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = IndexConfig(ngram=2)
    batch = shingle_batch(_texts(3, 100, 200), cfg)
    fast_sig, fast_u = signatures(batch, 64, 5), unique_per_record(batch)
    monkeypatch.setattr(kernels, "ENABLED", False)
    assert np.array_equal(fast_sig, signatures(batch, 64, 5))
    ref_u = unique_per_record_py(batch)
    assert np.array_equal(fast_u.hashes, ref_u.hashes) and np.array_equal(fast_u.offsets, ref_u.offsets)


def test_unique_sorted_with_repeats_and_long_records() -> None:
    rng = np.random.default_rng(4)
    sizes = [0, 1, 2, 47, 48, 49, 50, 500, 0, 3]
    hashes = rng.integers(0, 40, sum(sizes), dtype=np.uint64)  # many repeats
    offsets = np.r_[0, np.cumsum(sizes)].astype(np.int64)
    b = ShingleBatch(hashes, offsets, np.array(sizes))
    fast, ref = unique_per_record(b), unique_per_record_py(b)
    assert np.array_equal(fast.hashes, ref.hashes) and np.array_equal(fast.offsets, ref.offsets)


def test_permutations_kernel_uses_datasketch_parameters() -> None:
    a, b = permutations(128, 1)
    batch = shingle_batch(["the quick brown fox jumps"], IndexConfig())
    assert signatures(batch, 128, 1).dtype == np.uint32 and a.dtype == b.dtype == np.uint32


def _key_table(d, keys: np.ndarray):
    from provaudit.index.chunks import Chunked, file_digests
    from provaudit.index.keytable import KeyTable, build_directory

    files = {}
    for name, arr in (("keys", keys), ("dir", build_directory(keys)), ("items", np.arange(len(keys), dtype="<u4"))):
        p = d / name
        arr.tofile(p)
        files[name] = Chunked(p, p.stat().st_size, np.frombuffer(file_digests(p), np.uint8).reshape(-1, 32))
    return KeyTable(files["keys"], files["dir"], files["items"], max(len(keys), 1))


@pytest.mark.parametrize("sparse", [0, 1 << 30])  # every lookup through the memory map, or through pread
def test_key_table_equals_searchsorted(monkeypatch: pytest.MonkeyPatch, tmp_path, sparse: int) -> None:
    from provaudit.index import chunks, keytable

    for module in (keytable, chunks):
        monkeypatch.setattr(module, "SPARSE_MAX", sparse)
        monkeypatch.setattr(module, "SPARSE_RUNS", sparse)
    rng = np.random.default_rng(2)
    keys = np.sort(np.r_[rng.integers(0, 2**64, 20_000, dtype=np.uint64, endpoint=False),
                         np.full(300, 12345, np.uint64), np.array([0, 2**64 - 1], np.uint64)])
    queries = np.r_[keys[rng.integers(0, len(keys), 5000)], rng.integers(0, 2**64, 5000, dtype=np.uint64),
                    np.array([0, 1, 12345, 2**64 - 1], np.uint64)]
    for i, table_keys in enumerate((keys, keys[:0], keys[:3])):
        (tmp_path / str(i)).mkdir()
        t = _key_table(tmp_path / str(i), table_keys)
        lo, hi = np.searchsorted(table_keys, queries, "left"), np.searchsorted(table_keys, queries, "right")
        qi, hlo, hhi = t.hits(queries)
        assert np.array_equal(qi, np.flatnonzero(hi > lo)) and np.array_equal(hlo, lo[qi]) and np.array_equal(hhi, hi[qi])
        owner, pos = chunks.expand(hlo, hhi)
        assert np.array_equal(t.item_numbers(pos), pos) and bool((hlo[owner] <= pos).all() and (pos < hhi[owner]).all())
        for few in (queries[:1], queries[5000:5003], queries[:0]):  # a 1-record audit's handful of lookups
            flo, fhi = np.searchsorted(table_keys, few, "left"), np.searchsorted(table_keys, few, "right")
            fq = np.flatnonzero(fhi > flo)
            assert [a.tolist() for a in t.hits(few)] == [fq.tolist(), flo[fq].tolist(), fhi[fq].tolist()]
        monkeypatch.setattr(kernels, "ENABLED", False)
        assert [a.tolist() for a in t.hits(queries)] == [qi.tolist(), hlo.tolist(), hhi.tolist()]
        monkeypatch.setattr(kernels, "ENABLED", True)


def test_chunked_take_reads_the_same_values_through_pread_as_through_the_map(tmp_path) -> None:
    from provaudit.index import chunks

    rng = np.random.default_rng(5)
    arr = rng.integers(0, 2**63, 300_000, dtype=np.int64)  # 2.4 MB: ten chunks
    p = tmp_path / "a.i64"
    arr.tofile(p)
    c = chunks.Chunked(p, p.stat().st_size, np.frombuffer(chunks.file_digests(p), np.uint8).reshape(-1, 32))
    for idx in (np.array([0]), np.array([len(arr) - 1, 0, 7, 7, 8]), rng.integers(0, 150_000, 5000),
                np.arange(1000, 1600), np.zeros(0, np.int64)):
        assert np.array_equal(c.take(idx, "<i8"), arr[idx])
    assert not c.complete and 0 < int(c.verified.sum()) < len(c.verified)  # only the chunks read were hashed
    data = bytearray(p.read_bytes())
    data[8 * 200_000] ^= 1  # a flipped byte in a chunk not yet read is refused when first read
    p.write_bytes(bytes(data))
    with pytest.raises(Exception, match="do not match their checksum"):
        c.take(np.array([200_000]), "<i8")


def test_sort_pairs_is_stable_by_key() -> None:
    from provaudit.index.keytable import sort_pairs

    rng = np.random.default_rng(3)
    keys = np.r_[rng.integers(0, 2**64, 50_000, dtype=np.uint64), rng.integers(0, 50, 5000).astype(np.uint64)]
    items = np.arange(len(keys), dtype=np.uint32)
    order = np.lexsort((items, keys))
    k, it = sort_pairs(keys.copy(), items.copy())
    assert np.array_equal(k, keys[order]) and np.array_equal(it, items[order])
    skewed = rng.permutation(np.r_[np.arange(5000, dtype=np.uint64), np.full(3000, 2**63, np.uint64)])
    skewed_items = np.arange(len(skewed), dtype=np.uint32)  # big buckets: the radix fallback
    order = np.lexsort((skewed_items, skewed))
    k, it = sort_pairs(skewed.copy(), skewed_items.copy())
    assert np.array_equal(k, skewed[order]) and np.array_equal(it, skewed_items[order])
    same = np.full(1000, 7, np.uint64)  # every digit pass trivial
    k, it = sort_pairs(same.copy(), np.arange(1000, dtype=np.uint32))
    assert np.array_equal(it, np.arange(1000))


def test_evidence_kernels_equal_numpy(monkeypatch: pytest.MonkeyPatch) -> None:
    from provaudit.match import runs as match

    rng = np.random.default_rng(6)
    cases = []
    for _ in range(300):
        a = rng.integers(0, 30, rng.integers(0, 80)).astype(np.uint64)
        b = rng.integers(0, 30, rng.integers(0, 300)).astype(np.uint64)
        if len(a) > 5 and len(b) > 10 + len(a) and rng.random() < 0.5:  # plant a long shared run
            b[10 : 10 + len(a) // 2] = a[: len(a) // 2]
        cases.append((a, b, int(rng.integers(1, len(b) + 6)), int(rng.integers(1, 6))))
    fast = [(match.longest_common_run(a, b), match.covered_tokens(b, np.unique(a), n, g),
             match.covered_tokens(b, a, n, g)) for a, b, n, g in cases]
    monkeypatch.setattr(kernels, "ENABLED", False)
    slow = [(match.longest_common_run(a, b), match.covered_tokens(b, np.unique(a), n, g),
             match.covered_tokens(b, a, n, g)) for a, b, n, g in cases]
    assert fast == slow


def test_band_keys_kernel_equals_numpy(monkeypatch: pytest.MonkeyPatch) -> None:
    from provaudit.text.sketch import band_keys

    sigs = np.random.default_rng(8).integers(0, 2**32, (300, 128), dtype=np.uint64).astype(np.uint32)
    fast = band_keys(sigs, 25, 5)
    monkeypatch.setattr(kernels, "ENABLED", False)
    assert np.array_equal(fast, band_keys(sigs, 25, 5)) and np.array_equal(fast[:0], band_keys(sigs[:0], 25, 5))


def test_directory_kernel_equals_searchsorted() -> None:
    keys = np.sort(np.r_[np.random.default_rng(9).integers(0, 2**64, 3000, dtype=np.uint64), np.uint64(0),
                         np.uint64(2**64 - 1), np.full(50, 2**63, np.uint64)])
    for shift in (63, 60, 54, 50):
        starts = np.arange(1 << (64 - shift), dtype=np.uint64) << np.uint64(shift)
        expected = np.append(np.searchsorted(keys, starts), len(keys))
        assert np.array_equal(kernels.directory(keys, shift), expected)
        assert np.array_equal(kernels.directory(keys[:0], shift), np.zeros(len(expected), np.int64))


def test_long_runs_kernel() -> None:
    keys = np.sort(np.r_[np.arange(100, dtype=np.uint64), np.full(7, 5, np.uint64), np.full(3, 50, np.uint64)])
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    counts = np.diff(np.r_[starts, len(keys)])
    for max_run in (1, 3, 4, 8):
        assert np.array_equal(kernels.long_runs(keys, max_run), np.repeat(counts > max_run, counts))
    assert len(kernels.long_runs(keys[:0], 1)) == 0
