from __future__ import annotations

import numpy as np
import pytest

from provaudit.config import IndexConfig
from provaudit.text.shingle import (
    ShingleBatch, normalize, shingle_batch, shingle_hash64, shingle_strings, tokens, unique_per_record,
)


@pytest.mark.parametrize(
    "variant",
    [
        "I DON'T like Mondays, at all!",
        "i don’t like mondays at all",
        "i dont like mondays... at all",
        "  i\tdon't\n like   mondays at all  ",
        "ｉ don't like ｍondays at all",  # fullwidth
        "i don\u00adt li\u200bke mondays\u00a0at all",  # soft hyphen, zero-width space, NBSP
    ],
)
def test_variants_normalize_to_same_tokens(variant: str) -> None:
    assert tokens(variant) == ["i", "dont", "like", "mondays", "at", "all"]


def test_unicode_folding() -> None:
    assert tokens("ﬁne Café CAFE\u0301 Straße") == ["fine", "café", "café", "strasse"]
    assert normalize("a—b") == "a b"


def test_batch_hashes_equal_scalar_reference() -> None:
    cfg = IndexConfig(ngram=3)
    texts = ["the quick brown fox", "", "x", "x y", "a b c"]
    batch = shingle_batch(texts, cfg)
    assert batch.n_tokens.tolist() == [4, 0, 1, 2, 3]
    assert np.diff(batch.offsets).tolist() == [2, 0, 1, 1, 1]
    for i, text in enumerate(texts):
        assert batch.record(i).tolist() == [shingle_hash64(s, cfg) for s in shingle_strings(text, cfg)]


def test_shingle_order_matters_and_distinct_ngrams_differ() -> None:
    cfg = IndexConfig(ngram=2)
    h = shingle_batch(["a b", "b a", "a b c"], cfg)
    assert h.record(0)[0] != h.record(1)[0]
    assert h.record(0)[0] == h.record(2)[0]


def test_short_record_is_one_shingle_distinct_from_ngrams() -> None:
    cfg = IndexConfig(ngram=3)
    h = shingle_batch(["a b", "a b c"], cfg)
    assert len(h.record(0)) == 1 and h.record(0)[0] not in h.record(1)


def test_unique_per_record() -> None:
    b = ShingleBatch(np.array([5, 3, 5, 1, 9, 9, 2], np.uint64), np.array([0, 3, 3, 7]), np.array([5, 0, 6]))
    u = unique_per_record(b)
    assert u.hashes.tolist() == [3, 5, 1, 2, 9]
    assert u.offsets.tolist() == [0, 2, 2, 5]


def test_char_shingles() -> None:
    cfg = IndexConfig(unit="char", ngram=3)
    assert shingle_strings("Ab  c!", cfg) == [b"ab ", b"b c"]
