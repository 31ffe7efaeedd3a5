"""Results do not depend on the number of workers, nor on whether the compiled kernels run."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from provaudit.read import blocks
from provaudit.read import lines
from provaudit.text import kernels
from provaudit import api
from provaudit.cli import cli
from provaudit.config import IndexConfig
from conftest import seg
from provaudit.index.format import FILES

NAMES = ("manifest.json",)


@pytest.fixture
def small_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    """Many batches even on the small test corpus, so the pool and the merges really run."""
    monkeypatch.setattr(blocks, "BATCH_RECORDS", 16)
    monkeypatch.setattr(lines, "BLOCK_BYTES", 4096)


def _build(src: Path, dest: Path, workers: int, **kw: object) -> None:
    api.build_index([str(src)], dest, IndexConfig(**kw), workers=workers)  # type: ignore[arg-type]


def _same_files(a: Path, b: Path) -> None:
    for name in NAMES:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name  # the manifest names the segment
    for name in FILES:
        assert (seg(a) / name).read_bytes() == (seg(b) / name).read_bytes(), name


@pytest.mark.parametrize("kw", [{}, {"ngram": 5, "anchors": 4}, {"unit": "char", "ngram": 4, "keep_text": True}])
def test_index_is_byte_identical_for_1_and_2_workers(corpus, tmp_path, small_batches, kw) -> None:
    _build(corpus[2], tmp_path / "w1", 1, **kw)
    _build(corpus[2], tmp_path / "w2", 2, **kw)
    _same_files(tmp_path / "w1", tmp_path / "w2")


def test_index_is_byte_identical_without_compiled_kernels(corpus, tmp_path, small_batches, monkeypatch) -> None:
    _build(corpus[2], tmp_path / "fast", 2, ngram=4)
    monkeypatch.setattr(kernels, "ENABLED", False)
    _build(corpus[2], tmp_path / "numpy", 1, ngram=4)
    _same_files(tmp_path / "fast", tmp_path / "numpy")


def test_audit_is_identical_for_1_and_2_workers(corpus, corpus_index, small_batches) -> None:
    one = api.audit(corpus_index, [str(corpus[3])], workers=1)
    two = api.audit(corpus_index, [str(corpus[3])], workers=2)
    assert one.matches == two.matches
    assert one.candidates == two.candidates
    assert one.target_records == two.target_records == len(corpus[1])
    assert len(one.matches["reference_id"]) > 0


def test_audit_is_identical_without_compiled_kernels(corpus, corpus_index, monkeypatch) -> None:
    fast = api.audit(corpus_index, [str(corpus[3])], workers=1)
    monkeypatch.setattr(kernels, "ENABLED", False)
    slow = api.audit(corpus_index, [str(corpus[3])], workers=1)
    assert fast.matches == slow.matches and fast.candidates == slow.candidates


def test_cli_index_workers(corpus, tmp_path) -> None:
    runner = CliRunner()
    for w in ("1", "2"):
        res = runner.invoke(cli, ["index", str(corpus[2]), "-o", str(tmp_path / w), "--workers", w, "-q"])
        assert res.exit_code == 0, res.output
    _same_files(tmp_path / "1", tmp_path / "2")
    assert "--workers" in runner.invoke(cli, ["index", "--help"]).output


def test_audit_of_every_target_format_is_identical_for_1_and_2_workers(tmp_path, monkeypatch) -> None:
    """JSON lines (plain: file ranges; gzip: blocks) and Parquet (row groups), read by the workers."""
    from conftest import FIXTURES

    monkeypatch.setattr(lines, "BLOCK_BYTES", 4096)
    api.build_index([str(FIXTURES / "reference")], tmp_path / "idx", IndexConfig())
    one = api.audit(tmp_path / "idx", [str(FIXTURES / "shards")], workers=1)
    two = api.audit(tmp_path / "idx", [str(FIXTURES / "shards")], workers=2)
    assert sorted(i.kind for i in one.inputs) == ["jsonl", "jsonl", "parquet"]
    assert one.matches == two.matches and one.candidates == two.candidates
    assert [i.to_dict() for i in one.inputs] == [i.to_dict() for i in two.inputs]
    assert one.target_records == two.target_records == 6000
    per_source = {s: one.matches["target_source"].count(s) for s in set(one.matches["target_source"])}
    assert len(per_source) == 3 and min(per_source.values()) > 100, per_source


def test_the_first_problem_in_input_order_is_reported_with_workers(corpus_index, tmp_path, monkeypatch) -> None:
    """A bad line parsed by a worker comes before a gzip error the parent meets further on."""
    import gzip

    import pytest

    from provaudit.errors import InputError
    from provaudit.read.records import ReadStats, Source
    from provaudit.read.sources import read_source

    monkeypatch.setattr(lines, "BLOCK_BYTES", 2048)
    rows = [f'{{"id": "r{i}", "text": "record {i}: {"".join(chr(97 + (i * 7 + j) % 26) for j in range(40))}"}}'
             for i in range(300)]
    rows[3] = '{"id": "bad", "text": '
    data = gzip.compress(("\n".join(rows) + "\n").encode(), mtime=0)
    # cut where the parent meets the end of the data about 3 blocks in: while the block with
    # the bad line is still in flight (2 workers keep 4 blocks in flight)
    (tmp_path / "t.jsonl.gz").write_bytes(data[: int(len(data) * 0.3)])
    stats = ReadStats()
    assert sum(1 for _ in read_source(Source(str(tmp_path / "t.jsonl.gz"), "jsonl"), on_error="skip", stats=stats))
    assert stats.error is not None and "t.jsonl.gz line 62: truncated gzip file" in stats.error
    messages = []
    for workers in (1, 2):
        with pytest.raises(InputError) as e:
            api.audit(corpus_index, [str(tmp_path / "t.jsonl.gz")], workers=workers, on_error="fail")
        messages.append(str(e.value))
    assert messages[0] == messages[1] and "t.jsonl.gz line 4: malformed JSON" in messages[0]


def test_many_small_sources_stream_through_one_pool(corpus, corpus_index, tmp_path) -> None:
    """Sources of every reading path (blocks, row groups, parent-parsed CSV) interleave in one stream;
    results, per-source counts and sampling equal the 1-worker run."""
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq

    from provaudit.config import SampleConfig

    rows = [json.loads(line) for line in corpus[3].read_text().splitlines()]
    d = tmp_path / "shards"
    d.mkdir()
    for i in range(0, len(rows), 25):
        chunk, k = rows[i:i + 25], i // 25
        if k % 3 == 0:
            pq.write_table(pa.Table.from_pylist(chunk), d / f"s{k:03}.parquet", row_group_size=7)
        elif k % 3 == 1:
            (d / f"s{k:03}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in chunk))
        else:
            import csv

            with open(d / f"s{k:03}.csv", "w", newline="") as f:
                w = csv.DictWriter(f, fieldnames=["id", "text"])
                w.writeheader()
                w.writerows({"id": r["id"], "text": r["text"]} for r in chunk)
    assert len(list(d.iterdir())) >= 6
    for sample in (None, SampleConfig(0.5, None, 3)):
        one = api.audit(corpus_index, [str(d)], workers=1, sample=sample)
        two = api.audit(corpus_index, [str(d)], workers=2, sample=sample)
        assert one.matches == two.matches and len(one.matches["reference_id"]) > 0
        assert [i.to_dict() for i in one.inputs] == [i.to_dict() for i in two.inputs]
        assert [(t.source, t.records, t.tokens, t.covered_tokens) for t in one.inputs] == \
               [(t.source, t.records, t.tokens, t.covered_tokens) for t in two.inputs]
        assert one.target_records == two.target_records
