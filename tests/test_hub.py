"""Hub datasets are read through ``datasets.load_dataset(..., streaming=True)`` (no network in tests)."""

from __future__ import annotations

import pytest

from provaudit.read.sources import expand_sources, read_source


def test_hub_dataset_is_streamed_with_split(monkeypatch) -> None:
    datasets = pytest.importorskip("datasets")
    calls = []

    def fake_load_dataset(name, split=None, streaming=False):
        calls.append((name, split, streaming))
        return iter([{"id": "x1", "text": "hello there world"}, {"text": "no id here"}, {"id": "x3", "text": None}])

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    (src,) = expand_sources(["hf:someorg/posts:validation"])
    assert src.kind == "hub" and src.sha256() is None
    recs = list(read_source(src))
    assert calls == [("someorg/posts", "validation", True)]
    assert [(r.id, r.text, r.row) for r in recs] == [
        ("x1", "hello there world", 0), ("hf:someorg/posts:validation#1", "no id here", 1)]
    list(read_source(expand_sources(["hf:someorg/posts"])[0]))
    assert calls[-1] == ("someorg/posts", "train", True)


def test_hub_load_failure_is_a_clear_error(monkeypatch) -> None:
    datasets = pytest.importorskip("datasets")
    from provaudit.errors import InputError

    def boom(name, split=None, streaming=False):
        raise ConnectionError("no network")

    monkeypatch.setattr(datasets, "load_dataset", boom)
    with pytest.raises(InputError, match=r"hf:org/x: cannot load dataset \(ConnectionError: no network\)"):
        list(read_source(expand_sources(["hf:org/x"])[0]))
