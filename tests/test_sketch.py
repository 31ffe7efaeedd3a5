from __future__ import annotations

import random

import numpy as np
import pytest
from datasketch import MinHash, MinHashLSH
from datasketch.hashfunc import sha1_hash32

from provaudit.config import IndexConfig, lsh_params
from provaudit.errors import ConfigError
from provaudit.text.shingle import hashfunc32, shingle_batch, shingle_strings
from provaudit.text.sketch import band_keys, permutations, signatures

WORDS = [f"w{i}" for i in range(400)] + ["Don't", "naïve", "ＦＵＬＬ", "ﬁne", "a.b", "—"]


def _texts(seed: int, n: int, max_len: int) -> list[str]:
    rng = random.Random(seed)
    out = ["", "one", "two words", "   ", "!!!"]
    out += [" ".join(rng.choice(WORDS) for _ in range(rng.randint(1, max_len))) for _ in range(n)]
    return out


@pytest.mark.parametrize("num_perm,seed", [(16, 1), (128, 1), (128, 42), (256, 7)])
def test_signatures_equal_datasketch_update_batch(num_perm: int, seed: int) -> None:
    cfg = IndexConfig(num_perm=num_perm, seed=seed)
    texts = _texts(seed, 60, 30) + _texts(seed + 1, 5, 3000)  # short posts and long documents
    sigs = signatures(shingle_batch(texts, cfg), num_perm, seed)
    for text, sig in zip(texts, sigs):
        m = MinHash(num_perm=num_perm, seed=seed, hashfunc=hashfunc32(cfg))
        m.update_batch(shingle_strings(text, cfg))
        assert m.scheme == "affine32"
        assert np.array_equal(m.hashvalues, sig), text[:40]


def test_empty_set_signature_is_datasketch_empty() -> None:
    cfg = IndexConfig()
    sig = signatures(shingle_batch(["", " ... "], cfg), 128, 1)
    assert np.array_equal(sig[0], MinHash(num_perm=128, seed=1).hashvalues)
    assert np.array_equal(sig[1], sig[0])
    assert MinHash(num_perm=128, seed=1).is_empty()


def test_sha1_mode_matches_datasketch_default_hashfunc() -> None:
    """With --hash sha1, sketches interchange with plain datasketch MinHash(...) on shingle strings."""
    cfg = IndexConfig(hash="sha1", num_perm=64, seed=3)
    texts = _texts(5, 30, 40)
    sigs = signatures(shingle_batch(texts, cfg), 64, 3)
    for text, sig in zip(texts, sigs):
        m = MinHash(num_perm=64, seed=3)  # default hashfunc: sha1_hash32
        m.update_batch(shingle_strings(text, cfg))
        assert m.hashfunc is sha1_hash32
        assert np.array_equal(m.hashvalues, sig)


def test_char_shingles_match_datasketch() -> None:
    cfg = IndexConfig(unit="char", ngram=5, num_perm=32)
    texts = _texts(9, 20, 20)
    sigs = signatures(shingle_batch(texts, cfg), 32, 1)
    for text, sig in zip(texts, sigs):
        m = MinHash(num_perm=32, seed=1, hashfunc=hashfunc32(cfg))
        m.update_batch(shingle_strings(text, cfg))
        assert np.array_equal(m.hashvalues, sig)


def test_permutations_are_datasketchs() -> None:
    a, b = permutations(128, 11)
    m = MinHash(num_perm=128, seed=11)
    assert np.array_equal(m.permutations[0], a) and np.array_equal(m.permutations[1], b)


@pytest.mark.parametrize("num_perm", [16, 32, 64, 100, 128, 256])
def test_band_choice_equals_datasketchs(num_perm: int) -> None:
    compared = 0
    for threshold in [k / 20 for k in range(1, 20)] + [0.33, 0.42, 0.77]:
        try:
            lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
        except ValueError:  # datasketch refuses a single band; provaudit says so as a ConfigError
            assert lsh_params(threshold, num_perm)[0] == 1
            with pytest.raises(ConfigError, match="gives a single LSH band"):
                IndexConfig(threshold=threshold, num_perm=num_perm).resolved()
            continue
        assert lsh_params(threshold, num_perm) == (lsh.b, lsh.r), threshold
        compared += 1
    assert compared >= 19


def test_band_parameters_from_datasketch_and_equal_bands_collide() -> None:
    cfg = IndexConfig(threshold=0.5).resolved()
    lsh = MinHashLSH(threshold=0.5, num_perm=128)
    assert (cfg.bands, cfg.rows) == (lsh.b, lsh.r)
    sigs = signatures(shingle_batch(["a b c d e f g", "a b c d e f g", "x y z"], cfg), 128, 1)
    keys = band_keys(sigs, cfg.bands, cfg.rows)
    assert keys.shape == (3, cfg.bands)
    assert np.array_equal(keys[0], keys[1])
    assert len(set(keys[0]) & set(keys[2])) == 0
    assert len(set(keys[0].tolist())) == cfg.bands  # band index is mixed into the key
